"""The daemon's configuration (TOML), validated whole before any hardware is touched.

Every error names the file, the key (``devices.bench.port``) and the reason.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labpower.backends import Backend, OptionError, parse_options, registry
from labpower.backends.hwmon import HwmonMeter
from labpower.backends.options import secret_fields
from labpower.backends.secret import Secret, exposure
from labpower.client.escape import escape
from labpower.daemon.pdu_names import PduNames

DEFAULT_CONFIG = "/etc/labpower/labpowerd.toml"
DEFAULT_SOCKET = "/run/labpower/labpower.sock"
LOG_LEVELS = ("debug", "info", "warning", "error")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}")
_DEVICE_KEYS = {"backend", "channels", "timeout", "description"}
_TARGET_KEYS = {
    "device",
    "channel",
    "invert",
    "cycle_delay",
    "description",
    "start",
    "allow_users",
    "allow_groups",
    "read",
    "meter",
    "pdudaemon",
    "aliases",
}
_DAEMON_KEYS = {
    "socket",
    "log_level",
    "history",
    "state_directory",
    "max_connections",
    "max_connections_per_user",
    "subscriber_queue",
    "read",
    "admin_groups",
    "max_streams_per_user",
    "subscriber_bytes",
    "allow_empty",
}
START_POLICIES = ("keep", "off", "on", "restore")
#: who may read a target: "allowed" (whoever may switch it) or "all" (whoever can connect)
READ_POLICIES = ("allowed", "all")
DEFAULT_STATE_DIRECTORY = "/var/lib/labpower"


class ConfigError(Exception):
    """The configuration is wrong: ``path``, ``key`` and ``reason`` say where and why."""

    def __init__(self, path: str, key: str, reason: str) -> None:
        # keys are the file's own (a quoted TOML key may hold anything): escaped like
        # everything else outside input that is shown or logged
        where = f"{escape(path, 1024)}: {escape(key)}" if key else escape(path, 1024)
        super().__init__(f"{where}: {escape(reason, 2048)}")
        self.path = path
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    socket: str | None = None
    log_level: str = "info"
    #: log entries kept in memory for History
    history: int = 1000
    #: where targets.json lives; None: $STATE_DIRECTORY, else /var/lib/labpower
    state_directory: str | None = None
    max_connections: int = 1024
    #: connections one uid may hold at once (its share); None: a quarter of max_connections
    max_connections_per_user: int | None = None
    #: log entries a live subscriber may fall behind by before entries are dropped for it
    subscriber_queue: int = 65536
    #: read policy of targets that set none (see READ_POLICIES)
    read: str = "allowed"
    #: groups whose members may break other users' leases (root always may)
    admin_groups: frozenset[int] = frozenset()
    #: streams (Read with "more", Logs) one user may have open at once; root is not limited
    max_streams_per_user: int = 64
    #: bytes of encoded entries a live subscriber may fall behind by, likewise
    subscriber_bytes: int = 1024 * 1024
    #: a reload may remove every target (else a file without targets is refused)
    allow_empty: bool = False


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    name: str
    backend: str
    backend_class: type[Backend]
    channels: int
    timeout: float
    options: Any
    description: str = ""

    def create(self) -> Backend:
        return self.backend_class(self.name, self.channels, self.options, self.timeout)


@dataclass(frozen=True, slots=True)
class TargetConfig:
    name: str
    device: str
    channel: int
    invert: bool = False
    cycle_delay: float = 1.0
    description: str = ""
    #: what to do at daemon start: keep (switch nothing), off, on, restore (last commanded)
    start: str = "keep"
    #: who may switch it (uids and gids, resolved from names at load); empty: everyone
    allow_users: frozenset[int] = frozenset()
    allow_groups: frozenset[int] = frozenset()
    #: who may read it (see READ_POLICIES); None: the daemon's ``read``
    read: str | None = None
    #: where its readings come from instead of its device (``meter = "hwmon:..."``)
    meter: HwmonMeter | None = None
    #: "pdu:port" (port normalised: "pdu01:08" is "pdu01:8") and aliases for pdudaemon clients
    pdudaemon: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    daemon: DaemonSettings
    devices: Mapping[str, DeviceConfig]
    targets: Mapping[str, TargetConfig]


def default_config_path() -> str:
    """$CONFIGURATION_DIRECTORY/labpowerd.toml under systemd, else /etc/labpower/."""
    base = os.environ.get("CONFIGURATION_DIRECTORY")
    if base:
        return os.path.join(base.split(":")[0], "labpowerd.toml")
    return DEFAULT_CONFIG


def default_state_directory() -> str:
    """$STATE_DIRECTORY under systemd, else /var/lib/labpower."""
    base = os.environ.get("STATE_DIRECTORY")
    return base.split(":")[0] if base else DEFAULT_STATE_DIRECTORY


def default_socket_path() -> str:
    """$RUNTIME_DIRECTORY/labpower.sock under systemd, else /run/labpower/labpower.sock."""
    base = os.environ.get("RUNTIME_DIRECTORY")
    if base:
        return os.path.join(base.split(":")[0], "labpower.sock")
    return DEFAULT_SOCKET


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file. :raises ConfigError:"""
    where = os.fspath(path)
    try:
        with open(where, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(where, "", f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "", f"not valid TOML: {exc}") from exc
    config = parse(data, where)
    _check_inline_secrets(config)
    return config


def _check_inline_secrets(config: Config) -> None:
    """Refuse a secret written inline in a config file that everyone may read.

    :raises ConfigError: naming the first such key.
    """
    inline = [
        f"devices.{name}.{key}"
        for name, device in config.devices.items()
        for key in secret_fields(type(device.options))
        if isinstance(getattr(device.options, key), Secret)
        and getattr(device.options, key).source == "inline"
    ]
    if not inline:
        return
    try:
        problem = exposure(os.stat(config.path))
    except OSError:
        return  # it was just read: gone since is not this check's business
    if problem is not None:
        raise ConfigError(
            config.path,
            inline[0],
            f"a secret is written inline, but {problem}: make the file private "
            f"(chmod o-rwx {config.path}), or give it as {inline[0].rpartition('.')[2]}_file "
            f"or {inline[0].rpartition('.')[2]}_credential",
        )


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.path, key, reason)

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table, not {value!r}")
        return value

    def keys(self, table: Mapping[str, Any], allowed: set[str], key: str) -> None:
        for k in table:
            if k not in allowed:
                raise self.fail(
                    f"{key}.{k}" if key else k,
                    f"unknown key (allowed: {', '.join(sorted(allowed))})",
                )

    def value(
        self, table: Mapping[str, Any], name: str, kind: type, key: str, default: Any = ...
    ) -> Any:
        if name not in table:
            if default is ...:
                raise self.fail(f"{key}.{name}", "required key missing")
            return default
        value = table[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.fail(f"{key}.{name}", f"must be {kind.__name__}, not {value!r}")
        return value

    def ids(
        self, table: Mapping[str, Any], name: str, key: str, lookup: Callable[[str], Any], what: str
    ) -> frozenset[int]:
        """A list of user or group names (or numeric ids), resolved to ids."""
        values = table.get(name, [])
        if not isinstance(values, list):
            raise self.fail(f"{key}.{name}", f"must be a list of {what} names or ids")
        ids: set[int] = set()
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                ids.add(v)
            elif isinstance(v, str):
                try:
                    ids.add(lookup(v)[2])
                except KeyError:
                    raise self.fail(f"{key}.{name}", f"no {what} named {v!r}") from None
            else:
                raise self.fail(f"{key}.{name}", f"{v!r} is not a {what} name or id")
        return frozenset(ids)

    def read_policy(self, table: Mapping[str, Any], key: str, default: str | None) -> str | None:
        policy: str | None = self.value(table, "read", str, key, default)
        if policy is not None and policy not in READ_POLICIES:
            raise self.fail(
                f"{key}.read", f"must be one of {', '.join(READ_POLICIES)}, not {policy!r}"
            )
        return policy

    def name(self, name: str, key: str) -> None:
        if not _NAME.fullmatch(name):
            raise self.fail(
                key,
                f"name {name!r} must be letters, digits and _.:@+- "
                "(starting with a letter or digit)",
            )


def parse(data: Mapping[str, Any], path: str = "<config>") -> Config:
    """Validate a parsed TOML document. :raises ConfigError:"""
    c = _Checker(path)
    c.keys(data, {"daemon", "devices", "targets"}, "")
    d = c.table(data.get("daemon", {}), "daemon")
    c.keys(d, _DAEMON_KEYS, "daemon")
    level = c.value(d, "log_level", str, "daemon", "info")
    if level not in LOG_LEVELS:
        raise c.fail("daemon.log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    history = c.value(d, "history", int, "daemon", 1000)
    if not 0 <= history <= 1_000_000:
        raise c.fail("daemon.history", "must be between 0 and 1000000")
    max_connections = c.value(d, "max_connections", int, "daemon", 1024)
    if not 1 <= max_connections <= 65536:
        raise c.fail("daemon.max_connections", "must be between 1 and 65536")
    per_user = c.value(d, "max_connections_per_user", int, "daemon", None)
    if per_user is not None and not 1 <= per_user <= max_connections:
        raise c.fail(
            "daemon.max_connections_per_user",
            f"must be between 1 and daemon.max_connections ({max_connections})",
        )
    queue = c.value(d, "subscriber_queue", int, "daemon", 65536)
    if not 16 <= queue <= 10_000_000:
        raise c.fail("daemon.subscriber_queue", "must be between 16 and 10000000")
    streams = c.value(d, "max_streams_per_user", int, "daemon", 64)
    if not 1 <= streams <= 65536:
        raise c.fail("daemon.max_streams_per_user", "must be between 1 and 65536")
    queue_bytes = c.value(d, "subscriber_bytes", int, "daemon", 1024 * 1024)
    if not 65536 <= queue_bytes <= 1024**3:
        raise c.fail("daemon.subscriber_bytes", "must be between 65536 and 1073741824")
    settings = DaemonSettings(
        c.value(d, "socket", str, "daemon", None),
        level,
        history,
        c.value(d, "state_directory", str, "daemon", None),
        max_connections,
        per_user,
        queue,
        c.read_policy(d, "daemon", "allowed") or "allowed",
        c.ids(d, "admin_groups", "daemon", grp.getgrnam, "group"),
        streams,
        queue_bytes,
        c.value(d, "allow_empty", bool, "daemon", False),
    )

    devices: dict[str, DeviceConfig] = {}
    for name, raw in c.table(data.get("devices", {}), "devices").items():
        key = f"devices.{name}"
        c.name(name, key)
        devices[name] = _device(c, name, c.table(raw, key), key)

    targets: dict[str, TargetConfig] = {}
    used: dict[tuple[str, int], str] = {}
    pdu_names = PduNames(c)
    for name, raw in c.table(data.get("targets", {}), "targets").items():
        key = f"targets.{name}"
        c.name(name, key)
        t = c.table(raw, key)
        c.keys(t, _TARGET_KEYS, key)
        device = c.value(t, "device", str, key)
        if device not in devices:
            known = ", ".join(sorted(devices)) or "none defined"
            raise c.fail(f"{key}.device", f"no device named {device!r} (devices: {known})")
        channel = c.value(t, "channel", int, key)
        channels = devices[device].channels
        if not 1 <= channel <= channels:
            raise c.fail(
                f"{key}.channel", f"device {device!r} has channels 1..{channels}, not {channel}"
            )
        if (device, channel) in used:
            raise c.fail(
                f"{key}.channel",
                f"channel {channel} of device {device!r} is "
                f"already targets.{used[device, channel]}",
            )
        used[device, channel] = name
        delay = c.value(t, "cycle_delay", float, key, 1.0)
        if not 0 <= delay <= 3600:
            raise c.fail(f"{key}.cycle_delay", f"must be 0..3600 seconds, not {delay}")
        start = c.value(t, "start", str, key, "keep")
        if start not in START_POLICIES:
            raise c.fail(
                f"{key}.start", f"must be one of {', '.join(START_POLICIES)}, not {start!r}"
            )
        targets[name] = TargetConfig(
            name,
            device,
            channel,
            c.value(t, "invert", bool, key, False),
            delay,
            c.value(t, "description", str, key, ""),
            start,
            c.ids(t, "allow_users", key, pwd.getpwnam, "user"),
            c.ids(t, "allow_groups", key, grp.getgrnam, "group"),
            c.read_policy(t, key, None),
            _meter(c, t, key),
            *pdu_names.check(name, t, key),
        )
    return Config(path, settings, devices, targets)


def _meter(c: _Checker, table: Mapping[str, Any], key: str) -> HwmonMeter | None:
    text = c.value(table, "meter", str, key, "")
    if not text:
        return None
    try:
        return HwmonMeter.parse(text)
    except ValueError as exc:
        raise c.fail(f"{key}.meter", str(exc)) from exc


def _device(c: _Checker, name: str, table: Mapping[str, Any], key: str) -> DeviceConfig:
    backend = c.value(table, "backend", str, key)
    try:
        cls = registry.load(backend)
    except LookupError as exc:
        raise c.fail(f"{key}.backend", str(exc)) from exc
    except ImportError as exc:
        raise c.fail(
            f"{key}.backend", f"backend {backend!r} needs a library that is not installed: {exc}"
        ) from exc
    channels = c.value(table, "channels", int, key, 1)
    if not 1 <= channels <= cls.max_channels:
        raise c.fail(
            f"{key}.channels",
            f"backend {backend!r} supports 1..{cls.max_channels} channels, not {channels}",
        )
    timeout = c.value(table, "timeout", float, key, 5.0)
    if not 0 < timeout <= 600:
        raise c.fail(f"{key}.timeout", f"must be more than 0 and at most 600 s, not {timeout}")
    own = {k: v for k, v in table.items() if k not in _DEVICE_KEYS}
    try:
        options = parse_options(cls.Options, own)
        cls.check_options(channels, options)
    except OptionError as exc:
        raise c.fail(f"{key}.{exc.key}", exc.reason) from exc
    return DeviceConfig(
        name, backend, cls, channels, timeout, options, c.value(table, "description", str, key, "")
    )


def describe(path: str | os.PathLike[str]) -> str:
    """A one-line summary of a valid config, for --check-config."""
    cfg = load(path)
    return f"{Path(cfg.path)}: ok, {len(cfg.devices)} devices, {len(cfg.targets)} targets"

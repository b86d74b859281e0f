"""A lab of many hosts: an inventory that says which host (daemon) owns which target.

The inventory is a TOML file: the argument, else ``$LABPOWER_LAB``, else
``$XDG_CONFIG_HOME/labpower/lab.toml`` (``~/.config/labpower/lab.toml``)::

    [hosts.bench1]
    socket = "/run/labpower/labpower.sock"        # this machine
    [hosts.bench2]
    socket = "ssh://lab@bench2.example.org"       # see labpower.client.transport
    targets = ["dut7", "dut8"]                    # optional: else bench2 is asked

``Lab().target("dut7")`` finds the host of ``dut7``: a host that lists it, else the first
host (in file order) whose daemon has it. ``"bench2/dut7"`` names the host explicitly (a
target name never contains "/").
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from labpower.client import _protocol as p
from labpower.client.errors import DaemonUnreachable, LabpowerError, TargetNotFound
from labpower.client.sync import Client, TargetHandle
from labpower.client.transport import Address
from labpower.client.types import Target

if TYPE_CHECKING:
    # pathlib (and urllib.parse with it) is imported where a file is read: the ``labpower``
    # command starts without it
    from pathlib import Path

# where an inventory is found: with the socket's defaults (the command needs them at start)
LAB_ENV = p.LAB_ENV
default_file = p.default_lab_file


class InventoryError(LabpowerError):
    """The inventory file is missing or wrong; the message names the file and the key."""


class TargetNotLocated(TargetNotFound):
    """No reachable host has the target; ``unreachable`` names the hosts that could not be
    asked (the target may be on one of them)."""

    def _describe(self) -> str:
        reason = self.parameters.get("reason")
        if reason:
            return f"target {self.parameters.get('target')!r}: {reason}"
        text = f"no host of the lab has a target named {self.parameters.get('target')!r}"
        unreachable = self.parameters.get("unreachable")
        if unreachable:
            text += f" (not reachable: {', '.join(unreachable)})"
        return text


def default_path() -> Path:
    """:func:`default_file` as a path."""

    return Path(default_file())


@dataclass(frozen=True, slots=True)
class Host:
    """One lab host: its daemon's address, and the targets the inventory says it has."""

    name: str
    socket: str
    #: None: not listed, ask the daemon
    targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"host name {self.name!r} must be non-empty and without '/'")
        Address.parse(self.socket)


@dataclass(frozen=True, slots=True)
class HostTargets:
    """What one host answered to List: its targets, or why it could not be asked."""

    host: Host
    targets: tuple[Target, ...] = ()
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None


def parse(doc: Mapping[str, Any], source: str = "<lab>") -> dict[str, Host]:
    """The hosts of an inventory document. :raises InventoryError: naming ``source`` and key."""

    def fail(key: str, why: str) -> InventoryError:
        return InventoryError(f"{source}: {key}: {why}")

    unknown = set(doc) - {"hosts"}
    if unknown:
        raise fail(sorted(unknown)[0], "unknown key (the file has one table: [hosts.NAME])")
    hosts_doc = doc.get("hosts")
    if not isinstance(hosts_doc, Mapping) or not hosts_doc:
        raise fail("hosts", "at least one [hosts.NAME] table is required")
    hosts: dict[str, Host] = {}
    listed: dict[str, str] = {}
    for name, raw in hosts_doc.items():
        key = f"hosts.{name}"
        if not isinstance(raw, Mapping):
            raise fail(key, "must be a table")
        extra = set(raw) - {"socket", "targets"}
        if extra:
            raise fail(f"{key}.{sorted(extra)[0]}", "unknown key (known: socket, targets)")
        socket = raw.get("socket")
        if not isinstance(socket, str):
            raise fail(
                f"{key}.socket", "required: a socket path or ssh://[user@]host[:port][/path]"
            )
        targets = raw.get("targets")
        if targets is not None and (
            not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets)
        ):
            raise fail(f"{key}.targets", "must be a list of target names")
        for t in targets or ():
            if t in listed:
                raise fail(f"{key}.targets", f"{t!r} is listed for host {listed[t]!r} already")
            listed[t] = name
        try:
            hosts[name] = Host(name, socket, None if targets is None else tuple(targets))
        except ValueError as exc:
            raise fail(key, str(exc)) from None
    return hosts


def load(path: str | os.PathLike[str] | None = None) -> dict[str, Host]:
    """Read an inventory file (default: :func:`default_path`).

    :raises InventoryError: it cannot be read or is invalid.
    """
    import tomllib  # only where an inventory is used
    from pathlib import Path

    file = Path(path) if path is not None else default_path()
    try:
        with open(file, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise InventoryError(f"{file}: cannot read the lab inventory: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{file}: not valid TOML: {exc}") from exc
    return parse(doc, str(file))


class Lab:
    """Every host of an inventory, one :class:`Client` each (connected on first use).

    ``with Lab() as lab: lab.target("dut7").on()``. Not for sharing between threads while
    it still locates targets (use a :class:`Client` per thread for that).
    """

    def __init__(
        self,
        hosts: Mapping[str, Host] | str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = 60.0,
    ) -> None:
        """``hosts``: an inventory file, parsed hosts, or None for :func:`default_path`.

        :raises InventoryError: the file cannot be read or is invalid.
        """
        if hosts is None or isinstance(hosts, str | os.PathLike):
            hosts = load(hosts)
        self.hosts: dict[str, Host] = dict(hosts)
        self.timeout = timeout
        self._clients: dict[str, Client] = {}
        self._located: dict[str, str] = {}

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def client(self, host: str) -> Client:
        """The client of ``host``. :raises KeyError: no such host in the inventory."""
        client = self._clients.get(host)
        if client is None:
            client = self._clients[host] = Client(self.hosts[host].socket, timeout=self.timeout)
        return client

    def locate(self, target: str) -> tuple[str, str]:
        """(host, target name on that host) for ``target`` or ``"host/target"``.

        :raises TargetNotLocated: no reachable host has it (or the named host is unknown).
        """
        host, sep, name = target.partition("/")
        if sep:
            if host not in self.hosts:
                raise TargetNotLocated({"target": target, "reason": f"no host named {host!r}"})
            return host, name
        found = self._located.get(target)
        if found is not None:
            return found, target
        for h in self.hosts.values():
            if h.targets is not None and target in h.targets:
                return h.name, target
        unreachable = []
        for h in self.hosts.values():
            if h.targets is not None:
                continue
            try:
                names = {t.name for t in self.client(h.name).targets()}
            except DaemonUnreachable:
                unreachable.append(h.name)
                continue
            for n in names:
                self._located.setdefault(n, h.name)
            if target in names:
                return h.name, target
        raise TargetNotLocated({"target": target, "unreachable": unreachable})

    def target(self, target: str) -> TargetHandle:
        """The handle of ``target`` (or ``"host/target"``) on its host's client.

        :raises TargetNotLocated: see :meth:`locate`.
        """
        host, name = self.locate(target)
        return self.client(host).target(name)

    def survey(self) -> Iterator[HostTargets]:
        """Every host's targets, in inventory order; an unreachable host is reported, not
        raised. :raises LabpowerError: a host answered with an error."""
        for h in self.hosts.values():
            try:
                targets = self.client(h.name).targets()
            except DaemonUnreachable as exc:
                yield HostTargets(h, error=exc.reason)
                continue
            yield HostTargets(h, tuple(targets))

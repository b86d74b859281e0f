"""``labpower import-pdudaemon /etc/pdudaemon/pdudaemon.conf``: labpowerd.toml devices and
targets for every PDU of a pdudaemon config that labpower has a backend for.

Each port of such a PDU becomes a target ``<pdu>-<port>`` with ``pdudaemon = "<pdu>:<port>"``
and the pdudaemon aliases that point at it, so pduclient, LAVA and labgrid go on naming it as
before. Network PDUs map to the ``snmp`` and HTTP backends
(:mod:`labpower.client.pdudaemon.import_net`). PDUs whose driver labpower cannot drive yet
are named, with their driver, and left out: the result says which.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from labpower.client.pdudaemon.address import AddressError, check_name, format_address
from labpower.client.pdudaemon.import_net import NetDevice, Unsupported, network_device

#: where the importer names files for secrets pdudaemon's config does not hold
SECRETS_DIR = "/etc/labpower"


@dataclass(frozen=True, slots=True)
class Board:
    """How a pdudaemon driver maps to a labpower backend."""

    backend: str
    channels: int
    #: pdudaemon setting -> labpower device option, and the setting's default in pdudaemon
    options: Mapping[str, tuple[str, str | None]]
    note: str = ""


_SERIAL = {"device": ("port", "/dev/ttyACM0")}
#: pdudaemon driver names (as its config's "driver" says them) labpower has a backend for
BOARDS: dict[str, Board] = {
    **{f"NumatoUSB{n}": Board("numato", n, _SERIAL) for n in (1, 2, 4, 8, 16, 32, 64)},
    "devantech_USB-RLY02": Board("devantech", 2, _SERIAL),
    "devantech_USB-RLY08B": Board("devantech", 8, _SERIAL),
    "devantech_USB-RLY16": Board("devantech", 8, _SERIAL),
    "devantech_USB-RLY16L": Board("devantech", 8, _SERIAL),
    "vusbhid": Board(
        "usbrelay",
        8,
        {"serial": ("id", None)},
        "USBRelay boards have 1, 2, 4 or 8 relays: set channels to this board's",
    ),
    "YKUSH": Board("ykush", 3, {"serial": ("serial", None)}),
    "YKUSH3": Board("ykush", 3, {"serial": ("serial", None)}),
    "YKUSHXS": Board("ykush", 1, {"serial": ("serial", None)}),
}

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.:@+-]")


class PdudaemonConfigError(ValueError):
    """The pdudaemon config cannot be read: the message says where and why."""


@dataclass(slots=True)
class Result:
    """The labpowerd.toml text, and the PDUs and aliases left out (with the reason)."""

    toml: str = ""
    skipped: list[str] = field(default_factory=list)
    #: whether the text holds a secret (a community, a password) written inline
    secret: bool = False


def load(path: str) -> Mapping[str, Any]:
    """pdudaemon's config (JSON). :raises PdudaemonConfigError:"""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as exc:
        raise PdudaemonConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise PdudaemonConfigError(f"{path}: not pdudaemon's JSON config: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("pdus", {}), dict):
        raise PdudaemonConfigError(f'{path}: "pdus" must be an object of PDUs')
    if not isinstance(doc.get("aliases", {}), dict):
        raise PdudaemonConfigError(f'{path}: "aliases" must be an object')
    return doc


def _name(text: str) -> str:
    """A labpower device/target name from a pdudaemon hostname."""
    name = _NAME_CHARS.sub("_", text).lstrip("_.:@+-") or "pdu"
    return name[:100]


def _quote(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a JSON string is a TOML basic string


def _network(
    pdu: str, device: str, net: NetDevice, aliases: dict[tuple[str, int], list[str]]
) -> list[str]:
    lines = [f"[devices.{_quote(device)}]", f"backend = {_quote(net.backend)}"]
    lines += [f"{key} = {_quote(value)}" for key, value in net.options]
    lines += [f"# {note}" for note in net.notes]
    lines += [f"channels = {net.channels}", ""]
    for channel in range(1, net.channels + 1):
        port = net.first_port + channel - 1
        lines += [
            f"[targets.{_quote(f'{device}-{port}')}]",
            f"device = {_quote(device)}",
            f"channel = {channel}",
            f"pdudaemon = {_quote(format_address(pdu, port))}",
        ]
        names = aliases.pop((pdu, port), [])
        if names:
            lines.append(f"aliases = [{', '.join(_quote(a) for a in names)}]")
        lines.append("")
    return lines


def convert(
    doc: Mapping[str, Any], source: str = "pdudaemon.conf", secrets_dir: str = SECRETS_DIR
) -> Result:
    """labpowerd.toml text for ``doc``'s PDUs that labpower can drive."""
    result = Result()
    aliases: dict[tuple[str, int], list[str]] = {}
    for alias, where in doc.get("aliases", {}).items():
        try:
            key = (str(where["hostname"]), int(where["port"]))
        except (TypeError, KeyError, ValueError):
            result.skipped.append(f"alias {alias!r}: needs a hostname and a numeric port")
            continue
        aliases.setdefault(key, []).append(str(alias))
    lines = [f"# Imported from {source} by labpower import-pdudaemon.", ""]
    taken: set[str] = set()
    for pdu, settings in doc.get("pdus", {}).items():
        driver = settings.get("driver") if isinstance(settings, dict) else None
        board = BOARDS.get(driver) if isinstance(driver, str) else None
        net: NetDevice | None = None
        if board is None and isinstance(driver, str) and isinstance(settings, dict):
            try:
                net = network_device(driver, settings, str(pdu), secrets_dir)
            except Unsupported as exc:
                result.skipped.append(f"PDU {pdu!r} (driver {driver!r}): {exc}")
                continue
        if (board is None and net is None) or not isinstance(settings, dict):
            result.skipped.append(
                f"PDU {pdu!r} (driver {driver!r}): no labpower backend for this driver yet"
            )
            continue
        try:
            check_name(pdu, "PDU hostname")
        except AddressError as exc:
            result.skipped.append(f"PDU {pdu!r}: {exc}")
            continue
        device = _name(pdu)
        while device in taken:
            device += "_"
        taken.add(device)
        if net is not None:
            lines += _network(pdu, device, net, aliases)
            result.secret |= net.secret
            continue
        assert board is not None
        lines.append(f"[devices.{_quote(device)}]")
        lines.append(f"backend = {_quote(board.backend)}")
        for setting, (option, default) in board.options.items():
            value = settings.get(setting, default)
            if value is not None:
                lines.append(f"{option} = {_quote(str(value))}")
        if board.note:
            lines.append(f"# {board.note}")
        lines.append(f"channels = {board.channels}")
        lines.append("")
        for port in range(1, board.channels + 1):
            lines.append(f"[targets.{_quote(f'{device}-{port}')}]")
            lines.append(f"device = {_quote(device)}")
            lines.append(f"channel = {port}")
            if board.backend == "usbrelay" and settings.get("invert") is True:
                lines.append("invert = true")
            lines.append(f"pdudaemon = {_quote(format_address(pdu, port))}")
            names = aliases.pop((pdu, port), [])
            if names:
                lines.append(f"aliases = [{', '.join(_quote(a) for a in names)}]")
            lines.append("")
    for (pdu, port), names in aliases.items():
        for alias in names:
            result.skipped.append(
                f"alias {alias!r}: its PDU port {pdu}:{port} is not among the imported ones"
            )
    result.toml = "\n".join(lines)
    return result


def run(args: argparse.Namespace) -> int:
    """``labpower import-pdudaemon``: 0 if every PDU and alias was taken, else 1 (the
    config for the rest is written all the same; nothing when the input is unreadable)."""
    try:
        result = convert(load(args.config), args.config, args.secrets_dir or SECRETS_DIR)
        if args.output:
            # a community or password inline: not for everyone to read (labpowerd refuses
            # such a file); the admin gives it to group labpower
            mode = 0o640 if result.secret else 0o644
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with open(fd, "w", encoding="utf-8") as f:
                f.write(result.toml)
        else:
            sys.stdout.write(result.toml)
    except (PdudaemonConfigError, OSError) as exc:
        print(f"labpower import-pdudaemon: {exc}", file=sys.stderr)
        return 1
    for line in result.skipped:
        print(f"labpower import-pdudaemon: left out: {line}", file=sys.stderr)
    if result.secret:
        print(
            "labpower import-pdudaemon: the config holds communities or passwords from "
            "pdudaemon's: keep it from other users (chgrp labpower, chmod 640), or move them "
            "to *_file",
            file=sys.stderr,
        )
    return 1 if result.skipped else 0

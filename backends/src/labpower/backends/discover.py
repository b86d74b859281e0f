"""``labpower-discover``: list every supported board plugged in, with a config snippet for each.

Serial boards are recognised by USB VID:PID from pyserial's port list (the serial backends are
not imported), HID boards through hidapi, hub ports through pyusb. Each board comes with its
stable match keys (board ID or USB serial, hidraw node, USB port, /dev/serial links). The
plain output is valid TOML (descriptions are comments): paste the tables you want into
labpowerd.toml. ``--json`` prints the same as JSON.

Discovery switches nothing: it only enumerates, reads dcttech board IDs and relay states
(GET_REPORT) and hub descriptors. ``--set-id NEW`` (with ``--id``/``--path``/``--usb-port``)
writes a new ID into one dcttech board and refuses when the selection matches several.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from labpower.backends.errors import BackendError
from labpower.backends.hid import _lib, _select, lcus_hid, usbrelay, ykush
from labpower.backends.usb import usbhub

# USB VID:PID (pid None = any) of the serial families, as docs/hardware.md gives them
_SERIAL = [
    (
        (0x1A86, 0x7523),
        "lcus",
        "CH340 serial adapter: an LCUS relay board (or another CH340 device: check before use)",
    ),
    ((0x2A19, None), "numato", "Numato Lab relay module"),
    ((0x04D8, 0xFFEE), "devantech", "Devantech USB-RLY relay board"),
    (
        (0x0403, 0x6001),
        "kmtronic",
        "FTDI serial adapter: guessed to be a KMTronic relay board "
        "(any FT232 matches: check before use)",
    ),
]
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")  # bare TOML keys: no dots


@dataclass(frozen=True, slots=True)
class Found:
    """One board present."""

    backend: str
    description: str
    #: stable match keys: id / serial, path, usb_port, by-id, by-path...
    keys: dict[str, str]
    #: the device options a config needs (besides backend and channels)
    options: dict[str, Any]
    channels: int
    notes: list[str] = field(default_factory=list)
    #: what the board reports of its outputs, where it was read (never switched)
    state: dict[str, bool] | None = None


def _serial_links(device: str) -> dict[str, str]:
    links: dict[str, str] = {}
    root = _lib.dev_root() / "serial"
    for kind in ("by-id", "by-path"):
        try:
            names = sorted(os.listdir(root / kind))
        except OSError:
            continue
        for name in names:
            target = os.path.realpath(root / kind / name)
            if os.path.basename(target) == os.path.basename(device):
                links[kind] = f"/dev/serial/{kind}/{name}"
                break
    return links


def _serial_family(port: Any) -> tuple[str, str, bool] | None:
    """(backend, description, named KMTronic in its product string) of a serial port."""
    if "kmtronic" in (port.product or "").lower():
        return "kmtronic", "KMTronic relay board", True
    for (vid, pid), backend, what in _SERIAL:
        if port.vid == vid and pid in (None, port.pid):
            return backend, what, False
    return None


def serial_boards() -> list[Found]:
    """Serial relay boards, by VID:PID (and product string for KMTronic)."""
    try:
        ports = _lib.comports()
    except ImportError:
        return []
    found = []
    for port in ports:
        if port.vid is None:
            continue
        family = _serial_family(port)
        if family is None:
            continue
        backend, what, kmtronic = family
        keys = {"device": port.device, **_serial_links(port.device)}
        if port.serial_number:
            keys["serial"] = port.serial_number
        if port.location:
            keys["usb_port"] = str(port.location).partition(":")[0]
        notes = [] if kmtronic or backend != "kmtronic" else ["guess: matched by VID:PID only"]
        # a USB serial makes by-id unique to the board; without one only the port is stable
        stable = keys.get("by-id") if port.serial_number else keys.get("by-path")
        if stable is None:
            notes.append("no stable /dev/serial link found: the tty name changes on replug")
        found.append(
            Found(
                backend,
                f"{what} ({port.vid:04x}:{port.pid:04x}"
                f"{', ' + port.product if port.product else ''})",
                keys,
                {"port": stable or port.device},
                1,
                [*notes, "set channels to the board's relay count"],
            )
        )
    return found


def hid_boards(lib: Any) -> list[Found]:
    """dcttech, LCUS HID and YKUSH boards; reads dcttech IDs and states, switches nothing."""
    found = []
    relays = _select.candidates(lib, usbrelay.KIND, lambda dev: usbrelay.read_report(dev)[0])
    counts = Counter(c.id for c in relays if c.id is not None)
    for c in relays:
        n = usbrelay.relay_count(c) or 1
        keys = _hid_keys(c, "id")
        notes = []
        if c.id is None:
            notes.append("could not read the board ID (permission?)")
            options: dict[str, Any] = _port_or_path(c)
        elif counts[c.id] > 1:
            notes.append(
                f"ID {c.id!r} is shared by {counts[c.id]} boards: selected by USB "
                f"port; give it its own ID with `labpower-discover --set-id NEW "
                f"--usb-port {c.usb_port}`"
            )
            options = _port_or_path(c)
        else:
            options = {"id": c.id}
        mask = _relay_mask(lib, c)
        state = (
            None
            if mask is None
            else {str(ch): bool(mask >> (ch - 1) & 1) for ch in range(1, n + 1)}
        )
        found.append(
            Found("usbrelay", f"dcttech {c.product} relay board", keys, options, n, notes, state)
        )
    for c in _select.candidates(lib, lcus_hid.KIND):
        found.append(
            Found(
                "lcus-hid",
                "LCUS HID relay board",
                _hid_keys(c, ""),
                _port_or_path(c),
                1,
                ["the board cannot report its state or relay count: set channels"],
            )
        )
    for c in _select.candidates(lib, ykush.KIND):
        ports = {"YKUSH": 3, "YKUSH3": 3, "YKUSHXS": 1}.get(c.product.replace(" ", ""), 3)
        options = {"serial": c.serial} if c.serial else _port_or_path(c)
        found.append(
            Found(
                "ykush",
                f"Yepkit {c.product or 'YKUSH'} USB port switch",
                _hid_keys(c, "serial"),
                options,
                ports,
            )
        )
    return found


def _relay_mask(lib: Any, c: _select.Candidate) -> int | None:
    """The relay mask of a dcttech board (GET_REPORT, a read); None if unreadable."""
    try:
        with _select.opened(lib, c.path, c.raw_path) as dev:
            return usbrelay.read_report(dev)[1]
    except (BackendError, OSError, ValueError):
        return None


def _hid_keys(c: _select.Candidate, id_key: str) -> dict[str, str]:
    keys = {"path": c.path}
    if c.usb_port:
        keys["usb_port"] = c.usb_port
    if id_key and c.id is not None:
        keys[id_key] = c.id
    return keys


def _port_or_path(c: _select.Candidate) -> dict[str, Any]:
    return {"usb_port": c.usb_port} if c.usb_port else {"path": c.path}


def hubs() -> list[Found]:
    """USB hubs (not root hubs) with their port count and power switching mode."""
    try:
        lib = _lib.pyusb()
        devices = list(lib.find(find_all=True, bDeviceClass=usbhub.HUB_CLASS))
    except (ImportError, Exception) as exc:
        if isinstance(exc, ImportError) or type(exc).__name__ == "NoBackendError":
            return []
        raise
    found = []
    for dev in devices:
        where = usbhub.location(dev)
        if where is None:
            continue
        kind = "USB 3" if usbhub.is_usb3(dev) else "USB 2"
        keys = {"usb_port": where}
        try:
            ports, mode = usbhub.hub_descriptor(dev, 1000)
        except (lib.USBError, BackendError) as exc:
            found.append(
                Found(
                    "usbhub",
                    f"{kind} hub {dev.idVendor:04x}:{dev.idProduct:04x}",
                    keys,
                    {"hub": where},
                    1,
                    [f"cannot read its hub descriptor: {exc}"],
                )
            )
            continue
        finally:
            try:
                lib.dispose(dev)
            except lib.USBError:
                pass
        if mode != 1:
            continue  # ganged or no switching: its ports cannot be switched one by one
        notes = (
            ["a USB 3 hub is two hubs: the USB 2 half is on another bus"]
            if usbhub.is_usb3(dev)
            else []
        )
        found.append(
            Found(
                "usbhub",
                f"{kind} hub {dev.idVendor:04x}:{dev.idProduct:04x} with per-port power switching",
                keys,
                {"hub": where},
                ports,
                notes,
            )
        )
    return found


def discover() -> list[Found]:
    """Every supported board present, serial first. Switches nothing.

    :raises ImportError: hidapi is not installed (serial and USB are skipped when missing).
    """
    try:
        hid_lib = _lib.hidapi()
    except ImportError:
        hid_boards_found: list[Found] = []
    else:
        hid_boards_found = hid_boards(hid_lib)
    return [*serial_boards(), *hid_boards_found, *hubs()]


def device_name(board: Found, taken: set[str]) -> str:
    """A config name for the board, unique among ``taken``."""
    ident = (
        board.options.get("id")
        or board.options.get("serial")
        or board.keys.get("usb_port")
        or board.keys.get("device", "board")
    )
    base = _NAME_BAD.sub("-", f"{board.backend}-{os.path.basename(str(ident))}").strip("-")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def snippet(board: Found, name: str) -> str:
    """The TOML table configuring ``board`` as device ``name``."""
    lines = [f"[devices.{name}]", f"backend = {_toml(board.backend)}"]
    lines += [f"{k} = {_toml(v)}" for k, v in board.options.items()]
    lines.append(f"channels = {board.channels}")
    return "\n".join(lines)


def render(boards: list[Found]) -> str:
    if not boards:
        return "# no supported board found\n"
    taken: set[str] = set()
    blocks = []
    for b in boards:
        head = [f"# {b.description}"]
        head += [f"#   {k}: {v}" for k, v in b.keys.items()]
        if b.state is not None:
            head.append(
                "#   state: "
                + ", ".join(f"{ch} {'on' if on else 'off'}" for ch, on in b.state.items())
            )
        head += [f"#   note: {n}" for n in b.notes]
        blocks.append("\n".join([*head, snippet(b, device_name(b, taken))]))
    return "\n\n".join(blocks) + "\n"


def _set_id(args: argparse.Namespace) -> int:
    sel = _select.Selector(args.id, args.path, args.usb_port)
    if sel.id is None and sel.path is None and sel.usb_port is None:
        print(
            "labpower-discover: --set-id needs --id, --path or --usb-port to pick the board",
            file=sys.stderr,
        )
        return 2
    try:
        board = usbrelay.set_board_id(sel, args.set_id)
    except (BackendError, ImportError) as exc:
        print(f"labpower-discover: {exc}", file=sys.stderr)
        return 1
    print(f"{board.describe()}: ID is now {args.set_id!r}")
    return 0


def _probe(urls: list[str]) -> list[Found]:
    """The network devices at ``urls`` (see :mod:`labpower.backends.net.probe`)."""
    import anyio
    from labpower.backends.net.probe import probe

    async def all_of() -> list[Found]:
        return [await probe(url) for url in urls]

    return anyio.run(all_of)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="labpower-discover",
        description="List the relay boards plugged in, with a labpowerd config snippet for "
        "each. Switches nothing.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    parser.add_argument(
        "--set-id", metavar="NEW", help="write a new ID into one dcttech USBRelay board"
    )
    parser.add_argument("--id", help="with --set-id: the board's current ID")
    parser.add_argument("--path", help="with --set-id: the board's hidraw node")
    parser.add_argument("--usb-port", help="with --set-id: the board's USB port (1-2.4)")
    parser.add_argument(
        "--probe",
        action="append",
        metavar="URL",
        help="ask a network device instead: snmp://[COMMUNITY@]HOST[:PORT] or "
        "http://[USER:PASSWORD@]HOST[:PORT] (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.set_id is not None:
        return _set_id(args)
    if args.id or args.path or args.usb_port:
        parser.error("--id, --path and --usb-port go with --set-id")
    try:
        boards = _probe(args.probe) if args.probe else discover()
    except ValueError as exc:
        parser.error(str(exc))
    except BackendError as exc:
        print(f"labpower-discover: {exc}", file=sys.stderr)
        return 1
    if args.json:
        taken: set[str] = set()
        out = [
            {**asdict(b), "name": (n := device_name(b, taken)), "snippet": snippet(b, n)}
            for b in boards
        ]
        print(json.dumps(out, indent=2))
    else:
        sys.stdout.write(render(boards))
    return 0


if __name__ == "__main__":
    sys.exit(main())

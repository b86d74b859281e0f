"""``labpower-discover``: list every supported board plugged in, with a config snippet for each.

What to look for comes from the backends themselves: each declares its boards' USB IDs,
subsystem and identity (:attr:`labpower.backends.base.Backend.usb`, see
:mod:`labpower.backends.usbmatch`), and this module goes through the registered backends'
declarations: serial ports (pyserial's port list) by VID:PID and product string, HID boards
through hidapi, hubs through pyusb by device class. Each board comes with its stable match
keys (board ID or USB serial, hidraw node, USB port, /dev/serial links). The plain output is
valid TOML (descriptions are comments): paste the tables you want into labpowerd.toml.
``--json`` prints the same as JSON.

A port on a shared chip (a CH340 or FT232R, which LCUS and KMTronic boards and RS-485 Modbus
adapters are all built around) is listed once, as that chip with the backends it may be, and
its table is commented out: the user picks the backend, nothing here guesses.

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

from labpower.backends import registry
from labpower.backends.errors import BackendError
from labpower.backends.hid import _lib, _select, usbrelay
from labpower.backends.hid._base import HidBackend
from labpower.backends.usb import usbhub
from labpower.backends.usbmatch import Chip, UsbMatch

_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")  # bare TOML keys: no dots


@dataclass(frozen=True, slots=True)
class Found:
    """One board present."""

    #: the backend that drives it; None for a port on a shared chip (see :attr:`candidates`)
    backend: str | None
    description: str
    #: stable match keys: id / serial, path, usb_port, by-id, by-path...
    keys: dict[str, str]
    #: the device options a config needs (besides backend and channels)
    options: dict[str, Any]
    channels: int
    notes: list[str] = field(default_factory=list)
    #: what the board reports of its outputs, where it was read (never switched)
    state: dict[str, bool] | None = None
    #: the backends that may drive it: [backend] when known, several for a shared chip
    candidates: list[str] = field(default_factory=list)
    #: the shared chip it is on (``CH340``), when its USB IDs say no more than that
    chip: str | None = None


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


@dataclass(frozen=True, slots=True)
class _SerialMatch:
    """Who a serial port belongs to: one backend, or a shared chip and who may drive it."""

    backends: list[str]
    description: str
    chip: Chip | None = None
    #: the config option that names the port (every serial backend calls it ``port``)
    option: str = "port"


def _serial_match(port: Any, declared: list[tuple[str, UsbMatch]]) -> _SerialMatch | None:
    """A product string naming the board wins, then the board's own USB IDs, then a shared
    chip (several candidates, none chosen)."""
    product = (port.product or "").lower()
    for name, usb in declared:
        ids = [*usb.ids, *(i for chip in usb.chips for i in chip.ids)]
        if (
            usb.product
            and usb.product.lower() in product
            and any(i.matches(port.vid, port.pid) for i in ids)
        ):
            return _SerialMatch([name], usb.description, option=usb.option)
    for name, usb in declared:
        if any(i.matches(port.vid, port.pid) for i in usb.ids):
            return _SerialMatch([name], usb.description, option=usb.option)
    for _, usb in declared:
        for chip in usb.chips:
            if any(i.matches(port.vid, port.pid) for i in chip.ids):
                names = [n for n, u in declared if chip in u.chips]
                return _SerialMatch(names, f"{chip.name} USB serial adapter", chip)
    return None


def serial_boards(declared: list[tuple[str, UsbMatch]]) -> list[Found]:
    """Serial boards, by VID:PID and product string, as the tty backends declare them."""
    try:
        ports = _lib.comports()
    except ImportError:
        return []
    found = []
    for port in ports:
        if port.vid is None:
            continue
        match = _serial_match(port, declared)
        if match is None:
            continue
        keys = {"device": port.device, **_serial_links(port.device)}
        if port.serial_number:
            keys["serial"] = port.serial_number
        if port.location:
            keys["usb_port"] = str(port.location).partition(":")[0]
        notes = []
        if match.chip is not None:
            notes.append(
                f"{match.chip.name} is a generic USB serial chip: the board behind it may be "
                f"{' or '.join(match.backends)}; uncomment the table and keep the backend it is"
            )
        # a USB serial makes by-id unique to the board; without one only the port is stable
        stable = keys.get("by-id") if port.serial_number else keys.get("by-path")
        if stable is None:
            notes.append("no stable /dev/serial link found: the tty name changes on replug")
        found.append(
            Found(
                match.backends[0] if match.chip is None else None,
                f"{match.description} ({port.vid:04x}:{port.pid:04x}"
                f"{', ' + port.product if port.product else ''})",
                keys,
                {match.option: stable or port.device},
                1,
                [*notes, "set channels to the board's relay count"],
                candidates=match.backends,
                chip=match.chip.name if match.chip else None,
            )
        )
    return found


def hid_boards(lib: Any, declared: list[tuple[str, type[HidBackend]]]) -> list[Found]:
    """The HID boards of every HID backend; reads board IDs and states, switches nothing."""
    found = []
    for name, cls in declared:
        usb = cls.usb
        assert usb is not None  # only declared backends are passed
        boards = _select.candidates(lib, cls.kind, cls.id_reader())
        counts = Counter(c.id for c in boards if c.id is not None)
        for c in boards:
            facts = cls.facts(lib, c)
            notes = list(facts.notes)
            id_option = cls.kind.id_option
            options: dict[str, Any] = _port_or_path(c)
            if id_option and c.id is None and cls.id_reader() is not None:
                notes.append(f"could not read the board {id_option.upper()} (permission?)")
            elif id_option and c.id is not None and counts[c.id] > 1:
                notes.append(
                    f"{id_option.upper()} {c.id!r} is shared by {counts[c.id]} boards: "
                    f"selected by USB port{cls.duplicate_hint(c)}"
                )
            elif id_option and c.id is not None:
                options = {id_option: c.id}
            state = None if facts.state is None else {str(ch): on for ch, on in facts.state.items()}
            found.append(
                Found(
                    name,
                    f"{usb.description} ({c.product or f'{c.vendor_id:04x}:{c.product_id:04x}'})",
                    _hid_keys(c, id_option),
                    options,
                    facts.channels or 1,
                    notes,
                    state,
                    candidates=[name],
                )
            )
    return found


def _hid_keys(c: _select.Candidate, id_key: str) -> dict[str, str]:
    keys = {"path": c.path}
    if c.usb_port:
        keys["usb_port"] = c.usb_port
    if id_key and c.id is not None:
        keys[id_key] = c.id
    return keys


def _port_or_path(c: _select.Candidate) -> dict[str, Any]:
    return {"usb_port": c.usb_port} if c.usb_port else {"path": c.path}


def hubs(declared: list[tuple[str, UsbMatch]]) -> list[Found]:
    """USB hubs (not root hubs) with their port count and power switching mode, for the
    backends that declare the hub class."""
    classes = {usb.device_class: name for name, usb in declared if usb.device_class is not None}
    if usbhub.HUB_CLASS not in classes:
        return []
    backend = classes[usbhub.HUB_CLASS]
    option = next(usb.option for name, usb in declared if name == backend)
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
                    backend,
                    f"{kind} hub {dev.idVendor:04x}:{dev.idProduct:04x}",
                    keys,
                    {option: where},
                    1,
                    [f"cannot read its hub descriptor: {exc}"],
                    candidates=[backend],
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
                {option: where},
                ports,
                notes,
                candidates=[backend],
            )
        )
    return found


def discover() -> list[Found]:
    """Every supported board present, serial first. Switches nothing.

    :raises ImportError: hidapi is not installed (serial and USB are skipped when missing).
    """
    declared = registry.declared()
    by_subsystem: dict[str, list[tuple[str, UsbMatch]]] = {"tty": [], "hidraw": [], "usb": []}
    hid: list[tuple[str, type[HidBackend]]] = []
    for name, cls, usb in declared:
        by_subsystem[usb.subsystem].append((name, usb))
        if usb.subsystem == "hidraw" and issubclass(cls, HidBackend):
            hid.append((name, cls))
    try:
        hid_lib = _lib.hidapi()
    except ImportError:
        hid_boards_found: list[Found] = []
    else:
        hid_boards_found = hid_boards(hid_lib, hid)
    return [*serial_boards(by_subsystem["tty"]), *hid_boards_found, *hubs(by_subsystem["usb"])]


def device_name(board: Found, taken: set[str]) -> str:
    """A config name for the board, unique among ``taken``."""
    ident = (
        board.options.get("id")
        or board.options.get("serial")
        or board.keys.get("usb_port")
        or board.keys.get("device", "board")
    )
    kind = board.backend or (board.chip or "port").lower()
    base = _NAME_BAD.sub("-", f"{kind}-{os.path.basename(str(ident))}").strip("-")
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
    """The TOML table configuring ``board`` as device ``name``. For a port on a shared chip
    the table is commented out, with the backends it may be: the user picks one."""
    if board.backend is not None:
        backend = f"backend = {_toml(board.backend)}"
    else:
        first, *others = board.candidates
        backend = f"backend = {_toml(first)}  # or " + ", ".join(_toml(o) for o in others)
    lines = [f"[devices.{name}]", backend]
    lines += [f"{k} = {_toml(v)}" for k, v in board.options.items()]
    lines.append(f"channels = {board.channels}")
    if board.backend is None:
        lines = [f"# {line}" for line in lines]
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
        if b.backend is None:
            head.append(f"#   may be: {', '.join(b.candidates)}")
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

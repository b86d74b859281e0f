"""``labpower-sim KIND --link PATH``: run a simulated relay board until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from labpower.backends.sim.base import PtySimulator, StopSignals, serve_until_stopped
from labpower.backends.sim.boards import DIALECTS, SIMULATORS, LcusSimulator

#: the network kinds (sim/http_cli.py); named here so that `labpower-sim` imports no HTTP code
HTTP_KINDS = ("shelly", "tasmota", "gude", "netio")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labpower-sim",
        description="Simulate a serial relay board on a pty, byte for byte, for trying "
        "labpower without hardware. `labpower-sim usbrelay --uhid` simulates a dcttech USB "
        "HID relay board through /dev/uhid instead (see `labpower-sim usbrelay --help`); "
        "`labpower-sim shelly|tasmota|gude|netio` a network device's HTTP API on loopback "
        "(see `labpower-sim shelly --help`).",
        epilog='Point a labpowerd device\'s `port` at the link, e.g. backend = "lcus", '
        'port = "/tmp/lcus0".',
    )
    parser.add_argument("kind", choices=sorted(SIMULATORS), help="the board to simulate")
    parser.add_argument(
        "--link", required=True, metavar="PATH", help="symlink to create, pointing at the pty"
    )
    parser.add_argument(
        "--channels",
        type=int,
        metavar="N",
        help="number of relays (default: 4; numato and devantech: 8)",
    )
    parser.add_argument(
        "--wire-baud",
        type=float,
        metavar="BAUD",
        help="make each byte take as long as on a wire at this baud rate",
    )
    parser.add_argument(
        "--dialect",
        choices=DIALECTS,
        default="ascii",
        help="lcus only: what the board answers to a status query (default: ascii)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not print switching commands"
    )
    return parser


def make(args: argparse.Namespace) -> PtySimulator:
    """The simulator the arguments describe. :raises ValueError: bad channel count etc."""
    cls = SIMULATORS[args.kind]
    kwargs: dict[str, Any] = {"wire_baud": args.wire_baud}
    if args.channels is not None:
        kwargs["channels"] = args.channels
    if cls is LcusSimulator:
        kwargs["dialect"] = args.dialect
    return cls(args.link, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["usbrelay"]:
        # the HID board is a uhid device, not a pty: it has its own command line
        from labpower.backends.sim.uhid import main as uhid_main

        return uhid_main(argv[1:])
    if argv[:1] and argv[0] in HTTP_KINDS:
        # network devices listen on an address, not a pty
        from labpower.backends.sim.http_cli import main as http_main

        return http_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.kind != "lcus" and args.dialect != "ascii":
        parser.error("--dialect applies to lcus only")
    try:
        sim = make(args)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.quiet:
        sim.on_event = lambda text: print(f"{sim.kind}: {text}", flush=True)
    stop = StopSignals()

    def banner() -> str:
        extra = f", dialect {args.dialect}" if isinstance(sim, LcusSimulator) else ""
        baud = f", wire time of {args.wire_baud:g} baud" if args.wire_baud else ""
        return (
            f"{sim.kind} board with {sim.channels} relays{extra}{baud} on {sim.path}, "
            f"linked at {args.link}; Ctrl-C to stop"
        )

    return serve_until_stopped(sim, stop, f"create {args.link}", banner)


if __name__ == "__main__":
    sys.exit(main())

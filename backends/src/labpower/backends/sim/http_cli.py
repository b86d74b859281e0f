"""``labpower-sim shelly|tasmota|gude|netio --listen HOST[:PORT]``: a simulated network device
on loopback, until Ctrl-C. Point a device's ``host`` at the address it prints."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from labpower.backends.net.address import parse_host
from labpower.backends.secret import MAX_SECRET
from labpower.backends.sim.base import StopSignals, serve_until_stopped
from labpower.backends.sim.http import HttpSimulator
from labpower.backends.sim.http_devices import GudeSimulator, NetioSimulator, TasmotaSimulator
from labpower.backends.sim.shelly import ShellySimulator

HTTP_SIMULATORS: dict[str, type[HttpSimulator]] = {
    "shelly": ShellySimulator,
    "tasmota": TasmotaSimulator,
    "gude": GudeSimulator,
    "netio": NetioSimulator,
}


def build_parser(kind: str) -> argparse.ArgumentParser:
    cls = HTTP_SIMULATORS[kind]
    parser = argparse.ArgumentParser(
        prog=f"labpower-sim {kind}",
        description=f"Simulate a {kind} device's HTTP API on loopback, for trying labpower "
        "without the device.",
        epilog=f'Point a labpowerd device at it: backend = "{kind}", host = "127.0.0.1:PORT".',
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="HOST[:PORT]",
        help="where to listen (default: 127.0.0.1; without a port: a free one, printed)",
    )
    parser.add_argument(
        "--channels", type=int, default=1, metavar="N", help=f"outlets (1..{cls.max_channels})"
    )
    parser.add_argument("--user", help="the user name the device asks for")
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="ask for this password (read from FILE) with the device's own auth scheme",
    )
    if kind == "shelly":
        parser.add_argument(
            "--generation",
            type=int,
            default=2,
            choices=(1, 2, 3, 4),
            help="1: Gen1 REST API; 2-4: JSON-RPC (default: 2)",
        )
        parser.add_argument(
            "--emeter",
            action="store_true",
            help="with --generation 1: a Shelly 3EM (voltage and current per phase) instead "
            "of a 1PM / 2.5 (power only)",
        )
    if kind in ("shelly", "tasmota", "netio", "gude"):
        parser.add_argument(
            "--no-metering", action="store_true", help="a model without a power meter"
        )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not print switching commands"
    )
    return parser


def make(kind: str, args: argparse.Namespace) -> HttpSimulator:
    """The simulator the arguments describe. :raises ValueError: bad address, channels..."""
    address = parse_host(args.listen, 0)
    kwargs: dict[str, Any] = {"channels": args.channels}
    if args.user:
        kwargs["user"] = args.user
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            kwargs["password"] = f.read(MAX_SECRET).rstrip("\r\n")
    if getattr(args, "generation", None) is not None:
        kwargs["generation"] = args.generation
    if getattr(args, "emeter", False):
        kwargs["emeter"] = True
    if getattr(args, "no_metering", False):
        kwargs["metering"] = False
    return HTTP_SIMULATORS[kind](address.host, address.port, **kwargs)


def main(argv: Sequence[str]) -> int:
    kind, rest = argv[0], list(argv[1:])
    parser = build_parser(kind)
    args = parser.parse_args(rest)
    try:
        sim = make(kind, args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    if not args.quiet:
        sim.on_event = lambda text: print(f"{kind}: {text}", flush=True)
    stop = StopSignals()

    def banner() -> str:
        auth = f", {sim.auth_scheme} auth as {sim.user!r}" if sim.password else ""
        return (
            f"{kind} device with {sim.channels} outlets{auth} at {sim.url}; "
            f'host = "{sim.address}"; Ctrl-C to stop'
        )

    return serve_until_stopped(sim, stop, f"listen on {args.listen}", banner)

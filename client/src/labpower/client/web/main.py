"""``labpower-web``: the lab page and Prometheus metrics, served beside labpowerd.

It reads the daemons over varlink like any client (so their access rules apply: it sees the
targets its user may read) and switches nothing. It listens on loopback unless told
otherwise; under systemd the port comes from labpower-web.socket. It has no authentication
of its own: to show it to others, put it behind a reverse proxy that has (see the manual).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import anyio
from anyio.abc import SocketListener
from labpower.client._protocol import socket_path
from labpower.client.lab import InventoryError, load
from labpower.client.listen import (
    add_arguments,
    listening_socket,
    run_service,
    stop_on_signals,
)
from labpower.client.web.service import WebService
from labpower.client.web.watch import LabWatch, Settings

DEFAULT_LISTEN = "127.0.0.1:16422"
#: the host's name on the page and in metrics when no inventory is given
LOCAL_HOST = "local"


async def run(
    hosts: Sequence[tuple[str, str]],
    settings: Settings,
    listen: tuple[str, int],
    allowed_hosts: Sequence[str],
) -> None:
    """Serve the lab of ``hosts`` on the socket systemd passed, else on ``listen``.

    :raises StartupError:
    """
    sock, where = listening_socket(listen)
    listener = await SocketListener.from_socket(sock)
    shown = ", ".join(f"{name} ({address})" for name, address in hosts)
    logging.getLogger("labpower.web").info("listening on %s, showing %s", where, shown)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(stop_on_signals, tg.cancel_scope)
        await WebService(LabWatch(hosts, settings), allowed_hosts).serve(listener)


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not within {low:g} to {high:g} s")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labpower-web",
        description="Serve a read-only page of the lab's targets (state, leases, switches, "
        "a live log, readings) and Prometheus metrics at /metrics, read from labpowerd over "
        "varlink. No authentication: keep it on loopback or behind an authenticating proxy.",
    )
    add_arguments(parser, DEFAULT_LISTEN)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--socket",
        help="labpowerd's socket (default $LABPOWER_SOCKET, else /run/labpower/labpower.sock)",
    )
    where.add_argument(
        "--lab",
        metavar="FILE",
        help="a lab inventory (labpower's lab.toml): show every host it lists",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name requests may be addressed to, besides IP addresses and localhost "
        "(a reverse proxy's public name); others are refused, against DNS rebinding",
    )
    parser.add_argument(
        "--poll",
        type=_seconds(0.1, 3600),
        default=5.0,
        help="seconds between state checks when no log entry says something changed (default 5)",
    )
    parser.add_argument(
        "--read-interval",
        type=_seconds(0.1, 3600),
        default=5.0,
        help="seconds between readings of each target (default 5)",
    )
    parser.add_argument(
        "--window",
        type=_seconds(10, 86400),
        default=900.0,
        help="seconds of readings the plots show (default 900)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.lab is not None:
        try:
            hosts = [(h.name, h.socket) for h in load(args.lab).values()]
        except InventoryError as exc:
            print(f"labpower-web: {exc}", file=sys.stderr)
            return 2
    else:
        hosts = [(LOCAL_HOST, socket_path(args.socket))]
    settings = Settings(poll=args.poll, read_interval=args.read_interval, window=args.window)
    return run_service(
        "labpower-web", args.log_level, run, hosts, settings, args.listen, args.allow_host
    )


if __name__ == "__main__":
    sys.exit(main())

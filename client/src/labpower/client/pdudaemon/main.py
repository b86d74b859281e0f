"""``labpower-pdudaemon``: pdudaemon's listener (HTTP and TCP on one port) for labpowerd.

pdudaemon's protocols carry no authentication: whoever reaches the port can switch every
target that has a ``pdudaemon`` address or ``aliases``. It listens on loopback unless told
otherwise; under systemd the port comes from labpower-pdudaemon.socket.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import anyio
from anyio.abc import SocketListener
from labpower.client._protocol import socket_path
from labpower.client.listen import StartupError, listening_socket, parse_listen
from labpower.client.pdudaemon.service import PduService

DEFAULT_LISTEN = "127.0.0.1:16421"


async def run(service: PduService, listen: tuple[str, int]) -> None:
    """Serve on the socket systemd passed, else on ``listen``. :raises StartupError:"""
    sock, where = listening_socket(listen)
    listener = await SocketListener.from_socket(sock)
    logging.getLogger("labpower.pdudaemon").info(
        "listening on %s, switching through %s", where, service.socket
    )
    async with listener:
        await service.serve(listener)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labpower-pdudaemon",
        description="Answer pdudaemon's HTTP and TCP requests (LAVA's pduclient, labgrid's "
        "PDUDaemonDriver) by switching labpower targets. No authentication: keep it on "
        "loopback or behind a firewall.",
    )
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=parse_listen(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"where to listen (default {DEFAULT_LISTEN}; ignored under socket activation)",
    )
    parser.add_argument(
        "--socket",
        help="labpowerd's socket (default $LABPOWER_SOCKET, else /run/labpower/labpower.sock)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(levelname)s %(message)s", stream=sys.stderr
    )
    service = PduService(socket_path(args.socket))
    try:
        anyio.run(run, service, args.listen)
    except StartupError as exc:
        print(f"labpower-pdudaemon: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

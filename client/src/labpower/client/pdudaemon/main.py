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

from anyio.abc import SocketListener
from labpower.client._protocol import socket_path
from labpower.client.listen import add_arguments, listening_socket, run_service
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
    add_arguments(parser, DEFAULT_LISTEN)
    parser.add_argument(
        "--socket",
        help="labpowerd's socket (default $LABPOWER_SOCKET, else /run/labpower/labpower.sock)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    service = PduService(socket_path(args.socket))
    return run_service("labpower-pdudaemon", args.log_level, run, service, args.listen)


if __name__ == "__main__":
    sys.exit(main())

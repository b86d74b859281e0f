"""``labpower-pdudaemon``: pdudaemon's listener (HTTP and TCP on one port) for labpowerd.

pdudaemon's protocols carry no authentication: whoever reaches the port can switch every
target that has a ``pdudaemon`` address or ``aliases``. It listens on loopback unless told
otherwise; under systemd the port comes from labpower-pdudaemon.socket.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence

import anyio
from anyio.abc import SocketListener
from labpower.client._protocol import socket_path
from labpower.client.pdudaemon.service import PduService

DEFAULT_LISTEN = "127.0.0.1:16421"
_LISTEN_FD = 3


class StartupError(Exception):
    """The service cannot start: the message says why."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``. :raises argparse.ArgumentTypeError:"""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not HOST:PORT (for example {DEFAULT_LISTEN}): {text!r}")
    return host, int(port)


def activated_socket() -> socket.socket | None:
    """The TCP socket systemd passed ($LISTEN_FDS for this $LISTEN_PID), else None.

    :raises StartupError: what was passed is not a listening TCP socket.
    """
    fds, pid = os.environ.pop("LISTEN_FDS", None), os.environ.pop("LISTEN_PID", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    if not fds or pid != str(os.getpid()) or fds == "0":
        return None
    try:
        sock = socket.socket(fileno=_LISTEN_FD)
    except OSError as exc:
        raise StartupError(f"the socket passed by systemd is unusable: {exc}") from exc
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        sock.detach()
        raise StartupError("the socket passed by systemd is not a listening TCP socket")
    return sock


async def run(service: PduService, listen: tuple[str, int]) -> None:
    """Serve on the socket systemd passed, else on ``listen``. :raises StartupError:"""
    sock = activated_socket()
    where = "the socket systemd passed"
    if sock is None:
        host, port = listen
        where = f"{host}:{port}"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, port), family=family, backlog=512)
        except OSError as exc:
            raise StartupError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
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

"""Where the services beside labpowerd (``labpower-pdudaemon``, ``labpower-web``) listen:
the TCP socket systemd passed (socket activation), else ``--listen HOST:PORT``.

Under systemd the port belongs to the .socket unit, so the service itself can run with
``PrivateNetwork=yes``: it accepts on the passed socket and opens no network socket of its
own.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketListener

_LISTEN_FD = 3
LOG_LEVELS = ("debug", "info", "warning", "error")


class StartupError(Exception):
    """The service cannot start: the message says why."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` (port 0: any free port, logged at start).

    :raises argparse.ArgumentTypeError:
    """
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not HOST:PORT (for example 127.0.0.1:16422): {text!r}")
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


def listening_socket(listen: tuple[str, int]) -> tuple[socket.socket, str]:
    """The socket systemd passed, else a new one on ``listen``; and where it is, for the
    log. :raises StartupError:"""
    sock = activated_socket()
    if sock is not None:
        return sock, "the socket systemd passed"
    host, port = listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=512)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    host, port = sock.getsockname()[:2]
    return sock, f"{host}:{port}"


def peer_name(stream: ByteStream) -> str:
    """The client's address, for the log ("?" when the stream has none)."""
    try:
        address = stream.extra(SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return "?"
    return str(address[0]) if isinstance(address, tuple) else str(address)


async def stop_on_signals(scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` at SIGTERM (systemd stopping the service) or SIGINT: a clean stop,
    exit status 0."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


def add_arguments(parser: argparse.ArgumentParser, default_listen: str) -> None:
    """``--listen`` and ``--log-level``, as every such service takes them."""
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=parse_listen(default_listen),
        metavar="HOST:PORT",
        help=f"where to listen (default {default_listen}; ignored under socket activation)",
    )
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)


def run_service(
    prog: str, log_level: str, serve: Callable[..., Awaitable[None]], *args: Any
) -> int:
    """Log to stderr at ``log_level``, run ``serve(*args)`` until it returns or a signal
    stops it; the exit status (1: it could not start, the reason on stderr)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        anyio.run(serve, *args)
    except StartupError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


async def serve_connections(
    listener: SocketListener,
    handle: Callable[[ByteStream], Awaitable[None]],
    max_connections: int,
) -> None:
    """Accept until cancelled, each connection in a task of its own; at most
    ``max_connections`` at once (the next waits in the listen backlog)."""
    slots = anyio.Semaphore(max_connections)

    async def one(stream: ByteStream) -> None:
        try:
            await handle(stream)
        finally:
            slots.release()

    async with anyio.create_task_group() as tg:
        while True:
            await slots.acquire()
            try:
                stream = await listener.accept()
            except BaseException:
                slots.release()
                raise
            tg.start_soon(one, stream)

"""sd_notify: tell systemd (or a test) how the daemon is doing.

Uses systemd-python where it is installed; otherwise sends the datagram itself, which is the
whole protocol. Without $NOTIFY_SOCKET every call does nothing.
"""

from __future__ import annotations

import os
import socket

try:
    from systemd import daemon as _sd
except ImportError:  # optional: the daemon runs without systemd-python
    _sd = None


def send(state: str) -> bool:
    """Send one notification; False when there is nobody to tell."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if _sd is not None:
        return bool(_sd.notify(state))
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        return False
    return True


def ready(status: str) -> None:
    send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")


def stopping() -> None:
    send("STOPPING=1")

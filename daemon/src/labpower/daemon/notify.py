"""sd_notify: tell systemd (or a test) how the daemon is doing.

The protocol is one datagram of ``KEY=value`` lines to the socket named by ``$NOTIFY_SOCKET``;
without that variable every call does nothing. The datagram is sent here rather than through
systemd-python's ``sd_notify``, because libsystemd sends it on a blocking socket: a listener
that stops reading (a test's socket, a wedged manager) would then freeze the event loop, the
very thread that sends the watchdog pings. Here a send that cannot go out at once is dropped.
"""

from __future__ import annotations

import os
import socket
import time


def _address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not (address.startswith("/") or address.startswith("@")):
        return None
    return "\0" + address[1:] if address.startswith("@") else address


def send(state: str) -> bool:
    """Send one notification; False when there is nobody to tell or it could not go out."""
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), socket.MSG_DONTWAIT, address)
    except OSError:  # listener gone, queue full, socket stale: never fatal, never blocking
        return False
    return True


def enabled() -> bool:
    """Whether anybody listens for notifications."""
    return _address() is not None


def ready(status: str) -> None:
    """READY=1: the config is loaded, devices are open and the socket accepts calls."""
    send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")


def status(text: str) -> None:
    send(f"STATUS={text}")


def reloading() -> None:
    """RELOADING=1 with the MONOTONIC_USEC systemd uses to match it with the reload request."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    send(f"RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading the configuration")


def stopping() -> None:
    send("STOPPING=1\nSTATUS=stopping")


def watchdog() -> None:
    send("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), or None when the service
    has no watchdog or the watchdog is meant for another process ($WATCHDOG_PID)."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000

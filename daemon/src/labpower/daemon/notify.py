"""sd_notify: tell systemd (or a test) how the daemon is doing.

The protocol is one datagram of ``KEY=value`` lines to the socket named by ``$NOTIFY_SOCKET``;
without that variable every call does nothing. The datagram is sent here rather than through
systemd-python's ``sd_notify``, because libsystemd sends it on a blocking socket: a listener
that stops reading (a test's socket, a wedged manager) would then freeze the event loop, the
very thread that sends the watchdog pings. Here a send that cannot go out at once is dropped.
"""

from __future__ import annotations

import array
import os
import select
import socket
import time

#: The first descriptor systemd passes (sd_listen_fds)
LISTEN_FDS_START = 3


def _address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not (address.startswith("/") or address.startswith("@")):
        return None
    return "\0" + address[1:] if address.startswith("@") else address


def send(state: str, fds: list[int] | None = None) -> bool:
    """Send one notification (with ``fds`` attached, for FDSTORE=1 and BARRIER=1); False
    when there is nobody to tell or it could not go out."""
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            if fds:
                rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))
                sock.sendmsg([state.encode()], [rights], socket.MSG_DONTWAIT, address)
            else:
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


#: Whether STOPPING=1 was sent: the daemon is on its way out
_stopping = False


def stopping() -> None:
    global _stopping
    _stopping = True
    send("STOPPING=1\nSTATUS=stopping")


def is_stopping() -> bool:
    """Whether the daemon said STOPPING=1: what it still has in systemd's store is then for
    the next daemon (a restart keeps it, a stop flushes it), not to be removed."""
    return _stopping


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


# --- systemd's file descriptor store (FileDescriptorStoreMax= in labpowerd.service) --------


def store_fd(name: str, fd: int) -> bool:
    """FDSTORE=1: systemd keeps a copy of ``fd`` under ``name`` across restarts and crashes,
    and passes it back to the next daemon ($LISTEN_FDS, $LISTEN_FDNAMES); a stop flushes it.
    ``name``: at most 255 printable ASCII characters, no ``:`` (systemd's rule)."""
    return send(f"FDSTORE=1\nFDNAME={name}", [fd])


def remove_fd(name: str) -> bool:
    """FDSTOREREMOVE=1: systemd closes its copies stored under ``name``."""
    return send(f"FDSTOREREMOVE=1\nFDNAME={name}")


def barrier(timeout: float = 5.0) -> bool:
    """BARRIER=1 (sd_notify_barrier): wait until systemd has handled every notification sent
    before, which it shows by closing the pipe end sent along. False: nobody listens, or
    no answer within ``timeout``."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        sent = send("BARRIER=1", [w])
        os.close(w)
        w = -1
        if not sent:
            return False
        poll = select.poll()
        poll.register(r, select.POLLIN)  # POLLHUP comes whatever is asked
        return bool(poll.poll(timeout * 1000))
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def take_stored_fds(prefix: str) -> dict[str, int]:
    """The descriptors systemd passed back from its store whose names start with ``prefix``,
    by name, made close-on-exec. $LISTEN_FDS and $LISTEN_FDNAMES are cut to the others (the
    activated sockets, which come first), so that socket activation sees only those."""
    count, pid = os.environ.get("LISTEN_FDS", ""), os.environ.get("LISTEN_PID")
    if not count.isdigit() or pid != str(os.getpid()):
        return {}
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    if len(names) != int(count):
        return {}  # no names (or not one per descriptor): nothing can be told apart
    taken: dict[str, int] = {}
    kept: list[str] = []
    for fd, name in enumerate(names, start=LISTEN_FDS_START):
        if name.startswith(prefix):
            if name in taken:
                os.close(fd)  # a second copy under the same name says nothing more
            else:
                os.set_inheritable(fd, False)
                taken[name] = fd
        else:
            kept.append(name)
    # systemd passes the sockets first and the stored descriptors after them
    os.environ["LISTEN_FDS"] = str(len(kept))
    os.environ["LISTEN_FDNAMES"] = ":".join(kept)
    return taken

"""The daemon's memory under floods of connections and of log subscribers (the issue's
figures): RSS never above :data:`PEAK_LIMIT` during a flood (the kernel's own high-water mark,
VmHWM, reset before it: no sampling can miss the peak), and back within :data:`MARGIN` of its
value before once the flooding connections are gone.

- :data:`CONNECTIONS` connections each send a message of about 1 MiB that never ends (no
  NUL): the daemon bounds what it buffers per connection and in all, and closes connections
  whose incomplete messages would take it over its budget.
- :data:`SUBSCRIBERS` ``Logs`` subscribers that never read, while :data:`SWITCHES` switches
  are logged: each subscriber holds at most ``daemon.subscriber_bytes`` of entries. What
  comes back is mostly CPython's small-object arenas (1 MiB each, returned only when empty)
  that the subscribers' own objects filled and a few long-lived objects made meanwhile still
  pin; the daemon keeps a subscriber's objects few for that reason.

Both floods come from one uid, so its connection share is raised for them here: the bounds
under test are the daemon's memory bounds, not the per-user limit.
"""

from __future__ import annotations

import selectors
import socket
import time

import pytest
from labpower.client.wire import MAX_MESSAGE_SIZE
from labpower.daemon.testing import DaemonProcess

from ..conftest import StartDaemon, mock_config
from .conftest import POWER, call_bytes, memory_bytes, rss_bytes, wait_until

MB = 1_000_000
PEAK_LIMIT = 200 * MB
MARGIN = 10 * MB
CONNECTIONS = 1000
MESSAGE = MAX_MESSAGE_SIZE - 4096
SUBSCRIBERS = 1000
SWITCHES = 40_000
#: seconds without the daemon taking a byte after which a flood has done what it can
STALL = 2.0


def peak_rss(pid: int) -> int:
    """The process's RSS high-water mark since :func:`reset_peak`."""
    return memory_bytes(pid, "VmHWM")


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS (proc(5))


@pytest.fixture
def flood_daemon(start_daemon: StartDaemon) -> DaemonProcess:
    return start_daemon(
        mock_config(
            {"bench": {"channels": 2}},
            {"a": {"device": "bench", "channel": 1}, "b": {"device": "bench", "channel": 2}},
            {"log_level": "info", "max_connections": 4096, "max_connections_per_user": 4096},
        )
    )


def _settled_rss(daemon: DaemonProcess) -> int:
    """RSS once a few calls have warmed the daemon up."""
    with daemon.client(timeout=10.0) as lab:
        for _ in range(200):
            lab.on("a")
            lab.off("a")
        lab.targets()
    return rss_bytes(daemon.pid)


def _send_all(socks: list[socket.socket], data: bytes) -> int:
    """Send ``data`` on every socket until each took it all, was closed by the daemon, or
    the daemon stopped taking bytes for :data:`STALL` seconds. :returns: bytes sent."""
    sel = selectors.DefaultSelector()
    left: dict[socket.socket, memoryview] = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_WRITE, s)
        left[s] = memoryview(data)
    total = 0
    last_progress = time.monotonic()
    while left and time.monotonic() - last_progress < STALL:
        for key, _ in sel.select(timeout=0.2):
            s = key.data
            try:
                n = s.send(left[s][:65536])
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):  # the daemon closed it
                n = 0
                left[s] = left[s][:0]
            total += n
            if n:
                last_progress = time.monotonic()
                left[s] = left[s][n:]
            if not left[s]:
                sel.unregister(s)
                del left[s]
    sel.close()
    return total


def _peak_and_return(daemon: DaemonProcess, before: int, peak: int, what: str) -> None:
    """The flood's peak stayed under the limit, and RSS comes back within MARGIN of before."""
    returned = wait_until(lambda: rss_bytes(daemon.pid) <= before + MARGIN, 15.0, 0.1)
    after = rss_bytes(daemon.pid)
    print(
        f"{what}: RSS before {before / MB:.1f} MB, peak {peak / MB:.1f} MB, "
        f"after {after / MB:.1f} MB"
    )
    assert peak <= PEAK_LIMIT, f"peak RSS {peak / MB:.1f} MB"
    assert returned, f"RSS {after / MB:.1f} MB after, {before / MB:.1f} MB before"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_connections_with_endless_messages(flood_daemon: DaemonProcess) -> None:
    daemon = flood_daemon
    before = _settled_rss(daemon)
    reset_peak(daemon.pid)
    socks = []
    try:
        for _ in range(CONNECTIONS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(daemon.socket_path)
            socks.append(s)
        sent = _send_all(socks, b'{"method":"' + b"x" * MESSAGE)
        # the daemon serves others meanwhile
        with daemon.client(timeout=10.0) as lab:
            lab.on("b")
        peak = peak_rss(daemon.pid)
    finally:
        for s in socks:
            s.close()
    _peak_and_return(
        daemon,
        before,
        peak,
        f"{CONNECTIONS} connections x {MESSAGE} bytes without NUL ({sent / MB:.0f} MB taken)",
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_subscribers_that_never_read(flood_daemon: DaemonProcess) -> None:
    daemon = flood_daemon
    before = _settled_rss(daemon)
    reset_peak(daemon.pid)
    subscribers = []
    try:
        for _ in range(SUBSCRIBERS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(daemon.socket_path)
            s.sendall(call_bytes(f"{POWER}.Logs", more=True))
            subscribers.append(s)
        for s in subscribers:  # every one is live (and out of the listen backlog)
            s.settimeout(30.0)
            assert s.recv(100).startswith(b'{"parameters":{}')
        with daemon.client(timeout=60.0) as lab:
            for i in range(SWITCHES):
                (lab.on if i % 2 else lab.off)("a")
            peak = peak_rss(daemon.pid)
    finally:
        for s in subscribers:
            s.close()
    _peak_and_return(
        daemon, before, peak, f"{SUBSCRIBERS} subscribers that never read, {SWITCHES} switches"
    )

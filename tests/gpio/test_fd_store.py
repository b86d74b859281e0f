"""The daemon's side of systemd's file descriptor store, which keeps the gpio backend's line
requests across a restart or a crash: what goes to systemd on a real notification socket,
and what the daemon takes back from $LISTEN_FDS. The whole round trip through systemd 252 on
a real GPIO chip is tests/vm (test_gpio_lines_across_systemd_reload_restart_crash_and_stop).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from labpower.backends.gpio import LineKeeper, store_name
from labpower.daemon import notify


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A notification socket standing in for systemd's, named by $NOTIFY_SOCKET."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    with sock:
        yield sock


def test_a_stored_request_goes_to_systemd_by_name_with_its_descriptor(
    manager: socket.socket,
) -> None:
    r, w = os.pipe()
    try:
        assert notify.store_fd("gpio/gpiochip0/17=1", w)
        message, fds, _, _ = socket.recv_fds(manager, 4096, 4)
        assert message.decode().splitlines() == ["FDSTORE=1", "FDNAME=gpio/gpiochip0/17=1"]
        (passed,) = fds
        # the very file the daemon holds, not a copy of its contents
        os.write(passed, b"x")
        assert os.read(r, 1) == b"x"
        os.close(passed)
        assert notify.remove_fd("gpio/gpiochip0/17=1")
        assert manager.recv(4096).decode().splitlines() == [
            "FDSTOREREMOVE=1",
            "FDNAME=gpio/gpiochip0/17=1",
        ]
    finally:
        os.close(r)
        os.close(w)


def test_barrier_returns_once_systemd_closed_the_pipe_it_got(manager: socket.socket) -> None:
    def systemd() -> None:
        message, fds, _, _ = socket.recv_fds(manager, 4096, 4)
        assert message == b"BARRIER=1"
        for fd in fds:
            os.close(fd)

    thread = threading.Thread(target=systemd)
    thread.start()
    assert notify.barrier(timeout=10)
    thread.join(10)


def test_barrier_gives_up_when_nobody_answers(manager: socket.socket) -> None:
    assert not notify.barrier(timeout=0.2)  # the message waits unread in the socket


def test_stored_gpio_descriptors_are_taken_and_sockets_left_for_activation() -> None:
    """systemd passes the activated sockets first, then the stored descriptors."""
    code = """
import os, socket
from labpower.daemon import notify
a, b = socket.socketpair()
r, w = os.pipe()
os.dup2(a.fileno(), 3)
os.dup2(r, 4)
os.dup2(r, 5)
os.environ.update(
    LISTEN_PID=str(os.getpid()),
    LISTEN_FDS="3",
    LISTEN_FDNAMES="labpowerd.socket:gpio/gpiochip0/17=1:gpio/gpiochip0/17=1",
)
taken = notify.take_stored_fds("gpio/")
closed = True
try:
    os.fstat(5)
    closed = False
except OSError:
    pass
print(taken, os.environ["LISTEN_FDS"], os.environ["LISTEN_FDNAMES"], os.get_inheritable(4), closed)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == [
        "{'gpio/gpiochip0/17=1':",
        "4}",
        "1",
        "labpowerd.socket",
        "False",
        "True",  # a second copy under the same name is closed
    ]


def test_kept_requests_of_lines_the_config_no_longer_names_are_released() -> None:
    removed: list[str] = []
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    keeper = LineKeeper(
        store=lambda name, fd: None,
        remove=removed.append,
        barrier=lambda: True,
        exiting=lambda: False,
        passed={"gpio/gpiochip0/17=1": w1, "gpio/gpiochip0/4=0": w2},
    )
    keeper.drop_unclaimed({("gpiochip0", 17)})
    assert removed == ["gpio/gpiochip0/4=0"]
    assert os.read(r2, 1) == b""  # its last writer closed: the request would be released
    assert keeper.take("gpiochip0", 17) == ("gpio/gpiochip0/17=1", w1, 1)
    assert keeper.take("gpiochip0", 17) is None
    for fd in (r1, w1, r2):
        os.close(fd)


def test_store_names_follow_systemds_rules() -> None:
    name = store_name("/dev/gpiochip12", 65535, True)
    assert name == "gpio/gpiochip12/65535=1"
    # sd_notify FDNAME=: at most 255 characters, printable ASCII, no ':'
    assert len(name) <= 255
    assert name.isprintable()
    assert name.isascii()
    assert ":" not in name

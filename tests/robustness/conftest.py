"""Shared by the robustness tests (fuzzing, load, limits, leases): what a daemon process
holds (/proc), raw varlink connections that speak bytes with a deadline on every read, and a
bounded poll for conditions that have no event to wait on."""

from __future__ import annotations

import json
import os
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

from labpower.client.wire import Decoder, RemoteProtocolError

POWER = "io.labpower.Power"
SERVICE = "org.varlink.service"


def fd_count(pid: int) -> int:
    """File descriptors the process holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def exhaust_descriptors(pid: int, settle: float = 0.0) -> tuple[int, int]:
    """Lower the process's RLIMIT_NOFILE so that it cannot open one more descriptor (the
    limit is on descriptor numbers: the lowest free one must be at or above it).
    A descriptor open for a moment (a state write) would leave a hole when it closes: when
    ``settle``, wait until the set of open descriptors stays the same for that long.
    :returns: the limits it had, for :func:`resource.prlimit` to restore."""
    if settle:
        seen: set[str] = set()
        deadline = time.monotonic() + 10.0
        while (now := set(os.listdir(f"/proc/{pid}/fd"))) != seen:
            assert time.monotonic() < deadline, "the daemon's descriptors never settled"
            seen = now
            time.sleep(settle)
    used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    lowest_free = next(n for n in range(len(used) + 1) if n not in used)
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free, old[1]))
    return old


def memory_bytes(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of the process from /proc/PID/status: its resident set size, or
    another ``Vm*`` field (``VmHWM``: the peak RSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for pid {pid}")


def rss_bytes(pid: int) -> int:
    """The process's resident set size."""
    return memory_bytes(pid)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; its last value. Only for states
    the daemon announces nowhere (its fd count, its RSS)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(interval)


def call_bytes(method: str, parameters: dict[str, Any] | None = None, **flags: bool) -> bytes:
    msg: dict[str, Any] = {"method": method, **flags}
    if parameters is not None:
        msg["parameters"] = parameters
    return json.dumps(msg, separators=(",", ":")).encode() + b"\0"


class Raw:
    """One connection to the daemon, speaking bytes; every read has a deadline."""

    def __init__(self, path: str, timeout: float = 5.0, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.decoder = Decoder()
        self.pending: list[dict[str, Any]] = []
        self.eof = False

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, method: str, parameters: dict[str, Any] | None = None, **flags: bool) -> None:
        self.send(call_bytes(method, parameters, **flags))

    def receive(self, deadline: float | None = None) -> dict[str, Any] | None:
        """The next message; None at EOF. :raises TimeoutError: nothing by ``deadline``
        (a time.monotonic() value; default: the socket timeout)."""
        while not self.pending:
            if self.eof:
                return None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no message from the daemon in time")
                self.sock.settimeout(left)
            try:
                data = self.sock.recv(262144)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                return None
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def ask(self, method: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        self.call(method, parameters)
        reply = self.receive()
        assert reply is not None, "the daemon closed the connection"
        return reply

    def closed_without_reply(self, timeout: float = 5.0) -> bool:
        """True when the daemon closes the connection having sent nothing (more)."""
        try:
            return self.receive(time.monotonic() + timeout) is None
        except (TimeoutError, RemoteProtocolError):
            return False

    def close(self) -> None:
        self.sock.close()

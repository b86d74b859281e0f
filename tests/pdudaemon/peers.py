"""The real third-party peers of the pdudaemon tests, and how to reach them.

- :func:`peer_venv`: pdudaemon and labgrid from PyPI, each in a virtualenv of its own
  (their dependencies clash with the workspace's: labgrid's pyserial-labgrid replaces
  pyserial's ``serial`` module), built by the fixture itself and cached in
  ``~/.cache/labpower/`` (or ``$XDG_CACHE_HOME``), so only an empty cache builds them.
- :class:`NetNs`: a network namespace of the test's own, for the fixed port 16421 that
  pduclient always uses: pdudaemon in one, labpower's listener in another, nothing else on
  the machine touched. A socket or process made while a namespace is entered stays in it.
- :func:`pduclient`: pdudaemon's ``pduclient`` is a script in its repository, not in its
  package: its wire behaviour is reproduced here from its documented facts.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..cache_lock import cache_lock

PDUDAEMON = "pdudaemon==1.1.1"
LABGRID = "labgrid==26.0.1"
#: pdudaemon's port, fixed in pduclient
PDU_PORT = 16421
BUILD_TIMEOUT = 900.0
START_TIMEOUT = 30.0

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "labpower"


def peer_venv(requirement: str) -> Path:
    """A virtualenv with ``requirement`` installed from PyPI (built once, then cached; a
    build that did not finish has no ``ok`` file and is built again).

    :raises subprocess.CalledProcessError: venv or pip failed.
    """
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    venv = cache_root() / f"venv-{requirement.replace('==', '-')}-{version}"
    with cache_lock(venv):
        if not (venv / "ok").exists():
            _build_venv(venv, requirement)
    return venv


def _build_venv(venv: Path, requirement: str) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    # the interpreter the workspace runs on (a venv cannot be moved: built where it lives)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=BUILD_TIMEOUT)
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", requirement],
        check=True,
        timeout=BUILD_TIMEOUT,
    )
    (venv / "ok").write_text(requirement + "\n")


class NetNs:
    """A network namespace with only ``lo``, up. ``with ns.entered():`` runs the calling
    thread in it; sockets and child processes made meanwhile stay in it."""

    def __init__(self) -> None:
        with self._own() as home:
            if _libc.unshare(_CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed (needs root)")
            try:
                subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
                self.fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            finally:
                _setns(home)

    @staticmethod
    @contextmanager
    def _own() -> Iterator[int]:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            yield home
        finally:
            os.close(home)

    @contextmanager
    def entered(self) -> Iterator[None]:
        with self._own() as home:
            _setns(self.fd)
            try:
                yield
            finally:
                _setns(home)

    def close(self) -> None:
        os.close(self.fd)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNET) failed")


def wait_listening(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts on 127.0.0.1:``port`` (in the current namespace).

    :raises RuntimeError: ``proc`` exited, or nothing listened in time.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def send_tcp(message: bytes, port: int = PDU_PORT) -> bytes:
    """pduclient's exchange: connect, one send of the message (no newline), one receive of
    up to 16 KiB; the reply as received (pduclient strips it before comparing)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(message)
        return sock.recv(16384)


def wait_for(condition: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
    """Poll ``condition`` until it holds. :raises TimeoutError:"""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{condition} did not come true in {timeout} s")
        time.sleep(0.005)


def http_request(
    port: int, path: str, method: str = "GET", data: bytes | None = None
) -> tuple[int, bytes]:
    """(status, body) of one request to 127.0.0.1:``port``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return int(reply.status), bytes(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()

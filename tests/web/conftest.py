"""labpower-web as a child process in front of a real labpowerd, and what the tests ask it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

#: the service's start line names the port it took (the tests ask for port 0)
_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 15.0


class WebProcess:
    """``labpower-web`` (its installed entry point) on a free loopback port."""

    def __init__(self, args: Sequence[str], directory: Path, user: int | None = None) -> None:
        self.stderr_path = directory / "labpower-web.log"
        command = [str(Path(sys.executable).with_name("labpower-web")), *args]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*command, "--listen", "127.0.0.1:0", "--log-level", "debug"],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while (found := _LISTENING.search(self.stderr())) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"labpower-web did not start:\n{self.stderr()}")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{found.group(1)}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def get(self, path: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of a GET."""
        request = urllib.request.Request(self.url + path)
        if accept is not None:
            request.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def stop(self) -> int | None:
        """SIGTERM, as systemd stops it; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


StartWeb = Callable[..., WebProcess]
T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """``check()``'s first truthy value, asked until ``timeout`` seconds have passed.

    :raises AssertionError: naming ``what`` did not happen.
    """
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)
    return found


@pytest.fixture
def start_web(tmp_path: Path) -> Iterator[StartWeb]:
    """``start_web(args)``: labpower-web children, stopped after the test (exit 0 wanted)."""
    started: list[WebProcess] = []

    def start(args: Sequence[str]) -> WebProcess:
        directory = tmp_path / f"web{len(started)}"
        directory.mkdir()
        web = WebProcess(args, directory)
        started.append(web)
        return web

    yield start
    for web in started:
        code = web.stop()
        assert code == 0, f"labpower-web exited with {code}:\n{web.stderr()}"

"""Acting as another user: a forked child under other credentials (the daemon believes only
the kernel about who connected, so a test cannot just say it is somebody else).

``with AsUser(uid, body) as child:`` forks; the child drops to ``uid`` and runs
``body(report, stopped)``: ``report(value)`` sends one JSON value to the parent
(``child.next()``), ``stopped()`` blocks until the parent calls ``child.stop()`` or leaves
the ``with`` block. A body that raises reports ``{"error": class name, "detail": ...}``.
"""

from __future__ import annotations

import json
import os
import select
import signal
from collections.abc import Callable
from typing import Any

Report = Callable[[Any], None]
Body = Callable[[Report, Callable[[], None]], None]


class AsUser:
    def __init__(
        self, uid: int, body: Body, gid: int | None = None, groups: tuple[int, ...] = ()
    ) -> None:
        self.uid, self.gid, self.groups = uid, uid if gid is None else gid, groups
        self.body = body
        self.pid = 0
        self._lines = b""

    def __enter__(self) -> AsUser:
        out_r, out_w = os.pipe()
        stop_r, stop_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                os.close(out_r)
                os.close(stop_w)
                os.setgroups(list(self.groups))
                os.setgid(self.gid)
                os.setuid(self.uid)

                def report(value: Any) -> None:
                    os.write(out_w, json.dumps(value).encode() + b"\n")

                def stopped() -> None:
                    os.read(stop_r, 1)

                try:
                    self.body(report, stopped)
                except Exception as exc:
                    report({"error": type(exc).__name__, "detail": str(exc)})
            finally:
                os._exit(0)
        os.close(out_w)
        os.close(stop_r)
        self.pid, self._out, self._stop = pid, out_r, stop_w
        return self

    def next(self, timeout: float = 30.0) -> Any:
        """The next value the child reported. :raises TimeoutError: none in time."""
        while b"\n" not in self._lines:
            ready, _, _ = select.select([self._out], [], [], timeout)
            if not ready:
                raise TimeoutError(f"the child as uid {self.uid} reported nothing")
            data = os.read(self._out, 65536)
            if not data:
                raise EOFError(f"the child as uid {self.uid} ended without reporting")
            self._lines += data
        line, _, self._lines = self._lines.partition(b"\n")
        return json.loads(line)

    def stop(self) -> None:
        """Let ``stopped()`` return in the child (what it reports then is still read)."""
        if self._stop >= 0:
            os.close(self._stop)
            self._stop = -1

    def __exit__(self, *exc: object) -> None:
        self.stop()  # the child ends
        pidfd = os.pidfd_open(self.pid)
        try:
            ready, _, _ = select.select([pidfd], [], [], 10.0)
            if not ready:  # a body stuck despite the stop: do not hang the test run
                os.kill(self.pid, signal.SIGKILL)
        finally:
            os.close(pidfd)
        os.waitpid(self.pid, 0)
        os.close(self._out)


def run_as(uid: int, action: Callable[[], Any], **kwargs: Any) -> Any:
    """``action()``'s value, run in a child as ``uid`` (or ``{"error": ...}`` if it raised)."""
    with AsUser(uid, lambda report, _: report(action()), **kwargs) as child:
        return child.next()

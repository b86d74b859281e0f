"""What the benchmarks are built from: figures, a timed ``labpowerd`` child process, and
client processes that report back to the parent.

Client processes are forked (the parent holds no threads or connections when it forks), each
runs ``fn(index, out, *args)``, and reports ``("result", index, value)`` or its traceback on
the queue ``out``; :func:`collect` turns a child's failure into a RuntimeError in the parent.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import multiprocessing.synchronize
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

START_TIMEOUT = 30.0
#: How long a benchmark process may take before the run is declared broken.
WORKER_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number, with the target it should meet (None: for information)."""

    key: str
    label: str
    value: float
    unit: str
    limit: float | None = None
    better: Literal["lower", "higher"] = "lower"

    @property
    def ok(self) -> bool | None:
        if self.limit is None:
            return None
        return self.value <= self.limit if self.better == "lower" else self.value >= self.limit

    @property
    def target(self) -> str:
        if self.limit is None:
            return ""
        sign = "<=" if self.better == "lower" else ">="
        return f"{sign} {self.limit:,g} {self.unit}".rstrip()


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# -- the daemon under test

# ``python -m labpower.daemon`` under cProfile, timed by CPU time, not wall time: on a busy
# machine a process also waits for a CPU, and that is not time its functions took.
_PROFILED = """
import cProfile, runpy, sys, time
out = sys.argv[1]
sys.argv = ["labpowerd", *sys.argv[2:]]
profile = cProfile.Profile(time.process_time)
try:
    profile.runcall(runpy.run_module, "labpower.daemon", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    profile.dump_stats(out)
"""

# ``python -m labpower.daemon`` with its event loop polling for ``argv[1]`` seconds when idle:
# the daemon as it was before the spin became opt-in, for the rows "with the daemon's spin".
_SPINNING = """
import runpy, sys
from labpower.backends import timing
timing.LOOP_IDLE_SPIN = float(sys.argv[1])
sys.argv = ["labpowerd", *sys.argv[2:]]
runpy.run_module("labpower.daemon", run_name="__main__", alter_sys=True)
"""


class Labpowerd:
    """``python -m labpower.daemon`` as a child process on a socket in ``directory``.

    Started like systemd starts it (READY=1 on a private $NOTIFY_SOCKET), and timed from the
    moment it is spawned. ``profile``: run it under cProfile (CPU time), writing the stats
    there.
    ``bytecode_cache``: run from cached bytecode (in ``directory``) like an installed
    daemon; False: compile every module from source, like the very first start.
    ``spin``: make its event loop poll that many seconds when idle (see
    ``labpower.backends.timing``; the daemon does not by default).
    """

    def __init__(
        self,
        config: Path,
        directory: Path,
        *,
        profile: Path | None = None,
        bytecode_cache: bool = True,
        spin: float = 0.0,
    ) -> None:
        self.config = config
        self.spin = spin
        self.bytecode_cache = bytecode_cache
        self.directory = directory
        self.socket = str(directory / "labpower.sock")
        self.profile = profile
        self.stderr_path = directory / "labpowerd.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Spawn it and wait for READY=1; return the seconds that took.

        :raises RuntimeError: it exited or did not get ready in time (with its stderr).
        """
        notify_path = str(self.directory / "notify.sock")
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        args = ["--config", str(self.config), "--socket", self.socket]
        if self.profile:
            command = [sys.executable, "-c", _PROFILED, str(self.profile), *args]
        elif self.spin:
            command = [sys.executable, "-c", _SPINNING, repr(self.spin), *args]
        else:
            command = [sys.executable, "-m", "labpower.daemon", *args]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(notify_path)
            notify.settimeout(0.5)
            # its own state directory, as systemd's StateDirectory= gives it
            env = {
                **os.environ,
                "NOTIFY_SOCKET": notify_path,
                "STATE_DIRECTORY": str(self.directory / "state"),
            }
            env.pop("LISTEN_FDS", None)
            if self.bytecode_cache:
                # An installed daemon runs from compiled bytecode; keep that cache out of the
                # source tree, and have it even where the environment disables writing it.
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                env["PYTHONPYCACHEPREFIX"] = str(self.directory / "pycache")
            else:  # point Python at an empty cache, so that it finds no bytecode at all
                env["PYTHONDONTWRITEBYTECODE"] = "1"
                env["PYTHONPYCACHEPREFIX"] = str(self.directory / "no-pycache")
            with open(self.stderr_path, "wb") as err:
                started = time.perf_counter()
                self.proc = subprocess.Popen(
                    command, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err
                )
            deadline = started + START_TIMEOUT
            while time.perf_counter() < deadline:
                try:
                    message = notify.recv(4096)
                except TimeoutError:
                    if self.proc.poll() is not None:
                        break
                    continue
                if b"READY=1" in message.split(b"\n"):
                    return time.perf_counter() - started
        code = self.proc.poll()
        with contextlib.suppress(RuntimeError):  # the error below says more
            self.stop()
        raise RuntimeError(
            f"labpowerd did not get ready (exit code {code}):\n"
            f"{self.stderr_path.read_text(errors='replace')}"
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def memory(self) -> tuple[float, float]:
        """Resident set size now and at its peak (VmRSS, VmHWM), in MB (10**6 bytes: the
        stricter reading of a limit given in MB)."""
        fields: dict[str, float] = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(rest.split()[0]) * 1024 / 1e6  # /proc's kB are KiB
        return fields["VmRSS"], fields["VmHWM"]

    def cpu_seconds(self) -> float:
        """CPU time it has used so far, user and system."""
        with open(f"/proc/{self.pid}/stat") as stat:
            # the fields after the command name, which is in parentheses and may hold spaces
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it hangs).

        :raises RuntimeError: it hung, or exited with an error (it crashed under load).
        """
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("labpowerd did not stop on SIGTERM") from None
        if self.proc.returncode != 0:
            raise RuntimeError(
                f"labpowerd exited with status {self.proc.returncode}:\n"
                f"{self.stderr_path.read_text(errors='replace')[-4000:]}"
            )


# -- child processes


FORK = multiprocessing.get_context("fork")
Messages = Any  # a multiprocessing.Queue of (kind, index, payload) tuples


def _child(fn: Callable[..., Any], index: int, out: Messages, *args: Any) -> None:
    """Run ``fn(index, out, *args)`` in a child; its result or its traceback goes to ``out``."""
    try:
        out.put(("result", index, fn(index, out, *args)))
    except BaseException:  # reported to the parent, which raises it
        out.put(("error", index, traceback.format_exc()))


@contextmanager
def children(fn: Callable[..., Any], arglists: Sequence[tuple[Any, ...]]) -> Iterator[Messages]:
    """One process per entry of ``arglists``, running ``fn(index, out, *args)``; yields the
    queue ``out`` they report on, and kills any still running afterwards."""
    out = FORK.Queue()
    procs = [
        FORK.Process(target=_child, args=(fn, i, out, *args), daemon=True)
        for i, args in enumerate(arglists)
    ]
    for proc in procs:
        proc.start()
    try:
        yield out
    finally:
        deadline = time.monotonic() + 5
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()


def collect(
    out: Messages, kind: str, count: int, timeout: float = WORKER_TIMEOUT
) -> dict[int, Any]:
    """Wait for ``count`` messages of ``kind``. :raises RuntimeError: a child failed."""
    found: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while len(found) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(
                f"only {len(found)} of {count} benchmark processes reported "
                f"{kind!r} within {timeout:g} s"
            )
        try:
            got, index, payload = out.get(timeout=left)
        except queue.Empty as exc:
            raise RuntimeError(f"benchmark processes silent for {timeout:g} s") from exc
        if got == "error":
            raise RuntimeError(f"benchmark process {index} failed:\n{payload}")
        if got == kind:
            found[index] = payload
    return found


def wait_barrier(barrier: multiprocessing.synchronize.Barrier, out: Messages) -> None:
    """Join the start barrier. :raises RuntimeError: a child failed before it got there."""
    try:
        barrier.wait(WORKER_TIMEOUT)
    except threading.BrokenBarrierError as exc:
        try:
            while True:
                kind, index, payload = out.get(timeout=10)
                if kind == "error":
                    raise RuntimeError(f"benchmark process {index} failed:\n{payload}") from exc
        except queue.Empty:
            raise RuntimeError("the benchmark processes did not all start") from exc

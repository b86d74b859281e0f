"""One user floods the daemon with connections: everybody else is still served.

Clients run as other users in forked children that drop to their uid before connecting (the
daemon sees the kernel's SO_PEERCRED): uid :data:`FLOODER` (no passwd entry needed), and
``nobody``. The daemon's socket sits in a directory they may enter, mode 0666.

- To its share and beyond: the flooder holds exactly ``daemon.max_connections_per_user``
  connections, the rest are closed unanswered while a second flooder process of the same uid
  keeps knocking; nobody's and root's calls all succeed meanwhile (their p99 is the issue's
  figure), and the log names the flooding uid once.
- Beyond the descriptor limit: with RLIMIT_NOFILE at 256 the daemon serves fewer connections
  than ``daemon.max_connections`` and says so at start; the flood stays within its share of
  that.
- Descriptors taken by something else (the daemon's RLIMIT_NOFILE lowered under it): new
  connections are closed at once instead of hanging, the connected ones are still served, the
  log says so once (not a line per attempt), and serving resumes when descriptors are back.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

from ..conftest import mock_config
from .conftest import POWER, SERVICE, Raw, call_bytes, exhaust_descriptors, wait_until
from .users import AsUser, Body, Report, run_as

FLOODER = 40001
NOBODY = 65534
SHARE = 64
CALLS = 500
Result = dict[str, Any]


def flood(path: str, count: int) -> Body:
    """Open ``count`` connections and ask GetInfo on each; report how many were answered,
    and hold them open until stopped."""

    def body(report: Report, stopped: Callable[[], None]) -> None:
        held = []
        for _ in range(count):
            raw = Raw(path, timeout=10.0)
            try:
                raw.call(f"{SERVICE}.GetInfo")
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused and closed before the call went out (seen under load): unanswered
            held.append(raw)
        report({"answered": sum(raw.receive() is not None for raw in held)})
        stopped()

    return body


def knock(path: str, seconds: float) -> Body:
    """Keep opening connections (each refused at once) for ``seconds``."""

    def body(report: Report, stopped: Callable[[], None]) -> None:
        attempts = answered = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5.0)
                s.connect(path)
                try:
                    s.sendall(call_bytes(f"{SERVICE}.GetInfo"))
                    answered += bool(s.recv(100))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused: closed before or after the call arrived
            attempts += 1
        report({"attempts": attempts, "answered": answered})
        stopped()

    return body


def calls(path: str) -> Result:
    """:data:`CALLS` Get calls through a Client: their latencies, in seconds."""
    took = []
    with Client(path, timeout=10.0) as lab:
        for i in range(CALLS):
            start = time.perf_counter()
            (lab.on if i % 2 else lab.off)("t")
            took.append(time.perf_counter() - start)
    return {"latencies": took}


def _ok(result: Any) -> Result:
    """A child's report, which must not be an error."""
    assert isinstance(result, dict)
    assert "error" not in result, result
    return result


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


@contextmanager
def open_daemon(config: dict[str, Any], nofile: int | None = None) -> Iterator[DaemonProcess]:
    """A daemon whose socket other users can reach; with RLIMIT_NOFILE ``nofile`` if given.
    Removed after the block: read its stderr in it (:func:`stop`)."""
    directory = Path(tempfile.mkdtemp(prefix="labpower-flood-"))
    directory.chmod(0o755)
    daemon = DaemonProcess(config, directory=str(directory))
    try:
        old = resource.getrlimit(resource.RLIMIT_NOFILE)
        if nofile is not None:  # inherited by the daemon, and only by it
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, old[1]))
        try:
            daemon.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, old)
        os.chmod(daemon.socket_path, 0o666)
        yield daemon
    finally:
        daemon.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def stop(daemon: DaemonProcess) -> str:
    """Stop the daemon, which must exit 0; :returns: its stderr."""
    assert daemon.stop() == 0, daemon.stderr()
    return daemon.stderr()


def _config(**settings: int) -> dict[str, Any]:
    return mock_config(
        {"bench": {"channels": 1}}, {"t": {"device": "bench", "channel": 1}}, settings
    )


def _others_served(path: str) -> tuple[float, float]:
    """nobody's calls, then root's: all must succeed. :returns: their p99s."""
    theirs = _ok(run_as(NOBODY, lambda: calls(path)))
    root = calls(path)
    return p99(theirs["latencies"]), p99(root["latencies"])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_flooding_user_holds_its_share_and_others_are_served() -> None:
    with open_daemon(_config(max_connections=1024, max_connections_per_user=SHARE)) as daemon:
        path = daemon.socket_path
        quiet = _others_served(path)  # the same calls without a flood, for comparison
        with AsUser(FLOODER, flood(path, SHARE + 200)) as flooder:
            assert _ok(flooder.next())["answered"] == SHARE
            idle = _others_served(path)
            with AsUser(FLOODER, knock(path, 3.0)) as knocker:
                nobody_p99, root_p99 = _others_served(path)
                knocked = _ok(knocker.next())
            assert knocked["answered"] == 0
            knocks = knocked["attempts"]
        print(
            f"p99 of other users' calls without a flood: {quiet[0] * 1000:.2f} ms (nobody), "
            f"{quiet[1] * 1000:.2f} ms (root); "
            f"one uid holding {SHARE} connections (its share), {SHARE + 200} tried: p99 of "
            f"other users' calls {idle[0] * 1000:.2f} ms (nobody), {idle[1] * 1000:.2f} ms "
            f"(root); while it knocked {knocks} times more: "
            f"{nobody_p99 * 1000:.2f} ms (nobody), {root_p99 * 1000:.2f} ms (root)"
        )
        # once the flood is over the uid is served again, and the episode was summed up
        with Raw(path) as raw:
            assert "vendor" in raw.ask(f"{SERVICE}.GetInfo")["parameters"]
        stderr = stop(daemon)
    assert stderr.count(f"uid {FLOODER} holds {SHARE} connections") == 1, stderr[-3000:]
    assert f"uid {FLOODER}: " in stderr  # "N connections were refused while..."


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_flood_beyond_the_descriptor_limit() -> None:
    with open_daemon(_config(), nofile=256) as daemon:
        # logged before READY=1; stderr is written by a task of its own, soon after
        assert wait_until(lambda: "serving at most" in daemon.stderr(), 10.0)
        stderr = daemon.stderr()
        assert "not daemon.max_connections = 1024" in stderr
        ceiling = int(stderr.split("serving at most ")[1].split()[0])
        assert ceiling < 256 - 64
        share = ceiling // 4
        with AsUser(FLOODER, flood(daemon.socket_path, 400)) as flooder:
            assert _ok(flooder.next())["answered"] == share
            nobody_p99, root_p99 = _others_served(daemon.socket_path)
        # several users together take every connection: root still gets in, and the
        # daemon's own writes still have descriptors
        with contextlib.ExitStack() as stack:
            answered = 0
            for uid in range(FLOODER, FLOODER + ceiling // share + 1):
                child = stack.enter_context(AsUser(uid, flood(daemon.socket_path, share)))
                answered += _ok(child.next())["answered"]
            assert answered == ceiling
            with daemon.client(timeout=10.0) as lab:
                lab.on("t")
                lab.off("t")
            assert "refusing connections: " in daemon.stderr()
        print(
            f"RLIMIT_NOFILE 256: at most {ceiling} connections, {share} per uid; p99 of other "
            f"users' calls during a 400-connection flood {nobody_p99 * 1000:.2f} ms (nobody), "
            f"{root_p99 * 1000:.2f} ms (root)"
        )
        assert "cannot write state file" not in stop(daemon)


@pytest.mark.timeout(120)
def test_descriptors_exhausted_under_the_daemon() -> None:
    with open_daemon(_config()) as daemon, daemon.client(timeout=10.0) as lab:
        lab.targets()
        old = exhaust_descriptors(daemon.pid, settle=0.2)
        try:
            for _ in range(20):
                with Raw(daemon.socket_path) as raw:
                    # closed (perhaps before the call is sent), never left hanging
                    try:
                        raw.send(call_bytes(f"{POWER}.List"))
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    else:
                        assert raw.closed_without_reply(5.0)
                assert lab.get("t").name == "t"  # the connected are still served
        finally:
            resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, old)

        def served() -> bool:
            with Raw(daemon.socket_path) as raw:
                raw.send(call_bytes(f"{POWER}.List"))
                return raw.receive() is not None

        assert wait_until(served, 10.0)
        lab.close()
        stderr = stop(daemon)
    assert stderr.count("accept failed") == 1, stderr[-3000:]
    assert "accepting connections again" in stderr

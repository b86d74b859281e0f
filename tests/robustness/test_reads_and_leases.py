"""Who may read what, reads that cannot starve switching, and leases under hostile users
(issue 14, items 5 and 8). Other users are forked children that drop to their uid (users.py):
the daemon believes only the kernel about who connected."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import selectors
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from labpower.client import Client, Locked, cli
from labpower.client.wire import Call
from labpower.daemon.testing import DaemonProcess

from .conftest import POWER, Raw, call_bytes
from .users import AsUser, Report, run_as

#: throwaway ids with no passwd entry: the daemon checks numbers
ALICE, BOB, CAROL = 61011, 61012, 61013
ADMINS = 61110
STREAMS = 50
LIST_LOOPS = 10


@pytest.fixture
def open_daemon() -> Iterator[Callable[[dict[str, Any]], DaemonProcess]]:
    """Start a daemon whose socket every user may open (the socket's mode is the first gate,
    not the one tested here): its own directory right under /tmp."""
    started: list[DaemonProcess] = []

    def start(config: dict[str, Any]) -> DaemonProcess:
        proc = DaemonProcess(config)
        started.append(proc)
        proc.start()
        os.chmod(proc.directory, 0o755)
        os.chmod(proc.socket_path, 0o666)
        return proc

    yield start
    for proc in started:
        try:
            assert proc.stop() == 0, proc.stderr()
        finally:
            proc.cleanup()


def _call(path: str, member: str, params: dict[str, Any]) -> Any:
    """One call on a fresh connection: the reply parameters, or {"error": short name}."""
    with Raw(path) as conn:
        reply = conn.ask(f"{POWER}.{member}", params)
    if "error" in reply:
        return {"error": reply["error"].rpartition(".")[2]}
    return reply["parameters"]


# -- who may read what
READ_CONFIG: dict[str, Any] = {
    "daemon": {"log_level": "info"},
    "devices": {"bench": {"backend": "mock", "channels": 3}},
    "targets": {
        "open": {"device": "bench", "channel": 1},
        "alices": {"device": "bench", "channel": 2, "allow_users": [ALICE]},
        "shown": {"device": "bench", "channel": 3, "allow_users": [ALICE], "read": "all"},
    },
}


def test_a_user_reads_only_what_the_read_policy_lets_through(
    open_daemon: Callable[[dict[str, Any]], DaemonProcess],
) -> None:
    daemon = open_daemon(READ_CONFIG)
    path = daemon.socket_path
    with daemon.client(timeout=10) as root:
        root.acquire("alices", name="root's secret work")
        root.on("alices")

        def listing() -> list[str]:
            return [t["name"] for t in _call(path, "List", {})["targets"]]

        assert run_as(BOB, listing) == ["open", "shown"]
        assert run_as(ALICE, listing) == ["open", "alices", "shown"]
        for member, params in (
            ("Get", {"target": "alices"}),
            ("Get", {"target": "alices", "refresh": True}),
            ("Read", {"target": "alices"}),
        ):
            assert run_as(BOB, functools.partial(_call, path, member, params)) == {
                "error": "PermissionDenied"
            }
        assert run_as(ALICE, lambda: _call(path, "Get", {"target": "alices"}))["target"]["lease"][
            "name"
        ] == ("root's secret work")
        assert run_as(BOB, lambda: _call(path, "Get", {"target": "shown"}))["target"]["name"] == (
            "shown"
        )

        def history() -> list[Any]:
            return [e.get("target") for e in _call(path, "History", {})["entries"]]

        seen = run_as(BOB, history)
        assert "alices" not in seen
        assert None in seen  # daemon-wide entries are everybody's
        assert "alices" in run_as(ALICE, history)

        # a live subscriber: root switches alices, then open; bob sees only the second
        def follow(report: Report, stopped: Callable[[], None]) -> None:
            with Raw(path, timeout=30) as conn:
                conn.call(f"{POWER}.Logs", {}, more=True)
                conn.receive()
                report("subscribed")
                while True:
                    entry = conn.receive()["parameters"]["entry"]  # type: ignore[index]
                    if entry.get("target") == "open":
                        report(entry.get("target"))
                        return
                    report(entry.get("target"))

        with AsUser(BOB, follow) as bob:
            assert bob.next() == "subscribed"
            root.off("alices")
            root.on("open")
            seen_live = [bob.next()]
            while seen_live[-1] != "open":
                seen_live.append(bob.next())
        assert "alices" not in seen_live
    refused = [line for line in daemon.stderr().splitlines() if "is not allowed to read" in line]
    assert refused, "refused reads are logged"


@pytest.mark.timing
def test_get_and_list_answer_from_what_the_daemon_knows_unless_asked_to_refresh(
    open_daemon: Callable[[dict[str, Any]], DaemonProcess],
) -> None:
    config = {
        "devices": {"bench": {"backend": "mock", "channels": 1, "delay": 0.05}},
        "targets": {"dut": {"device": "bench", "channel": 1}},
    }
    daemon = open_daemon(config)
    with daemon.client(timeout=10) as lab:
        lab.on("dut")
        started = time.monotonic()
        for _ in range(20):
            assert lab.get("dut").state == "on"
            assert lab.targets()[0].state == "on"
        # 40 calls without the board (50 ms each through it)
        assert time.monotonic() - started < 20 * 0.05
        fresh = lab.call(Call(f"{POWER}.Get", {"target": "dut", "refresh": True}))["target"]
        assert (fresh["state"], fresh["verified"]) == ("on", True)


# -- switching wins over reading
def _on_latency(lab: Client, target: str, rounds: int = 12) -> float:
    """Median seconds of an On (and an Off, not timed) on ``target``."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        lab.on(target)
        times.append(time.perf_counter() - started)
        lab.off(target)
    return statistics.median(times)


BOARD_CONFIG: dict[str, Any] = {
    "devices": {"board": {"backend": "mock", "channels": 2, "delay": 0.02}},
    "targets": {
        "roots": {"device": "board", "channel": 1, "allow_users": [ALICE]},
        "watched": {"device": "board", "channel": 2, "read": "all"},
    },
}


def _read_streams(path: str) -> Callable[[Report, Callable[[], None]], None]:
    """A child's body: STREAMS Read streams on ``watched``, every reply read and counted."""

    def body(report: Report, stopped: Callable[[], None]) -> None:
        sel = selectors.DefaultSelector()
        conns = []
        for _ in range(STREAMS):
            conn = Raw(path, timeout=30)
            conn.send(
                call_bytes(f"{POWER}.Read", {"target": "watched", "interval": 0.005}, more=True)
            )
            conns.append(conn)
        for conn in conns:
            first = conn.receive()
            assert first is not None
            assert "error" not in first, first
        report("streaming")
        for conn in conns:
            conn.sock.setblocking(False)
            sel.register(conn.sock, selectors.EVENT_READ)
        counted = 0
        stop = threading.Event()

        def wait_for_stop() -> None:
            stopped()
            stop.set()

        threading.Thread(target=wait_for_stop, daemon=True).start()
        while not stop.is_set():
            for key, _ in sel.select(0.1):
                counted += len(key.fileobj.recv(262144))  # type: ignore[union-attr]
        report(counted)

    return body


def test_read_streams_of_another_user_do_not_slow_switching_on_the_board(
    open_daemon: Callable[[dict[str, Any]], DaemonProcess],
) -> None:
    daemon = open_daemon(BOARD_CONFIG)
    with daemon.client(timeout=30) as root:
        baseline = _on_latency(root, "roots")
        with AsUser(BOB, _read_streams(daemon.socket_path)) as bob:
            assert bob.next() == "streaming"
            loaded = _on_latency(root, "roots")
            bob.stop()
            assert bob.next() > 0  # the streams were served meanwhile
    # unshared reads queued 50 deep on the board: ~50 x 20 ms ahead of every On
    assert loaded < 2.5 * baseline, (
        f"On median {loaded:.4f} s with {STREAMS} streams, {baseline:.4f} s without"
    )


def test_a_list_loop_of_another_user_does_not_slow_switching_on_the_board(
    open_daemon: Callable[[dict[str, Any]], DaemonProcess],
) -> None:
    daemon = open_daemon(BOARD_CONFIG)
    path = daemon.socket_path

    def list_loop(refresh: bool) -> Callable[[Report, Callable[[], None]], None]:
        """A child's body: LIST_LOOPS connections, each calling List as fast as it can."""

        def body(report: Report, stopped: Callable[[], None]) -> None:
            stop = threading.Event()
            calls = [0] * LIST_LOOPS
            conns = [Raw(path, timeout=30) for _ in range(LIST_LOOPS)]

            def loop(i: int) -> None:
                while not stop.is_set():
                    assert "error" not in conns[i].ask(f"{POWER}.List", {"refresh": refresh})
                    calls[i] += 1

            threads = [threading.Thread(target=loop, args=(i,)) for i in range(LIST_LOOPS)]
            for thread in threads:
                thread.start()
            report("looping")
            stopped()
            stop.set()
            for thread in threads:
                thread.join()
            report(min(calls))

        return body

    with daemon.client(timeout=30) as root:
        baseline = _on_latency(root, "roots")
        with AsUser(BOB, list_loop(True)) as fresh, AsUser(BOB, list_loop(False)) as known:
            assert fresh.next() == "looping"
            assert known.next() == "looping"
            loaded = _on_latency(root, "roots")
            fresh.stop()
            known.stop()
            assert fresh.next() > 0
            assert known.next() > 0
    assert loaded < 2.5 * baseline, (
        f"On median {loaded:.4f} s under List loops, {baseline:.4f} s without"
    )


def test_streams_per_user_are_limited(
    open_daemon: Callable[[dict[str, Any]], DaemonProcess],
) -> None:
    config = {**BOARD_CONFIG, "daemon": {"max_streams_per_user": 3}}
    daemon = open_daemon(config)
    path = daemon.socket_path

    def many(report: Report, stopped: Callable[[], None]) -> None:
        conns = [Raw(path) for _ in range(4)]
        for conn in conns[:3]:
            conn.call(f"{POWER}.Logs", {}, more=True)
            assert conn.receive() == {"parameters": {}, "continues": True}
        report(
            conns[3]
            .ask(
                f"{POWER}.Read",
                {"target": "watched"},
            )
            .get("error")
        )
        conns[3].call(f"{POWER}.Read", {"target": "watched"}, more=True)
        report(conns[3].receive().get("error"))  # type: ignore[union-attr]
        conns[0].close()  # one ends: room for one more
        with Raw(path) as again:
            again.call(f"{POWER}.Logs", {}, more=True)
            report(again.receive())
        stopped()

    with AsUser(BOB, many) as bob:
        assert bob.next() is None  # a single reading is no stream
        assert bob.next() == f"{POWER}.TooManyStreams"
        assert bob.next() == {"parameters": {}, "continues": True}
    with daemon.client() as root:  # root is not limited; bob's streams are gone
        assert root.get("watched").name == "watched"


# -- leases
LEASE_CONFIG: dict[str, Any] = {
    "daemon": {"log_level": "info", "admin_groups": [ADMINS]},
    "devices": {"bench": {"backend": "mock", "channels": 2}},
    "targets": {"open": {"device": "bench", "channel": 1, "cycle_delay": 1.0}},
}


def test_a_lease_taken_during_a_cycle_stops_its_on(
    open_daemon: Callable[[dict[str, Any]], DaemonProcess],
) -> None:
    daemon = open_daemon(LEASE_CONFIG)
    with daemon.client(timeout=30) as cycler, daemon.client(timeout=30) as other:
        cycler.on("open")
        outcome: list[BaseException | None] = []

        def cycle() -> None:
            try:
                cycler.cycle("open", delay=2.0)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=cycle)
        thread.start()
        deadline = time.monotonic() + 20
        while other.get("open").state != "off":  # the cycle's off is done
            assert time.monotonic() < deadline
            time.sleep(0.01)
        other.acquire("open", name="taker")
        thread.join(30)
        assert isinstance(outcome[0], Locked), outcome
        assert other.get("open").state == "off"
    stopped = [
        line for line in daemon.stderr().splitlines() if "stopped after the off-time" in line
    ]
    assert len(stopped) == 1, daemon.stderr()
    assert "leased by uid 0" in stopped[0]
    assert "for taker" in stopped[0]


def test_a_lease_token_works_only_for_the_user_who_took_it(
    open_daemon: Callable[[dict[str, Any]], DaemonProcess],
) -> None:
    daemon = open_daemon(LEASE_CONFIG)
    path = daemon.socket_path
    with daemon.client(timeout=10) as holder:
        _, token = holder.acquire("open", name="mine")
        for member in ("On", "Release"):
            params = {"target": "open", ("lease" if member == "On" else "token"): token}
            assert run_as(BOB, functools.partial(_call, path, member, params)) == {
                "error": "Locked"
            }
        assert "error" not in _call(path, "On", {"target": "open", "lease": token})
        assert holder.get("open").lease is not None


def test_an_admin_breaks_a_stuck_lease_and_it_is_logged(
    open_daemon: Callable[[dict[str, Any]], DaemonProcess],
) -> None:
    daemon = open_daemon(LEASE_CONFIG)
    path = daemon.socket_path

    def hold(report: Report, stopped: Callable[[], None]) -> None:
        with Client(path) as lab:
            lab.acquire("open", name="stuck job")
            report(os.getpid())
            stopped()

    def force(report: Report, stopped: Callable[[], None]) -> None:
        # the command's own code, run in the child (other users cannot run root's python)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = cli.main(["--socket", path, "unlock", "--force", "open"])
        report([code, err.getvalue()])

    with AsUser(BOB, hold) as bob:
        bob_pid = bob.next()
        with AsUser(CAROL, force) as carol:  # neither root nor an admin
            code, err = carol.next()
        assert code == 1
        assert "PermissionDenied" in err or "permission" in err.lower(), err
        with daemon.client() as root:
            assert root.get("open").lease is not None
        with AsUser(ALICE, force, groups=(ADMINS,)) as alice:  # an admin
            code, err = alice.next()
        assert code == 0, err
        with daemon.client() as root:
            assert root.get("open").lease is None
    refused = run_as(CAROL, lambda: _call(path, "Release", {"target": "open", "force": True}))
    assert refused == {"error": "PermissionDenied"}
    broken = [line for line in daemon.stderr().splitlines() if "broken by" in line]
    assert len(broken) == 1, daemon.stderr()
    assert f"lease of uid {BOB} (pid {bob_pid}) for stuck job broken by uid {ALICE}" in broken[0]


def test_the_command_line_refreshes_and_unlocks(
    open_daemon: Callable[[dict[str, Any]], DaemonProcess],
) -> None:
    daemon = open_daemon(LEASE_CONFIG)

    def labpower(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "labpower.client.cli", "--socket", daemon.socket_path, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert labpower("on", "open").returncode == 0
    done = labpower("status", "--refresh", "open")
    assert (done.returncode, done.stdout.strip()) == (0, "open: on (verified)"), done.stderr
    # a script under `labpower lock` gives the lease back early with the token it inherited
    done = labpower(
        "lock", "open", "--", sys.executable, "-m", "labpower.client.cli", "unlock", "open"
    )
    assert done.returncode == 0, done.stderr
    with daemon.client() as root:
        assert root.get("open").lease is None
        root.acquire("open", name="held")
        done = labpower("unlock", "open")  # not ours, no token: refused, named
        assert done.returncode == 1
        assert "held" in done.stderr
        assert labpower("unlock", "--force", "open").returncode == 0
        assert root.get("open").lease is None

"""The daemon's limits: a subscriber too slow to read loses entries explicitly (an "N entries
dropped" entry, never a silent gap) and slows nobody; ``daemon.max_connections`` refuses extra
connections while the others are served; the 1 MiB message limit holds both ways."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from labpower.client import Client, InvalidParameter, MethodNotFound
from labpower.client.wire import MAX_MESSAGE_SIZE, Call
from labpower.daemon.testing import DaemonProcess

from ..conftest import StartDaemon, mock_config
from .conftest import POWER, SERVICE, Raw, call_bytes, wait_until

QUEUE = 256
SWITCHES = 2000
DROPPED = "entries dropped"


def _dropped(entry: dict[str, Any]) -> int | None:
    """N of an "N entries dropped" notice, else None."""
    message = entry.get("message", "")
    if DROPPED in message and entry.get("target") is None:
        return int(message.split()[0])
    return None


def check_no_silent_gap(entries: list[dict[str, Any]]) -> int:
    """Every seq follows the one before, or a notice says how many were dropped in between.
    :returns: the entries dropped."""
    last: int | None = None
    dropped = 0
    for entry in entries:
        n = _dropped(entry)
        if n is not None:
            assert last is not None
            assert entry["seq"] == last + n, (
                f"notice of {n} dropped after seq {last} names seq {entry['seq']}"
            )
            dropped += n
        elif last is not None:
            assert entry["seq"] == last + 1, f"silent gap: seq {last} then {entry['seq']}"
        last = entry["seq"]
    return dropped


@pytest.fixture
def queue_daemon(start_daemon: StartDaemon) -> DaemonProcess:
    return start_daemon(
        mock_config(
            {"bench": {"channels": 2}},
            {"a": {"device": "bench", "channel": 1}, "b": {"device": "bench", "channel": 2}},
            {"subscriber_queue": QUEUE, "log_level": "info"},
        )
    )


def _switch(lab: Client, count: int) -> tuple[float, int]:
    """``count`` switches; the time they took and the log_seq of the last."""
    start = time.monotonic()
    for i in range(count):
        (lab.on if i % 2 else lab.off)("a")
    # the last switch's log_seq: from the raw reply (the client keeps it to itself)
    reply = lab.call(Call(f"{POWER}.On", {"target": "a"}))
    return time.monotonic() - start, int(reply["log_seq"])


def test_slow_subscriber_gets_a_dropped_notice_and_slows_nobody(
    queue_daemon: DaemonProcess,
) -> None:
    daemon = queue_daemon
    with daemon.client(timeout=10.0) as lab:
        # a healthy subscriber, reading all along
        fast: list[dict[str, Any]] = []
        final_seq: list[int] = []
        done = threading.Event()
        live = threading.Event()

        def follow() -> None:
            with Raw(daemon.socket_path, timeout=30.0) as sub:
                sub.call(f"{POWER}.Logs", more=True)
                assert sub.receive() == {"parameters": {}, "continues": True}
                live.set()
                while not (final_seq and fast and fast[-1]["seq"] >= final_seq[0]):
                    reply = sub.receive()
                    assert reply is not None
                    fast.append(reply["parameters"]["entry"])
            done.set()

        reader = threading.Thread(target=follow)
        reader.start()
        assert live.wait(10)
        # how long the switches take with the healthy subscriber alone (it reads in this
        # process, so it is part of the comparison on both sides)
        baseline, _ = _switch(lab, SWITCHES)

        # the slow one: subscribes, then reads nothing while the others work
        with Raw(daemon.socket_path, timeout=10.0, rcvbuf=4096) as raw:
            raw.send(call_bytes(f"{POWER}.Logs", more=True))
            assert raw.receive() == {"parameters": {}, "continues": True}

            stalled, last_seq = _switch(lab, SWITCHES)
            final_seq.append(last_seq)
            # one entry more: a reader that had already caught up waits for one to see that
            lab.off("b")
            # the others were served at full speed meanwhile
            assert stalled < 3 * baseline + 1.0, (
                f"{SWITCHES} switches took {stalled:.2f} s with a stalled subscriber, "
                f"{baseline:.2f} s without"
            )
            assert done.wait(30), "the healthy subscriber did not get every entry"
            reader.join()
            # it may lose some too at this small queue (see the report), but never silently
            fast_dropped = check_no_silent_gap(fast)

            # the slow one reads again: a notice says what it missed, nothing silently
            slow_entries: list[dict[str, Any]] = []
            deadline = time.monotonic() + 30
            while not slow_entries or slow_entries[-1]["seq"] < last_seq:
                reply = raw.receive(deadline)
                assert reply is not None
                slow_entries.append(reply["parameters"]["entry"])
        notices = [e for e in slow_entries if _dropped(e) is not None]
        assert notices, "the slow subscriber missed entries without a notice"
        assert notices[0]["level"] == "warning"
        dropped = check_no_silent_gap(slow_entries)
        assert dropped > 0
        assert lab.get("a").name == "a"
        # monitoring counts every entry dropped, for whichever subscriber (Stats)
        assert lab.call(Call(f"{POWER}.Stats", {}))["dropped"] == dropped + fast_dropped


def test_max_connections(start_daemon: StartDaemon) -> None:
    daemon = start_daemon(
        mock_config(
            {"bench": {"channels": 1}},
            {"a": {"device": "bench", "channel": 1}},
            {"max_connections": 4, "max_connections_per_user": 4},
        )
    )
    with daemon.client(timeout=10.0) as lab:
        lab.targets()
        held = [Raw(daemon.socket_path) for _ in range(3)]
        try:
            for raw in held:
                assert "vendor" in raw.ask(f"{SERVICE}.GetInfo")["parameters"]
            # the fifth is closed at once, unanswered
            with Raw(daemon.socket_path) as extra:
                extra.call(f"{SERVICE}.GetInfo")
                assert extra.closed_without_reply()
            # those connected are still served
            assert [t.name for t in lab.targets()] == ["a"]
            for raw in held:
                assert "targets" in raw.ask(f"{POWER}.List")["parameters"]
            held.pop().close()

            # a place is free again once the daemon saw the close (no event says when)
            def served() -> bool:
                with Raw(daemon.socket_path) as again:
                    again.call(f"{SERVICE}.GetInfo")
                    return again.receive() is not None

            assert wait_until(served, 5.0)
        finally:
            for raw in held:
                raw.close()
    assert "max_connections" in daemon.stderr()


@pytest.fixture
def limit_daemon(start_daemon: StartDaemon) -> DaemonProcess:
    return start_daemon(
        mock_config(
            {"bench": {"channels": 1}},
            {"a": {"device": "bench", "channel": 1}},
        )
    )


def test_message_size_limit(limit_daemon: DaemonProcess) -> None:
    daemon = limit_daemon
    with daemon.client(timeout=10.0) as lab:
        # just under the limit: served
        pad = "p" * (MAX_MESSAGE_SIZE - 100)
        with Raw(daemon.socket_path) as raw:
            raw.send(call_bytes(f"{POWER}.Get", {"target": pad}))
            reply = raw.receive()
            assert reply is not None
            assert reply["error"] == f"{POWER}.TargetNotFound"
        # at the limit without its NUL: the connection is closed, unanswered
        with Raw(daemon.socket_path) as raw:
            raw.send(b"{" + b" " * MAX_MESSAGE_SIZE)
            assert raw.closed_without_reply()
        # an error reply that echoes a near-limit method name would be too big to send: it
        # comes shortened, and the daemon lives on
        method = f"{POWER}." + "M" * (MAX_MESSAGE_SIZE - 50)
        with pytest.raises(MethodNotFound) as caught:
            lab.call(Call(method, {}))
        assert len(caught.value.parameters["method"]) < 2000
        # a lease name is echoed in every List and log entry: a huge one is refused
        with pytest.raises(InvalidParameter):
            lab.acquire("a", name="n" * 100_000)
        assert [t.name for t in lab.targets()] == ["a"]

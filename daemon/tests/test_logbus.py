"""A ``Logs`` subscriber's queue: what the server is woken for, what it takes, and what a
subscriber that falls behind is told."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
from labpower.client.wire import encode_reply
from labpower.daemon import journal
from labpower.daemon.journal import LogOutput
from labpower.daemon.logbus import (
    BATCH_BYTES,
    CallContext,
    LogBus,
    Subscriber,
    current_call,
    log_entry,
)

LOGGER = logging.getLogger("labpower.daemon.test_logbus")


def entry(seq: int, size: int = 10) -> bytes:
    """One encoded reply, as the bus makes it."""
    return encode_reply({"entry": {"seq": seq, "message": "x" * size}}, continues=True)


def test_only_the_first_entry_after_a_drained_queue_wakes_the_server() -> None:
    wakes: list[int] = []
    sub = Subscriber(None, None, wake=lambda: wakes.append(1))
    sub.push(entry(1), 1)
    sub.push(entry(2), 2)
    assert len(wakes) == 1
    assert sub.take() == entry(1) + entry(2)
    assert sub.take() == b""
    sub.push(entry(3), 3)
    assert len(wakes) == 2


def test_a_batch_is_bounded_and_the_rest_waits() -> None:
    sub = Subscriber(None, None)
    big = entry(1, BATCH_BYTES // 3)
    for seq in range(1, 6):
        sub.push(big, seq)
    first = sub.take()
    assert BATCH_BYTES <= len(first) < BATCH_BYTES + len(big)
    assert len(sub.queue) == 5 - len(first) // len(big)
    assert sub.queued_bytes == len(sub.queue) * len(big)


def test_a_subscriber_behind_by_its_limit_is_told_how_many_entries_it_lost() -> None:
    sub = Subscriber(None, None, limit=2)
    for seq in range(1, 6):
        sub.push(entry(seq), seq)
    data = sub.take()
    replies = [json.loads(part) for part in data.split(b"\0") if part]
    assert [r["parameters"]["entry"]["seq"] for r in replies] == [1, 2, 5]
    notice = replies[-1]["parameters"]["entry"]
    assert notice["level"] == "warning"
    assert notice["message"].startswith("3 entries dropped")
    assert sub.take() == b""


def test_entries_are_shared_not_copied() -> None:
    data = entry(1)
    subs = [Subscriber(None, None) for _ in range(3)]
    for sub in subs:
        sub.push(data, 1)
    assert all(sub.take() is data for sub in subs)


class _Records(logging.Handler):
    """Somebody else's handler (a test's log capture, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _journal_fields(datagram: bytes) -> dict[str, str]:
    pairs = (line.split(b"=", 1) for line in datagram.splitlines())
    return {k.decode(): v.decode() for k, v in pairs}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_switch_entry_without_a_record_is_the_entry_a_record_makes(
    tmp_path: Path, anyio_backend: str
) -> None:
    """The audit line of a switch skips Python logging where only the bus and the daemon's
    writers would see its record: subscribers and journald get the same entry either way
    (fields, escaping), and a handler of somebody else's on the way gets the record."""
    journald = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journald.bind(str(tmp_path / "journal"))
    journald.setblocking(False)
    output = LogOutput("journal", str(tmp_path / "journal"))
    top = logging.getLogger("labpower")
    saved = top.level, top.propagate
    # as in labpowerd: the daemon's writer on "labpower", no handler above it
    top.setLevel(logging.INFO)
    top.propagate = False
    top.addHandler(output)
    bus = LogBus()
    bus.sinks.append(journal.annotate)
    bus.attach()
    sub = Subscriber(None, None)
    bus.subscribers.add(sub)
    others = _Records()
    ctx = CallContext(uid=1000, pid=42)
    reset = current_call.set(ctx)
    fields = {"target": "t0", "device": "bench", "channel": 1, "op": "on", "state": "on"}
    try:
        log_entry(LOGGER, logging.INFO, "on by uid 1000: off -> on\x1b[2J", **fields)
        direct_seq = ctx.last_seq
        top.addHandler(others)
        try:
            log_entry(LOGGER, logging.INFO, "on by uid 1000: off -> on\x1b[2J", **fields)
        finally:
            top.removeHandler(others)
    finally:
        current_call.reset(reset)
        bus.detach()
        top.removeHandler(output)
        top.setLevel(saved[0])
        top.propagate = saved[1]
        output.close()
    assert [r.getMessage() for r in others.records] == ["on by uid 1000: off -> on\x1b[2J"]
    assert ctx.last_seq == direct_seq + 1
    direct, recorded = (json.loads(data.rstrip(b"\0"))["parameters"]["entry"] for data in sub.queue)
    assert direct["message"] == "on by uid 1000: off -> on\\x1b[2J"
    assert direct["seq"] == direct_seq
    for entry in (direct, recorded):
        del entry["seq"], entry["time"]
    assert direct == recorded
    assert direct["client_uid"] == 1000
    datagrams = [_journal_fields(journald.recv(65536)) for _ in range(2)]
    journald.close()
    for d in datagrams:
        del d["LABPOWER_SEQ"]
        # where the record was made: labpowerd collects no callers (logging._srcfile)
        for key in ("CODE_FILE", "CODE_LINE", "CODE_FUNC"):
            d.pop(key, None)
    assert datagrams[0] == datagrams[1]
    assert datagrams[0]["MESSAGE"] == "on by uid 1000: off -> on\\x1b[2J"
    assert datagrams[0]["LABPOWER_TARGET"] == "t0"
    assert datagrams[0]["LABPOWER_CLIENT_UID"] == "1000"
    assert datagrams[0]["PRIORITY"] == "6"

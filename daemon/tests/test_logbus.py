"""A ``Logs`` subscriber's queue: what the server is woken for, what it takes, and what a
subscriber that falls behind is told."""

from __future__ import annotations

import json

from labpower.client.wire import encode_reply
from labpower.daemon.logbus import BATCH_BYTES, Subscriber


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

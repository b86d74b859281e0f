"""A History reply always fits in one varlink message, keeping the newest entries."""

from __future__ import annotations

from labpower.client.wire import MAX_MESSAGE_SIZE, Decoder, encode_reply
from labpower.daemon.server import fit_history


def entries(n: int, size: int = 300) -> list[dict[str, object]]:
    return [{"time": "t", "level": "info", "message": "m" * size, "seq": i} for i in range(n)]


def test_small_history_is_whole() -> None:
    reply = fit_history(entries(10))
    assert reply == {"entries": entries(10)}


def test_big_history_keeps_the_newest_that_fit() -> None:
    reply = fit_history(entries(20_000))
    data = encode_reply(reply)
    assert len(data) < MAX_MESSAGE_SIZE
    (decoded,) = Decoder().feed(data)  # a client can read it
    kept = decoded["parameters"]["entries"]
    assert decoded["parameters"]["truncated"] is True
    assert [e["seq"] for e in kept] == list(range(20_000 - len(kept), 20_000))
    assert len(kept) > 1000  # nearly the whole budget is used

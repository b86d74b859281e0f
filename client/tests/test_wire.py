"""The sans-I/O varlink codec: framing, limits, validation. No sockets: two ends are joined
by handing one side's bytes to the other side's decoder, in whatever pieces a test likes."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from labpower.client.wire import (
    MAX_MESSAGE_SIZE,
    Call,
    Decoder,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    Reply,
    encode,
    encode_reply,
)


class Link:
    """A client and a server end joined without sockets; bytes are delivered by ``flush``
    in chunks of ``chunk`` bytes (all at once when None)."""

    def __init__(self, chunk: int | None = None) -> None:
        self.chunk = chunk
        self.to_server = b""
        self.to_client = b""
        self.server = Decoder()
        self.client = Decoder()

    def call(self, call: Call) -> None:
        self.to_server += encode(call)

    def reply(self, reply: Reply) -> None:
        self.to_client += encode(reply)

    def _deliver(self, data: bytes, decoder: Decoder) -> list[dict[str, Any]]:
        size = self.chunk or max(len(data), 1)
        out: list[dict[str, Any]] = []
        for i in range(0, len(data), size):
            out.extend(decoder.feed(data[i : i + size]))
        return out

    def server_receives(self) -> list[Call]:
        data, self.to_server = self.to_server, b""
        return [Call.from_wire(m) for m in self._deliver(data, self.server)]

    def client_receives(self) -> list[Reply]:
        data, self.to_client = self.to_client, b""
        return [Reply.from_wire(m) for m in self._deliver(data, self.client)]


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 7, 64])
def test_a_conversation_over_a_fake_link(chunk: int | None) -> None:
    link = Link(chunk)
    on = Call("io.labpower.Power.On", {"target": "dut1"})
    logs = Call("io.labpower.Power.Logs", {"targets": ["dut1"]}, more=True)
    quiet = Call("io.labpower.Power.Off", {"target": "dut1"}, oneway=True)
    for c in (on, logs, quiet):
        link.call(c)
    assert link.server_receives() == [on, logs, quiet]

    link.reply(Reply({"target": {"name": "dut1"}, "log_seq": 3}))
    link.reply(Reply({}, continues=True))
    link.reply(Reply({"entry": {"message": "power on", "seq": 4}}, continues=True))
    link.reply(Reply({"target": "x"}, error="io.labpower.Power.TargetNotFound"))
    replies = link.client_receives()
    assert [r.continues for r in replies] == [False, True, True, False]
    assert replies[0].parameters == {"target": {"name": "dut1"}, "log_seq": 3}
    assert replies[2].parameters["entry"]["message"] == "power on"
    assert replies[3].error == "io.labpower.Power.TargetNotFound"
    assert link.server.pending == link.client.pending == 0


def test_every_split_point_of_a_message() -> None:
    data = encode(Call("io.labpower.Power.Cycle", {"target": "dütß", "delay": 0.5}))
    for i in range(len(data)):
        d = Decoder()
        first = d.feed(data[:i])
        assert first == []
        assert d.pending == i
        assert d.feed(data[i:]) == [
            {"method": "io.labpower.Power.Cycle", "parameters": {"target": "dütß", "delay": 0.5}}
        ]
        assert d.pending == 0


def test_split_inside_a_multibyte_character() -> None:
    data = encode(Reply({"message": "Spannung €"}))
    cut = data.index("€".encode()) + 1  # between the bytes of one UTF-8 character
    d = Decoder()
    assert d.feed(data[:cut]) == []
    assert d.feed(data[cut:]) == [{"parameters": {"message": "Spannung €"}}]


@given(
    messages=st.lists(
        st.dictionaries(
            st.text(max_size=8),
            st.one_of(st.integers(), st.text(max_size=20), st.booleans(), st.none()),
            max_size=4,
        ),
        min_size=1,
        max_size=6,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=10),
)
def test_any_chunking_yields_the_same_messages(
    messages: list[dict[str, Any]], cuts: list[int]
) -> None:
    data = b"".join(encode(Reply(m)) for m in messages)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    d = Decoder()
    got: list[dict[str, Any]] = []
    for a, b in itertools.pairwise(points):
        got.extend(d.feed(data[a:b]))
    assert got == [{"parameters": m} for m in messages]
    assert d.pending == 0


def test_many_messages_in_one_chunk() -> None:
    calls = [Call("io.labpower.Power.Get", {"target": f"dut{i}"}) for i in range(50)]
    d = Decoder()
    msgs = d.feed(b"".join(encode(c) for c in calls))
    assert [Call.from_wire(m) for m in msgs] == calls


def test_chunk_with_whole_messages_and_a_partial_one() -> None:
    a, b = encode(Reply({"n": 1})), encode(Reply({"n": 2}))
    d = Decoder()
    assert d.feed(a + b[:3]) == [{"parameters": {"n": 1}}]
    assert d.pending == 3
    assert d.feed(b[3:]) == [{"parameters": {"n": 2}}]


def test_empty_feed() -> None:
    d = Decoder()
    assert d.feed(b"") == []
    assert d.pending == 0


# -- the size limit


def test_size_limit_is_one_mebibyte() -> None:
    assert MAX_MESSAGE_SIZE == 1024 * 1024
    assert Decoder().max_size == MAX_MESSAGE_SIZE


def _body(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    head, tail = b'{"p":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_largest_message_is_accepted() -> None:
    d = Decoder(max_size=64)
    assert d.feed(_body(63) + b"\0") == [{"p": "x" * 55}]  # 64 bytes with its NUL


def test_one_byte_more_is_refused() -> None:
    d = Decoder(max_size=64)
    with pytest.raises(RemoteProtocolError, match="exceeds 64"):
        d.feed(_body(64) + b"\0")


def test_too_long_without_nul_is_refused_before_the_end_arrives() -> None:
    d = Decoder(max_size=64)
    assert d.feed(_body(63)[:-1]) == []  # 62 bytes: might still end in time
    d.feed(b"}")  # 63: a NUL could still follow
    with pytest.raises(RemoteProtocolError, match="without a NUL"):
        d.feed(b" ")


def test_real_limit_with_and_without_nul() -> None:
    big = _body(MAX_MESSAGE_SIZE)
    with pytest.raises(RemoteProtocolError):
        Decoder().feed(big + b"\0")
    with pytest.raises(RemoteProtocolError):
        Decoder().feed(big)
    assert Decoder().feed(_body(MAX_MESSAGE_SIZE - 1) + b"\0")[0]["p"].startswith("xxx")


def test_buffer_stays_bounded_when_fed_in_pieces() -> None:
    d = Decoder(max_size=1000)
    for _ in range(9):
        d.feed(b"x" * 100)
    assert d.pending == 900
    with pytest.raises(RemoteProtocolError):
        d.feed(b"x" * 100)
    assert d.pending == 0


def test_work_is_linear_in_the_bytes_received() -> None:
    # A 1 MiB message in 256-byte pieces: the decoder searches each byte for the NUL once,
    # not the whole buffer again per piece (4,096 pieces would be 2 GiB of scanning).
    big = encode(Reply({"blob": "x" * (MAX_MESSAGE_SIZE - 64)}))
    tail = encode(Reply({"n": 1}))
    data = big + tail
    d = Decoder()
    messages: list[dict[str, Any]] = []
    for i in range(0, len(data), 256):
        messages.extend(d.feed(data[i : i + 256]))
    assert [len(m["parameters"].get("blob", "")) for m in messages] == [MAX_MESSAGE_SIZE - 64, 0]
    assert d.scanned == len(data)
    assert d.pending == 0


def test_work_stays_linear_byte_by_byte() -> None:
    d = Decoder()
    data = encode(Reply({"blob": "y" * 5000})) * 3
    for i in range(len(data)):
        d.feed(data[i : i + 1])
    assert d.scanned == len(data)


def test_size_limit_applies_to_each_message_not_the_chunk() -> None:
    d = Decoder(max_size=64)
    chunk = b"".join(_body(60) + b"\0" for _ in range(10))
    assert len(d.feed(chunk)) == 10


# -- broken input: the decoder fails and refuses anything after


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json}\0", "invalid JSON"),
        (b"\xff\xfe\0", "invalid JSON"),
        (b"\0", "invalid JSON"),
        (b"[1, 2]\0", "not list"),
        (b'"text"\0', "not str"),
        (b"42\0", "not int"),
        (b"null\0", "not NoneType"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\0", "invalid JSON"),
    ],
)
def test_broken_message(data: bytes, reason: str) -> None:
    d = Decoder(max_size=10**6)
    with pytest.raises(RemoteProtocolError, match=reason):
        d.feed(data)


def test_decoder_refuses_input_after_an_error() -> None:
    d = Decoder()
    with pytest.raises(RemoteProtocolError):
        d.feed(b"{oops\0")
    assert d.pending == 0
    with pytest.raises(RemoteProtocolError, match="already failed"):
        d.feed(encode(Reply({})))
    with pytest.raises(RemoteProtocolError, match="already failed"):
        d.feed(b"")


def test_decoder_refuses_input_after_an_overflow() -> None:
    d = Decoder(max_size=16)
    with pytest.raises(RemoteProtocolError):
        d.feed(b"x" * 16)
    with pytest.raises(RemoteProtocolError, match="already failed"):
        d.feed(b"{}\0")


def test_protocol_errors_say_whose_fault() -> None:
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(LocalProtocolError, ProtocolError)
    assert not issubclass(RemoteProtocolError, LocalProtocolError)


# -- Call and Reply


def test_call_to_wire_leaves_out_defaults() -> None:
    assert Call("a.B").to_wire() == {"method": "a.B"}
    assert Call("a.B", {"x": 1}, more=True).to_wire() == {
        "method": "a.B",
        "parameters": {"x": 1},
        "more": True,
    }
    assert Call("a.B", oneway=True, upgrade=True).to_wire() == {
        "method": "a.B",
        "oneway": True,
        "upgrade": True,
    }


def test_call_names() -> None:
    call = Call("io.labpower.Power.On")
    assert (call.interface, call.member) == ("io.labpower.Power", "On")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "NoInterface"},
        {"method": 42},
        {"method": "a.B", "parameters": [1]},
        {"method": "a.B", "more": True, "oneway": True},
    ],
)
def test_invalid_call_is_a_local_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        Call(**kwargs)


@pytest.mark.parametrize(
    "msg",
    [
        {},
        {"method": 1},
        {"method": "NoInterface"},
        {"method": "a.B", "parameters": []},
        {"method": "a.B", "parameters": "x"},
        {"method": "a.B", "more": 1},
        {"method": "a.B", "oneway": "true"},
        {"method": "a.B", "more": True, "oneway": True},
    ],
)
def test_invalid_call_from_the_peer_is_a_remote_error(msg: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        Call.from_wire(msg)


def test_call_from_wire() -> None:
    assert Call.from_wire({"method": "a.B", "parameters": None}) == Call("a.B")
    assert Call.from_wire({"method": "a.B", "oneway": True}).oneway is True
    assert Call.from_wire({"method": "a.B", "more": True, "parameters": {"x": 1}}) == Call(
        "a.B", {"x": 1}, more=True
    )


def test_calls_are_frozen() -> None:
    call = Call("a.B")
    with pytest.raises(AttributeError):
        call.method = "c.D"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"parameters": [1]},
        {"error": "Unqualified"},
        {"error": "a.B", "continues": True},
    ],
)
def test_invalid_reply_is_a_local_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        Reply(**kwargs)


@pytest.mark.parametrize(
    "msg",
    [
        {"parameters": [1]},
        {"continues": "yes"},
        {"error": "Unqualified"},
        {"error": 5},
        {"error": "a.B", "continues": True},
    ],
)
def test_invalid_reply_from_the_peer_is_a_remote_error(msg: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        Reply.from_wire(msg)


def test_reply_from_wire() -> None:
    assert Reply.from_wire({}) == Reply()
    assert Reply.from_wire({"parameters": None, "continues": True}) == Reply(continues=True)
    assert Reply.from_wire({"error": "a.B"}).error == "a.B"


# -- encode


@pytest.mark.parametrize(
    "message",
    [
        Call("io.labpower.Power.Read", {"target": "dut1", "interval": 0.5, "count": 3}, more=True),
        Call("org.varlink.service.GetInfo"),
        Reply({"target": {"name": "dut1", "since": None}, "log_seq": 12}),
        Reply({}, continues=True),
        Reply({"parameter": "target"}, error="org.varlink.service.InvalidParameter"),
        Reply({"text": "ünïcödé \u2603 \x01"}),
    ],
)
def test_encode_round_trip(message: Call | Reply) -> None:
    data = encode(message)
    assert data.endswith(b"\0")
    assert data.count(b"\0") == 1
    (msg,) = Decoder().feed(data)
    back = Call.from_wire(msg) if isinstance(message, Call) else Reply.from_wire(msg)
    assert back == message


def test_encode_is_compact_utf8() -> None:
    assert encode(Reply({"a": "€"})) == '{"parameters":{"a":"€"}}\0'.encode()


def test_encode_reply_matches_encode() -> None:
    params = {"reading": {"voltage": 5.0, "current": 2.0, "apparent_power": 10.0}}
    assert encode_reply(params) == encode(Reply(params))
    assert encode_reply(params, continues=True) == encode(Reply(params, continues=True))


@pytest.mark.parametrize(
    "params",
    [
        {"x": object()},
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": b"bytes"},
    ],
)
def test_encode_refuses_what_json_cannot_carry(params: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError, match="cannot encode"):
        encode(Reply(params))


def test_encode_refuses_a_message_over_the_limit() -> None:
    with pytest.raises(LocalProtocolError, match="exceeds"):
        encode(Reply({"x": "y" * MAX_MESSAGE_SIZE}))
    # just under the limit, NUL included, is fine
    overhead = len(encode(Reply({"x": ""})))
    data = encode(Reply({"x": "y" * (MAX_MESSAGE_SIZE - overhead)}))
    assert len(data) == MAX_MESSAGE_SIZE
    assert Decoder().feed(data)


def test_json_nul_inside_a_string_is_escaped() -> None:
    data = encode(Reply({"x": "a\0b"}))
    assert data.count(b"\0") == 1
    assert Decoder().feed(data) == [{"parameters": {"x": "a\0b"}}]
    assert json.loads(data[:-1]) == {"parameters": {"x": "a\0b"}}

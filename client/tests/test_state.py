"""The varlink connection state machines, without sockets: a client and a server end joined
by a fake link that delivers bytes in whatever pieces a test (or hypothesis) picks."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from labpower.client.errors import LabpowerError
from labpower.client.state import ClientConnection, ServerConnection, State
from labpower.client.wire import (
    Call,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    encode,
    encode_reply,
)


def _state(conn: ClientConnection | ServerConnection) -> State:
    # a function, not the attribute: mypy would keep the state an assert narrowed it to
    return conn.state


GET = Call("io.labpower.Power.Get", {"target": "dut1"})
READ_MORE = Call("io.labpower.Power.Read", {"target": "dut1"}, more=True)
PING = Call("io.labpower.Power.Ping", oneway=True)


def test_one_call_one_reply() -> None:
    client, server = ClientConnection(), ServerConnection()
    server.receive_data(client.send(GET))
    assert _state(client) is State.AWAITING_REPLY
    call = server.next_call()
    assert call == GET
    assert _state(server) is State.REPLYING
    data = server.reply(Reply({"n": 1}))
    assert data is not None
    assert _state(server) is State.IDLE
    assert client.next_reply() is None  # nothing arrived yet
    client.receive_data(data)
    assert client.next_reply() == Reply({"n": 1})
    assert _state(client) is State.IDLE


def test_a_call_while_one_waits_is_refused_before_anything_is_sent() -> None:
    # bug 1: a second call on a connection still owed replies would get an earlier call's
    # reply as its answer; the state machine refuses to send it at all
    client = ClientConnection()
    client.send(READ_MORE)
    with pytest.raises(LocalProtocolError, match="awaiting more replies"):
        client.send(GET)
    client.receive_data(encode_reply({"n": 1}, continues=True))
    assert client.next_reply() == Reply({"n": 1}, continues=True)
    with pytest.raises(LocalProtocolError):
        client.send(GET)
    client.receive_data(encode_reply({"n": 2}))
    assert client.next_reply() == Reply({"n": 2})
    assert _state(client) is State.IDLE
    assert client.send(GET) == encode(GET)


def test_a_oneway_call_leaves_the_connection_idle() -> None:
    client, server = ClientConnection(), ServerConnection()
    server.receive_data(client.send(PING))
    assert _state(client) is State.IDLE
    assert server.next_call() == PING
    assert _state(server) is State.ONEWAY
    assert server.reply(Reply({"ignored": True})) is None
    assert _state(server) is State.IDLE


@pytest.mark.parametrize(
    ("call", "data", "match"),
    [
        (None, encode_reply({}), "a reply came while idle"),
        (GET, encode_reply({}, continues=True), "no 'more' was asked"),
        (GET, b"Welcome to bench2\n" + encode_reply({}), "invalid JSON"),
        (GET, b"[1]\0", "must be a JSON object"),
        (GET, b'{"parameters": 3}\0', "object 'parameters'"),
    ],
)
def test_a_reply_that_breaks_the_protocol_fails_the_connection(
    call: Call | None, data: bytes, match: str
) -> None:
    client = ClientConnection()
    if call is not None:
        client.send(call)

    def receive() -> None:
        client.receive_data(data)
        client.next_reply()

    with pytest.raises(RemoteProtocolError, match=match) as info:
        receive()
    # bug 2: a protocol error is a LabpowerError, so a client resets the connection on it
    assert isinstance(info.value, LabpowerError)
    assert _state(client) is State.ERROR
    with pytest.raises(LocalProtocolError, match="the connection failed"):
        client.send(GET)


def test_what_came_in_is_kept_with_the_error() -> None:
    client = ClientConnection()
    client.send(GET)
    with pytest.raises(RemoteProtocolError) as info:
        client.receive_data(b"Last login: Mon\n" + encode_reply({}))
    assert info.value.data.startswith(b"Last login: Mon\n{")


def test_a_closed_connection_refuses_calls() -> None:
    client = ClientConnection()
    client.close()
    with pytest.raises(LocalProtocolError, match="closed"):
        client.send(GET)


def test_the_server_answers_pipelined_calls_in_order() -> None:
    server = ServerConnection()
    server.receive_data(encode(GET) + encode(PING) + encode(READ_MORE)[:5])
    assert server.next_call() == GET
    assert server.pipelined
    with pytest.raises(LocalProtocolError, match="replying"):
        server.next_call()
    server.reply(Reply())
    assert server.next_call() == PING
    assert server.pipelined  # part of the Read came
    server.end_call()
    assert server.next_call() is None
    server.receive_data(encode(READ_MORE)[5:])
    assert server.next_call() == READ_MORE
    assert not server.pipelined
    assert _state(server) is State.STREAMING
    server.reply_bytes(encode_reply({}, continues=True), continues=True)
    assert _state(server) is State.STREAMING
    server.reply(Reply())
    assert _state(server) is State.IDLE


def test_the_server_refuses_replies_the_call_does_not_allow() -> None:
    server = ServerConnection()
    with pytest.raises(LocalProtocolError, match="idle"):
        server.reply(Reply())
    server.receive_data(encode(GET))
    server.next_call()
    with pytest.raises(LocalProtocolError, match="continues"):
        server.reply(Reply(continues=True))


def test_whole_calls_before_broken_bytes_are_answered_then_the_connection_fails() -> None:
    server = ServerConnection()
    server.receive_data(encode(GET) + b"not json\0")
    assert server.next_call() == GET
    server.reply(Reply())
    with pytest.raises(RemoteProtocolError, match="invalid JSON"):
        server.next_call()
    assert _state(server) is State.ERROR


def test_a_message_that_is_not_a_call_fails_the_server_connection() -> None:
    server = ServerConnection()
    server.receive_data(encode(Reply()))
    with pytest.raises(RemoteProtocolError, match="method"):
        server.next_call()


class Conversation(RuleBasedStateMachine):
    """A client and a server, driven in random interleavings: calls of every kind, legal
    and not, replies and continued replies, bytes delivered in random pieces each way.
    The client must get every reply of its own call and no other, and refuse, before
    sending anything, each call its state does not allow."""

    def __init__(self) -> None:
        super().__init__()
        self.client = ClientConnection()
        self.server = ServerConnection()
        self.to_server = b""
        self.to_client = b""
        self.serial = 0
        #: replies the server owes (for the call it answers): None when idle
        self.owed: str | None = None
        #: what the client expects: "one", "more" or None
        self.expecting: str | None = None
        #: serials of replies sent and not yet received by the client, in order
        self.in_flight: list[tuple[int, bool]] = []
        #: the serial of the call the server answers
        self.current = -1

    @rule(kind=st.sampled_from(["plain", "more", "oneway"]))
    def client_calls(self, kind: str) -> None:
        call = Call(
            "io.labpower.Power.Get",
            {"serial": self.serial},
            more=kind == "more",
            oneway=kind == "oneway",
        )
        if self.expecting is not None:
            before = self.client.state
            with pytest.raises(LocalProtocolError):
                self.client.send(call)
            assert _state(self.client) is before
            return
        self.to_server += self.client.send(call)
        self.serial += 1
        self.expecting = None if kind == "oneway" else "one" if kind == "plain" else "more"

    @rule(size=st.integers(min_value=1, max_value=64))
    def deliver_to_server(self, size: int) -> None:
        piece, self.to_server = self.to_server[:size], self.to_server[size:]
        self.server.receive_data(piece)

    @precondition(lambda self: _state(self.server) is State.IDLE)
    @rule()
    def server_takes_a_call(self) -> None:
        call = self.server.next_call()
        if call is None:
            return
        if call.oneway:
            assert _state(self.server) is State.ONEWAY
            self.server.end_call()
        else:
            self.owed = "more" if call.more else "one"
            self.current = call.parameters["serial"]

    @precondition(lambda self: self.owed is not None)
    @rule(last=st.booleans())
    def server_replies(self, last: bool) -> None:
        continues = self.owed == "more" and not last
        data = self.server.reply(Reply({"serial": self.current}, continues))
        assert data is not None
        self.to_client += data
        self.in_flight.append((self.current, continues))
        if not continues:
            self.owed = None

    @rule(size=st.integers(min_value=1, max_value=64))
    def deliver_to_client(self, size: int) -> None:
        piece, self.to_client = self.to_client[:size], self.to_client[size:]
        self.client.receive_data(piece)
        while (reply := self.client.next_reply()) is not None:
            serial, continues = self.in_flight.pop(0)
            assert reply.parameters == {"serial": serial}
            assert serial == self.serial - 1  # the answer to the last call sent, no other
            assert reply.continues is continues
            if not continues:
                self.expecting = None

    @invariant()
    def states_agree(self) -> None:
        expected = {
            None: State.IDLE,
            "one": State.AWAITING_REPLY,
            "more": State.AWAITING_MORE,
        }[self.expecting]
        assert _state(self.client) is expected


TestConversation = Conversation.TestCase
TestConversation.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)

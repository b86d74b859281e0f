"""Where a varlink conversation is: the connection state machines, sans-I/O (like h11's).

A :class:`ClientConnection` turns calls into bytes and bytes into replies, and knows what
it is waiting for; a :class:`ServerConnection` does the same for the server side. Neither
does any I/O. Every transition is here, in one place:

client side                  send(call)                   a reply arrives
-----------                  ----------                   ---------------
IDLE                         -> AWAITING_REPLY            RemoteProtocolError
                             (-> AWAITING_MORE if "more";
                              stays IDLE if "oneway")
AWAITING_REPLY               LocalProtocolError           -> IDLE (``continues`` is an error)
AWAITING_MORE                LocalProtocolError           "continues": stays; else -> IDLE
ERROR, CLOSED                LocalProtocolError           (nothing is read any more)

A call is refused *before* anything is sent, so the peer never sees half a conversation;
that is how a reply can never be taken for the answer to a later call. Any protocol error
from the peer moves the connection to ERROR for good: the caller closes it and opens a new
one. The server side is the mirror image: calls come in (pipelined calls wait in order),
and the server answers one at a time.
"""

from __future__ import annotations

from labpower.client.errors import LocalProtocolError, RemoteProtocolError
from labpower.client.wire import MAX_MESSAGE_SIZE, Call, Decoder, Reply, encode

# typing is not imported at run time (see frozen.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections import deque
    from typing import Any, ClassVar
else:
    # the C type that collections.deque is: the collections package imports much more
    from _collections import deque

#: The most bytes a client reads from its socket at once. Below glibc's mmap threshold
#: (128 KiB): a bigger buffer is mapped and unmapped by the kernel on every read (a bytes
#: object is allocated at full size, then shrunk), which cost the client some 40 us a call.
RECEIVE_SIZE = 65536


class State:
    """Where a connection is: one of the members below, compared by identity like an
    enum's (``enum`` itself is not imported: it is a sixth of ``labpower on``'s start)."""

    __slots__ = ("name", "value")
    IDLE: ClassVar[State]
    #: a call without "more" was sent; its one reply has not come
    AWAITING_REPLY: ClassVar[State]
    #: a call with "more" was sent; replies with "continues" keep coming
    AWAITING_MORE: ClassVar[State]
    #: the server is answering a call (server side)
    REPLYING: ClassVar[State]
    #: the server is answering a call with more replies (server side)
    STREAMING: ClassVar[State]
    #: the server is running a oneway call, which gets no reply (server side)
    ONEWAY: ClassVar[State]
    #: a protocol error happened: the connection is unusable
    ERROR: ClassVar[State]
    CLOSED: ClassVar[State]

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        #: what the state is, in words
        self.value = value

    def __repr__(self) -> str:
        return f"<State.{self.name}: {self.value!r}>"


State.IDLE = State("IDLE", "idle")
State.AWAITING_REPLY = State("AWAITING_REPLY", "awaiting a reply")
State.AWAITING_MORE = State("AWAITING_MORE", "awaiting more replies")
State.REPLYING = State("REPLYING", "replying")
State.STREAMING = State("STREAMING", "streaming replies")
State.ONEWAY = State("ONEWAY", "running a oneway call")
State.ERROR = State("ERROR", "failed")
State.CLOSED = State("CLOSED", "closed")


class _Side:
    """What both sides share: the decoder, the state and the error state."""

    __slots__ = ("_decoder", "_error", "state")

    def __init__(self, max_size: int) -> None:
        self._decoder = Decoder(max_size)
        self.state = State.IDLE
        self._error: RemoteProtocolError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not form a whole message yet."""
        return self._decoder.pending

    def _refuse(self, what: str) -> LocalProtocolError:
        if self.state is State.ERROR and self._error is not None:
            return LocalProtocolError(f"cannot {what}: the connection failed: {self._error}")
        return LocalProtocolError(f"cannot {what}: the connection is {self.state.value}")

    def _fail(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        self.state = State.ERROR
        self._error = exc
        return exc

    def close(self) -> None:
        """The transport is closed; nothing can be sent or received any more."""
        if self.state is not State.ERROR:
            self.state = State.CLOSED


class ClientConnection(_Side):
    """The client's side of one varlink connection.

    ``send(call) -> bytes`` (to write to the socket), ``receive_data(bytes)`` with what the
    socket gave, ``next_reply()`` for the reply, None until it is complete.
    """

    __slots__ = ("_messages",)

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        super().__init__(max_size)
        self._messages: deque[dict[str, Any]] = deque()

    def send(self, call: Call, encoded: bytes | None = None) -> bytes:
        """The bytes of ``call``, which the connection now waits to be answered
        (``encoded``: ``wire.encode(call)``, where the caller has it already).

        :raises LocalProtocolError: a call is already waiting for its replies, or the
            connection failed or was closed; or the call cannot be encoded.
        """
        if self.state is not State.IDLE:
            raise self._refuse(f"send {call.method}")
        data = encode(call) if encoded is None else encoded
        if call.more:
            self.state = State.AWAITING_MORE
        elif not call.oneway:
            self.state = State.AWAITING_REPLY
        return data

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer. Whole messages wait for :meth:`next_reply`.

        :raises RemoteProtocolError: the bytes broke the framing (the connection failed).
        """
        if self.state is State.ERROR:
            raise self._refuse("receive")
        try:
            self._messages.extend(self._decoder.feed(data))
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None

    def next_reply(self) -> Reply | None:
        """The next reply, or None until its last byte arrived.

        :raises RemoteProtocolError: the reply is malformed, or none was due (a reply with
            no call waiting, "continues" on a call without "more"); the connection failed.
        """
        if self.state is State.ERROR:
            raise self._refuse("receive")
        if not self._messages:
            if self._decoder.broken is not None:
                raise self._fail(RemoteProtocolError(self._decoder.broken))
            return None
        msg = self._messages.popleft()
        try:
            reply = Reply.from_wire(msg)
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        if self.state is State.AWAITING_REPLY:
            if reply.continues:
                raise self._fail(RemoteProtocolError("a reply continues, but no 'more' was asked"))
            self.state = State.IDLE
        elif self.state is State.AWAITING_MORE:
            if not reply.continues:
                self.state = State.IDLE
        else:
            raise self._fail(RemoteProtocolError(f"a reply came while {self.state.value}"))
        return reply


class ServerConnection(_Side):
    """The server's side of one varlink connection: calls in, one answered at a time.

    ``receive_data(bytes)`` with what the socket gave, ``next_call()`` for the next call to
    answer (None while none is complete), then ``reply(reply)`` / ``reply_bytes(data)``
    until the last reply, or ``end_call()`` when the handler sent its replies itself.
    """

    __slots__ = ("_calls", "call")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        super().__init__(max_size)
        self._calls: deque[dict[str, Any]] = deque()
        #: the call being answered
        self.call: Call | None = None

    @property
    def pipelined(self) -> bool:
        """Whether the peer sent anything after the call being answered."""
        return bool(self._calls) or self.pending > 0 or self._decoder.broken is not None

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; whole calls wait for :meth:`next_call`. Calls that came
        whole before a broken one are still answered.

        :raises RemoteProtocolError: the bytes broke the framing and no call is left to
            answer (the connection failed).
        """
        if self.state is State.ERROR:
            raise self._refuse("receive")
        try:
            self._calls.extend(self._decoder.feed(data))
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None

    def next_call(self) -> Call | None:
        """The next call to answer, or None until one is complete.

        :raises LocalProtocolError: the previous call is still being answered.
        :raises RemoteProtocolError: the message is not a call, or the bytes after the last
            whole call are broken (the connection failed).
        """
        if self.state is not State.IDLE:
            raise self._refuse("take the next call")
        if not self._calls:
            if self._decoder.broken is not None:
                raise self._fail(RemoteProtocolError(self._decoder.broken))
            return None
        try:
            call = Call.from_wire(self._calls.popleft())
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        self.call = call
        self.state = (
            State.ONEWAY if call.oneway else State.STREAMING if call.more else State.REPLYING
        )
        return call

    def reply(self, reply: Reply) -> bytes | None:
        """The bytes of ``reply`` to the call being answered; None for a oneway call (it gets
        none). A reply without "continues" ends the call.

        :raises LocalProtocolError: no call is being answered, or "continues" on a call
            without "more".
        """
        if self.state is State.ONEWAY:
            self.end_call()
            return None
        return self.reply_bytes(encode(reply), reply.continues)

    def reply_bytes(self, data: bytes, continues: bool = False) -> bytes:
        """Like :meth:`reply` for a reply encoded already (``wire.encode_reply``)."""
        if self.state is State.REPLYING and not continues:
            self.end_call()
        elif self.state is State.STREAMING:
            if not continues:
                self.end_call()
        else:
            what = "send a reply that continues" if continues else "send a reply"
            raise self._refuse(what)
        return data

    def end_call(self) -> None:
        """The call was answered (a handler sent its replies itself, or it was oneway).

        :raises LocalProtocolError: no call is being answered.
        """
        if self.state not in (State.REPLYING, State.STREAMING, State.ONEWAY):
            raise self._refuse("end a call")
        self.state = State.IDLE
        self.call = None

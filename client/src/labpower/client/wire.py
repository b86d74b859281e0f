"""Sans-I/O varlink codec, shared by the daemon and both clients.

Varlink messages are JSON objects, each terminated by a NUL byte. This module does no I/O:
a :class:`Decoder` is fed bytes and hands back whole messages; :func:`encode` turns a message
into bytes. Calls and replies are frozen values that validate on construction (dataclasses
in all but name: see frozen.py), so a malformed message never gets past the codec. JSON text
is json's, without the json package (jsoncodec.py).

Errors say whose fault a broken message is: :class:`RemoteProtocolError` for bytes the peer
sent, :class:`LocalProtocolError` for a message this side tried to send. After a
:class:`RemoteProtocolError` the decoder is broken and refuses more input: the connection has
to be closed.
"""

from __future__ import annotations

# The protocol errors live with the client's other errors, so that they are LabpowerErrors.
from labpower.client.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from labpower.client.frozen import Frozen
from labpower.client.jsoncodec import dumps as _dumps
from labpower.client.jsoncodec import loads as _loads

# typing is not imported at run time (see frozen.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, NoReturn

#: Largest message either side accepts, NUL included. Bigger input is a protocol error.
MAX_MESSAGE_SIZE = 1024 * 1024


__all__ = [
    "MAX_MESSAGE_SIZE",
    "Call",
    "Decoder",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "Reply",
    "encode",
    "encode_reply",
]


def _is_object(value: object) -> bool:
    """Whether ``value`` is a mapping (a dict, without importing collections.abc for it)."""
    if isinstance(value, dict):
        return True
    from collections.abc import Mapping

    return isinstance(value, Mapping)


class Call(Frozen):
    """A method call: ``{"method": "iface.Method", "parameters": {...}}``. Frozen and
    validated like a dataclass (see frozen.py for why it is not one)."""

    __match_args__ = ("method", "parameters", "more", "oneway", "upgrade")
    __slots__ = __match_args__
    method: str
    parameters: Mapping[str, Any]
    more: bool
    oneway: bool
    upgrade: bool

    def __init__(
        self,
        method: str,
        parameters: Mapping[str, Any] | None = None,
        more: bool = False,
        oneway: bool = False,
        upgrade: bool = False,
    ) -> None:
        """:raises LocalProtocolError: not a valid call."""
        if parameters is None:
            parameters = {}
        if not isinstance(method, str) or "." not in method:
            raise LocalProtocolError(f"method must be 'interface.Method', not {method!r}")
        if not _is_object(parameters):
            raise LocalProtocolError("parameters must be an object")
        if more and oneway:
            raise LocalProtocolError("a call cannot be both 'more' and 'oneway'")
        self._fill(method, parameters, more, oneway, upgrade)

    @property
    def interface(self) -> str:
        return self.method.rpartition(".")[0]

    @property
    def member(self) -> str:
        return self.method.rpartition(".")[2]

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"method": self.method}
        if self.parameters:
            msg["parameters"] = self.parameters
        if self.more:
            msg["more"] = True
        if self.oneway:
            msg["oneway"] = True
        if self.upgrade:
            msg["upgrade"] = True
        return msg

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> Call:
        """Validate a decoded JSON object as a call.

        :raises RemoteProtocolError: it is not a well-formed call.
        """
        method = msg.get("method")
        params = msg.get("parameters")
        if params is None:
            params = {}
        more = msg.get("more", False)
        oneway = msg.get("oneway", False)
        upgrade = msg.get("upgrade", False)
        if not isinstance(method, str) or not isinstance(params, dict):
            raise RemoteProtocolError("a call needs a string 'method' and object 'parameters'")
        if not (isinstance(more, bool) and isinstance(oneway, bool) and isinstance(upgrade, bool)):
            raise RemoteProtocolError("'more', 'oneway' and 'upgrade' must be booleans")
        try:
            return cls(method, params, more, oneway, upgrade)
        except LocalProtocolError as exc:
            raise RemoteProtocolError(str(exc)) from None


class Reply(Frozen):
    """A reply; ``error`` is the qualified varlink error name when the call failed."""

    __match_args__ = ("parameters", "continues", "error")
    __slots__ = __match_args__
    parameters: Mapping[str, Any]
    continues: bool
    error: str | None

    def __init__(
        self,
        parameters: Mapping[str, Any] | None = None,
        continues: bool = False,
        error: str | None = None,
    ) -> None:
        """:raises LocalProtocolError: not a valid reply."""
        if parameters is None:
            parameters = {}
        if not _is_object(parameters):
            raise LocalProtocolError("parameters must be an object")
        if error is not None and (not isinstance(error, str) or "." not in error):
            raise LocalProtocolError(f"error must be a qualified name, not {error!r}")
        if error is not None and continues:
            raise LocalProtocolError("an error reply cannot continue")
        self._fill(parameters, continues, error)

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"parameters": self.parameters}
        if self.continues:
            msg["continues"] = True
        if self.error is not None:
            msg["error"] = self.error
        return msg

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> Reply:
        """Validate a decoded JSON object as a reply.

        :raises RemoteProtocolError: it is not a well-formed reply.
        """
        params = msg.get("parameters", {})
        if params is None:
            params = {}
        continues = msg.get("continues", False)
        error = msg.get("error")
        if not isinstance(params, dict) or not isinstance(continues, bool):
            raise RemoteProtocolError("a reply needs object 'parameters', boolean 'continues'")
        try:
            return cls(params, continues, error)
        except LocalProtocolError as exc:
            raise RemoteProtocolError(str(exc)) from None


def encode(message: Call | Reply) -> bytes:
    """Serialise one message, NUL terminator included.

    :raises LocalProtocolError: the message is not JSON-serialisable or too big.
    """
    try:
        data = _dumps(message.to_wire()).encode()
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"cannot encode message: {exc}") from exc
    if len(data) >= MAX_MESSAGE_SIZE:
        raise LocalProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_SIZE}")
    return data + b"\0"


def encode_reply(parameters: Mapping[str, Any], *, continues: bool = False) -> bytes:
    """Fast path for the commonest message: a successful reply from trusted code."""
    if continues:
        return (_dumps({"parameters": parameters, "continues": True})).encode() + b"\0"
    return (_dumps({"parameters": parameters})).encode() + b"\0"


def _is_unicode(obj: Any) -> bool:
    """Whether every string in a decoded message is valid Unicode (no lone surrogates)."""
    try:
        _dumps(obj, allow_nan=True).encode()
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


class Decoder:
    """Splits a byte stream into JSON objects at NUL bytes.

    ``feed()`` returns the complete objects received so far. Input that is not a JSON object,
    or a message longer than ``max_size`` without its NUL, raises :class:`RemoteProtocolError`,
    and the decoder refuses any further input.

    The work is linear in the bytes received, however the peer splits them: each byte is
    searched for a NUL once (a partial message is kept as a list of chunks, not re-joined and
    re-scanned on every chunk) and copied at most twice (into its message and out of it).
    :attr:`scanned` counts the bytes searched, for those who want to check.
    """

    __slots__ = ("_broken", "_chunks", "_pending", "max_size", "scanned")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        #: the start of a message whose NUL has not come yet
        self._chunks: list[bytes] = []
        self._pending = 0
        self._broken: str | None = None
        #: bytes searched for a NUL so far (each received byte once)
        self.scanned = 0

    @property
    def pending(self) -> int:
        """Bytes received that do not form a whole message yet."""
        return self._pending

    @property
    def broken(self) -> str | None:
        """Why the input broke the protocol, once it has; None while it is fine."""
        return self._broken

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add received bytes; return the whole messages they complete.

        Messages that arrived whole before a broken one are still returned; the error is
        then in :attr:`broken` and raised by the next ``feed()``.

        :raises RemoteProtocolError: the peer broke the framing or sent invalid JSON; its
            ``data`` holds the start of the offending input.
        """
        if self._broken is not None:
            raise RemoteProtocolError(f"connection already failed: {self._broken}")
        messages: list[dict[str, Any]] = []
        start = 0
        size = len(data)
        try:
            while (end := data.find(b"\0", start)) >= 0:
                self.scanned += end + 1 - start
                if self._chunks:
                    self._chunks.append(data[start:end])
                    frame = b"".join(self._chunks)
                    self._chunks.clear()
                    self._pending = 0
                else:
                    frame = data[start:end]
                start = end + 1
                messages.append(self._parse(frame))
            self.scanned += size - start
            if start < size:
                self._chunks.append(data[start:] if start else data)
                self._pending += size - start
                if self._pending >= self.max_size:
                    head = self._chunks[0][:_QUOTED]
                    self._fail(
                        f"message exceeds {self.max_size} bytes without a NUL terminator", head
                    )
        except RemoteProtocolError:
            if not messages:
                raise
        return messages

    def _parse(self, frame: bytes) -> dict[str, Any]:
        """One message. :raises RemoteProtocolError: it is not a JSON object."""
        if len(frame) >= self.max_size:
            self._fail(f"message of {len(frame)} bytes exceeds {self.max_size}", frame)
        try:
            obj = _loads(frame)
        except (ValueError, RecursionError) as exc:
            self._fail(f"invalid JSON: {exc}", frame)
        if (b"\\u" in frame or b"\xed" in frame) and not _is_unicode(obj):
            # "\ud800" (or its UTF-8 form, which json.loads lets through) is not text: it
            # cannot be encoded again (an echo of it in a reply or a log entry would fail),
            # so it is refused like any other invalid UTF-8
            self._fail("invalid JSON: a string holds a lone surrogate", frame)
        if not isinstance(obj, dict):
            self._fail(f"a message must be a JSON object, not {type(obj).__name__}", frame)
        return obj

    def _fail(self, reason: str, data: bytes) -> NoReturn:
        self._broken = reason
        self._chunks.clear()
        self._pending = 0
        raise RemoteProtocolError(reason, data[:_QUOTED])


#: Bytes of an offending message that a RemoteProtocolError keeps, to say what came in.
_QUOTED = 200

"""SNMP v1/v2c requests over a UDP socket of the device's own, on the caller's event loop
(anyio: asyncio or trio), with messages that pysnmp builds and reads.

pysnmp's message API (:mod:`pysnmp.proto.api`: the v1/v2c PDU and message models, encoded and
decoded by pyasn1's BER codec) is the layer under its engines: it costs a tenth of a second
and about 9 MB at import, where its high-level APIs (v1arch and v3arch alike) pull in the MIB
compiler and cost a second and about 40 MB. The transport stays here: pysnmp's own is an
asyncio loop, and the daemon may run on trio.

A request is sent, then re-sent ``retries`` times, each try waiting its share of the
device's deadline; a reply counts only if it is a Response with the request's id, version and
community. Anything else arriving on the socket (a late reply to an earlier try, garbage) is
dropped. Calls on one device never overlap (the device's lock), so one socket serves them. A request
is encoded by pysnmp once, and sent again with a new request id (:class:`Encoded`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from anyio.abc import ConnectedUDPSocket
from labpower.backends.errors import DeviceUnavailableError, OperationError
from labpower.backends.net.address import Address
from pyasn1.codec.ber import decoder, encoder  # type: ignore[import-untyped]  # no stubs
from pyasn1.error import PyAsn1Error  # type: ignore[import-untyped]
from pysnmp.proto import api, rfc1902, rfc1905

Value = int | str | None
Version = Literal["1", "2c"]
#: the longest OCTET STRING value kept from an agent
MAX_STRING = 256
#: the most request messages a session keeps encoded (a PDU of 128 outlets asks ~400 kinds)
MAX_KEPT = 512
#: request ids are kept within these, so that each one takes four bytes in BER and a
#: request's encoding differs from the next one's in those four bytes only
FIRST_ID, LAST_ID = 1 << 24, (1 << 31) - 1
#: the largest message read (SNMP over UDP: 65,507 at most; agents send ~1.5 KB)
MAX_MESSAGE = 65_535
_NUMBERS = {"1": api.SNMP_VERSION_1, "2c": api.SNMP_VERSION_2C}
_MODELS: dict[str, Any] = {version: api.PROTOCOL_MODULES[n] for version, n in _NUMBERS.items()}
#: values that mean "no such object" (v2c's exceptions; a v1 agent's NULL)
_ABSENT = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView, rfc1902.Null)


class NotOurs(ValueError):
    """What arrived is not an answer to this session (malformed, another version or
    community, not a Response)."""


def plain(value: Any) -> Value:
    """A varbind's value as Python: int, str, or None for "no such object"."""
    if isinstance(value, _ABSENT):
        return None
    if isinstance(value, rfc1902.IpAddress):  # an OCTET STRING of four bytes
        return str(value.prettyPrint())
    if isinstance(value, rfc1902.OctetString):
        return bytes(value)[:MAX_STRING].decode("utf-8", "replace")
    if isinstance(value, rfc1902.ObjectIdentifier):
        return str(value)
    try:
        return int(value)
    except (TypeError, ValueError, PyAsn1Error):
        return str(value.prettyPrint())[:MAX_STRING]


def build_request(
    version: Version,
    community: bytes,
    op: Literal["get", "set"],
    pairs: list[tuple[str, int | None]],
) -> Any:
    """A GetRequest (values None) or SetRequest (INTEGER values) message, as pysnmp's model;
    its request id is set by :func:`encode`.

    :raises ValueError: an OID that is not one (pyasn1's words).
    """
    model = _MODELS[version]
    pdu = model.GetRequestPDU() if op == "get" else model.SetRequestPDU()
    model.apiPDU.set_defaults(pdu)
    try:
        model.apiPDU.set_varbinds(
            pdu,
            [
                (rfc1902.ObjectName(oid), model.Null("") if v is None else model.Integer(v))
                for oid, v in pairs
            ],
        )
    except PyAsn1Error as exc:
        raise ValueError(str(exc)) from exc
    message = model.Message()
    model.apiMessage.set_defaults(message)
    model.apiMessage.set_community(message, community)
    model.apiMessage.set_pdu(message, pdu)
    return message


def encode(version: Version, message: Any, request_id: int) -> bytes:
    """``message`` (from :func:`build_request`) with ``request_id``, in BER."""
    model = _MODELS[version]
    model.apiPDU.set_request_id(model.apiMessage.get_pdu(message), request_id)
    return bytes(encoder.encode(message))


class Encoded:
    """A request message encoded once by pysnmp's model (pyasn1's BER encoder), and again
    per call with only its request id changed: the bytes around the id are kept, the id's
    four bytes put between them. Encoding anew costs about 0.1 ms of CPU, and keeping the
    model (a tree of pyasn1 objects) about 60 KB for a PDU's few requests."""

    __slots__ = ("after", "before")

    def __init__(self, version: Version, message: Any) -> None:
        low = encode(version, message, FIRST_ID)
        high = encode(version, message, LAST_ID)
        at = next((i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b), -1)
        self.before, self.after = low[:at], low[at + 4 :]
        middle = (FIRST_ID + LAST_ID) // 2
        if (
            at < 0
            or len(low) != len(high)
            or high != self.with_id(LAST_ID)
            or low != self.with_id(FIRST_ID)
            or encode(version, message, middle) != self.with_id(middle)
        ):
            raise ValueError("the request id is not where a four-byte INTEGER would be")

    def with_id(self, request_id: int) -> bytes:
        """The message with ``request_id`` (``FIRST_ID`` to ``LAST_ID``)."""
        return self.before + request_id.to_bytes(4, "big") + self.after


def encode_request(
    version: Version,
    community: bytes,
    request_id: int,
    op: Literal["get", "set"],
    pairs: list[tuple[str, int | None]],
) -> bytes:
    """A request message in BER (one-off: a session keeps its messages, see
    :class:`CommunitySession`). :raises ValueError: as :func:`build_request`."""
    return encode(version, build_request(version, community, op, pairs), request_id)


@dataclass(frozen=True, slots=True)
class Response:
    """An agent's Response: ``error_status`` 0 and the values in order, or an error (named by
    pysnmp) with the 1-based index of the binding it concerns."""

    request_id: int
    error_status: int
    error_index: int
    error_name: str
    values: list[Value]


def decode_response(data: bytes, version: Version, community: bytes) -> Response:
    """An agent's Response message, read by pysnmp's model of it.

    :raises NotOurs: malformed, another version or community, or not a Response.
    """
    if len(data) > MAX_MESSAGE:
        raise NotOurs("message too long")
    model = _MODELS[version]
    try:
        message, rest = decoder.decode(data, asn1Spec=model.Message())
        if rest:
            raise NotOurs("bytes after the message")
        if int(model.apiMessage.get_version(message)) != _NUMBERS[version]:
            raise NotOurs("another SNMP version")
        if bytes(model.apiMessage.get_community(message)) != community:
            raise NotOurs("another community")
        pdu = model.apiMessage.get_pdu(message)
        if not isinstance(pdu, model.GetResponsePDU):
            raise NotOurs("not a Response")
        status = model.apiPDU.get_error_status(pdu)
        code = int(status)
        return Response(
            int(model.apiPDU.get_request_id(pdu)),
            code,
            int(model.apiPDU.get_error_index(pdu)),
            str(status.prettyPrint())[:40] if code else "",
            [plain(value) for _, value in model.apiPDU.get_varbinds(pdu)],
        )
    except NotOurs:
        raise
    except (PyAsn1Error, ValueError, TypeError, IndexError, AttributeError) as exc:
        # pyasn1 reports most malformed input as PyAsn1Error, some as the Python error
        # under it; all of them mean "not an answer we can read"
        raise NotOurs(f"malformed: {type(exc).__name__}") from exc


class CommunitySession:
    """One PDU's SNMP v1/v2c session."""

    def __init__(self, options: Any, address: Address, deadline: float) -> None:
        self.version: Version = options.version
        self.community: bytes = options.community.reveal().encode()
        self.retries: int = options.retries
        self.per_try = max(deadline / (options.retries + 1) * 0.9, 0.05)
        self.address = address
        self._socket: ConnectedUDPSocket | None = None
        self._next_id = FIRST_ID + secrets.randbelow(LAST_ID - FIRST_ID)
        #: the requests asked so far, encoded (building one costs several times what
        #: encoding it does; a PDU is asked the same few requests again and again)
        self._requests: dict[tuple[str, tuple[tuple[str, int | None], ...]], Encoded] = {}

    async def open(self) -> None:
        """:raises OSError: the host cannot be resolved, or no socket is allowed."""
        self._socket = await anyio.create_connected_udp_socket(self.address.host, self.address.port)

    async def request(self, op: str, pairs: list[tuple[str, int | None]]) -> list[Value]:
        """GET (values None) or SET (INTEGER values); the values in order, None where the
        agent has no such object.

        :raises TimeoutError: no answer (down, unreachable, or a wrong community).
        :raises OperationError: the agent refused the request (errorStatus).
        :raises OSError: the socket failed (refused: no agent at that port).
        """
        sock = self._socket
        if sock is None:
            raise DeviceUnavailableError(f"{self.address} is not open")
        self._next_id = self._next_id + 1 if self._next_id < LAST_ID else FIRST_ID
        request_id = self._next_id
        key = (op, tuple(pairs))
        try:
            encoded = self._requests.get(key)
            if encoded is None:
                if len(self._requests) >= MAX_KEPT:
                    self._requests.clear()
                built = build_request(
                    self.version, self.community, "get" if op == "get" else "set", pairs
                )
                encoded = self._requests[key] = Encoded(self.version, built)
            message = encoded.with_id(request_id)
        except ValueError as exc:
            raise OperationError(
                f"cannot ask {self.address} for {pairs[0][0]!r:.80}: {exc}"
            ) from exc
        for _ in range(self.retries + 1):
            await sock.send(message)
            with anyio.move_on_after(self.per_try):
                while True:
                    data = await sock.receive()
                    try:
                        reply = decode_response(data, self.version, self.community)
                    except NotOurs:
                        continue  # not an answer to us: keep waiting for one
                    if reply.request_id == request_id:
                        return self._values(op, pairs, reply)
        raise TimeoutError(f"no SNMP answer from {self.address}")

    def _values(self, op: str, pairs: list[tuple[str, int | None]], reply: Response) -> list[Value]:
        if reply.error_status:
            name, index = reply.error_name, reply.error_index
            if name == "noSuchName" and op == "get" and len(pairs) == 1:
                return [None]  # SNMPv1's way of saying "no such object"
            where = pairs[index - 1][0] if 0 < index <= len(pairs) else pairs[0][0]
            raise OperationError(f"{self.address} refused the {op.upper()} of {where}: {name}")
        values = reply.values
        if len(values) != len(pairs):
            raise OperationError(
                f"{self.address} answered {len(values)} values to a {op.upper()} of {len(pairs)}"
            )
        return values

    async def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            await sock.aclose()

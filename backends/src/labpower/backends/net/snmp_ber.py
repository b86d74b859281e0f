"""SNMP v1 and v2c messages, encoded and decoded without I/O (RFC 1157, RFC 3416, BER of
X.690): GetRequest and SetRequest out, Response in.

Only what a PDU backend needs: INTEGER values to SET, and the value types an agent answers
with (INTEGER, OCTET STRING, OBJECT IDENTIFIER, IpAddress, Counter32/64, Gauge32,
TimeTicks, NULL and the v2c exceptions noSuchObject, noSuchInstance, endOfMibView).
pysnmp's general machinery (its MIB view, its pyasn1 schema objects) costs tens of
megabytes and about a millisecond per request; these messages take tens of microseconds.
SNMPv3 (USM authentication and privacy) stays with pysnmp
(:mod:`labpower.backends.net.snmp_session`).

Everything an agent sends is hostile: lengths are checked against what is left, nesting is
fixed by the message's shape, and strings are cut at :data:`MAX_STRING`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: the longest OCTET STRING value kept from an agent
MAX_STRING = 256
#: the largest message taken (SNMP over UDP: 65,507 at most; agents send ~1.5 KB)
MAX_MESSAGE = 65_535

_INTEGER, _OCTETS, _NULL, _OID, _SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
_IPADDRESS, _COUNTER32, _GAUGE32, _TIMETICKS, _OPAQUE, _COUNTER64 = (
    0x40,
    0x41,
    0x42,
    0x43,
    0x44,
    0x46,
)
#: v2c exception values: the agent has no such object (read as None)
_ABSENT = (0x80, 0x81, 0x82)
_GET, _RESPONSE, _SET = 0xA0, 0xA2, 0xA3
#: RFC 3416 error-status names, for messages
ERROR_STATUS = (
    "noError",
    "tooBig",
    "noSuchName",
    "badValue",
    "readOnly",
    "genErr",
    "noAccess",
    "wrongType",
    "wrongLength",
    "wrongEncoding",
    "wrongValue",
    "noCreation",
    "inconsistentValue",
    "resourceUnavailable",
    "commitFailed",
    "undoFailed",
    "authorizationError",
    "notWritable",
    "inconsistentName",
)

Value = int | str | None
Version = Literal["1", "2c"]


class BerError(ValueError):
    """The agent sent something that is not an SNMP response this codec reads."""


# -- encoding


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def _integer(value: int) -> bytes:
    return _tlv(
        _INTEGER, value.to_bytes((value + (value < 0)).bit_length() // 8 + 1, "big", signed=True)
    )


def encode_oid(oid: str) -> bytes:
    """An OBJECT IDENTIFIER's BER value (without tag and length).

    :raises ValueError: not a dotted OID of at least two arcs.
    """
    try:
        arcs = [int(arc) for arc in oid.strip(".").split(".")]
    except ValueError:
        raise ValueError(f"{oid!r} is not a dotted OID") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:
        raise ValueError(f"{oid!r} is not a valid OID")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def encode_request(
    version: Version,
    community: bytes,
    request_id: int,
    op: Literal["get", "set"],
    pairs: list[tuple[str, int | None]],
) -> bytes:
    """A GetRequest (values None) or SetRequest (INTEGER values) message."""
    bindings = b"".join(
        _tlv(
            _SEQUENCE,
            _tlv(_OID, encode_oid(oid)) + (b"\x05\x00" if value is None else _integer(value)),
        )
        for oid, value in pairs
    )
    pdu = _integer(request_id) + _integer(0) + _integer(0) + _tlv(_SEQUENCE, bindings)
    body = (
        _integer(0 if version == "1" else 1)
        + _tlv(_OCTETS, community)
        + _tlv(_GET if op == "get" else _SET, pdu)
    )
    return _tlv(_SEQUENCE, body)


# -- decoding


@dataclass(frozen=True, slots=True)
class Response:
    """An agent's Response: ``error_status`` 0 and the values in order, or an error with the
    1-based index of the binding it concerns."""

    request_id: int
    error_status: int
    error_index: int
    values: list[Value]

    @property
    def error_name(self) -> str:
        s = self.error_status
        return ERROR_STATUS[s] if 0 <= s < len(ERROR_STATUS) else f"error {s}"


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def next(self) -> tuple[int, int, int]:
        """The next TLV: (tag, start of its value, end of its value)."""
        data, pos = self.data, self.pos
        if pos + 2 > self.end:
            raise BerError("truncated")
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if first & 0x80:
            count = first & 0x7F
            if not 1 <= count <= 4 or pos + count > self.end:
                raise BerError("bad length")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        else:
            length = first
        if pos + length > self.end:
            raise BerError("length beyond the message")
        self.pos = pos + length
        return tag, pos, pos + length

    def expect(self, tag: int) -> tuple[int, int]:
        got, start, end = self.next()
        if got != tag:
            raise BerError(f"expected tag 0x{tag:02x}, got 0x{got:02x}")
        return start, end

    def integer(self) -> int:
        start, end = self.expect(_INTEGER)
        if not 1 <= end - start <= 9:
            raise BerError("bad INTEGER")
        return int.from_bytes(self.data[start:end], "big", signed=True)


def decode_oid(data: bytes) -> str:
    if not data or data[-1] & 0x80:
        raise BerError("bad OBJECT IDENTIFIER")
    arcs: list[int] = []
    arc = 0
    for byte in data:
        arc = (arc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(arc)
            arc = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def _value(tag: int, data: bytes) -> Value:
    if tag in _ABSENT or tag == _NULL:
        return None
    if tag == _INTEGER:
        if not 1 <= len(data) <= 9:
            raise BerError("bad INTEGER")
        return int.from_bytes(data, "big", signed=True)
    if tag in (_COUNTER32, _GAUGE32, _TIMETICKS, _COUNTER64):
        if not 1 <= len(data) <= 9:
            raise BerError("bad unsigned value")
        return int.from_bytes(data, "big")
    if tag in (_OCTETS, _OPAQUE):
        return data[:MAX_STRING].decode("utf-8", "replace")
    if tag == _OID:
        return decode_oid(data)
    if tag == _IPADDRESS and len(data) == 4:
        return ".".join(str(b) for b in data)
    raise BerError(f"unknown value type 0x{tag:02x}")


def decode_response(data: bytes, version: Version, community: bytes) -> Response:
    """An agent's Response message.

    :raises BerError: malformed, another version or community, or not a Response.
    """
    if len(data) > MAX_MESSAGE:
        raise BerError("message too long")
    outer = _Reader(data)
    start, end = outer.expect(_SEQUENCE)
    message = _Reader(data, start, end)
    if message.integer() != (0 if version == "1" else 1):
        raise BerError("another SNMP version")
    start, end = message.expect(_OCTETS)
    if data[start:end] != community:
        raise BerError("another community")
    start, end = message.expect(_RESPONSE)
    pdu = _Reader(data, start, end)
    request_id, status, index = pdu.integer(), pdu.integer(), pdu.integer()
    start, end = pdu.expect(_SEQUENCE)
    bindings = _Reader(data, start, end)
    values: list[Value] = []
    while bindings.pos < bindings.end:
        start, end = bindings.expect(_SEQUENCE)
        binding = _Reader(data, start, end)
        binding.expect(_OID)
        tag, start, end = binding.next()
        values.append(_value(tag, data[start:end]))
    return Response(request_id, status, index, values)

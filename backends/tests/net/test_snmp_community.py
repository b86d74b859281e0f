"""SNMP v1/v2c messages as labpower builds and reads them with pysnmp's message API: what an
agent reads of a request, every value type of a reply, hostile replies, and a session that
must pick its answer out of what else arrives on its socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labpower.backends.net.address import Address
from labpower.backends.net.snmp_community import (
    FIRST_ID,
    LAST_ID,
    MAX_STRING,
    CommunitySession,
    Encoded,
    NotOurs,
    build_request,
    decode_response,
    encode_request,
)
from labpower.backends.secret import Secret
from pyasn1.codec.ber import decoder, encoder  # type: ignore[import-untyped]  # no stubs
from pysnmp.proto import api, rfc1902, rfc1905

V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
OID = "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.3"


def pysnmp_response(
    values: list[Any], request_id: int = 42, community: str = "lab", status: int = 0
) -> bytes:
    """A Response message as pysnmp (an agent's library) encodes it."""
    pdu = V2C.ResponsePDU()
    V2C.apiPDU.set_defaults(pdu)
    V2C.apiPDU.set_request_id(pdu, request_id)
    V2C.apiPDU.set_error_status(pdu, status)
    V2C.apiPDU.set_error_index(pdu, 1 if status else 0)
    V2C.apiPDU.set_varbinds(pdu, [(V2C.ObjectIdentifier(OID), v) for v in values])
    message = V2C.Message()
    V2C.apiMessage.set_defaults(message)
    V2C.apiMessage.set_community(message, community)
    V2C.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


@pytest.mark.parametrize("value", [None, 0, 1, 2, 127, 128, 255, 256, -1, -128, -129, 2**31 - 1])
@pytest.mark.parametrize("version", ["1", "2c"])
def test_requests_carry_what_was_asked(value: int | None, version: str) -> None:
    """What an agent reads out of a request: version, community, id, OIDs and values."""
    op = "get" if value is None else "set"
    data = encode_request(version, b"lab", 1234, op, [(OID, value), (OID + ".7", value)])  # type: ignore[arg-type]
    assert api.decodeMessageVersion(data) == (0 if version == "1" else 1)
    model = api.PROTOCOL_MODULES[api.SNMP_VERSION_1 if version == "1" else api.SNMP_VERSION_2C]
    message, rest = decoder.decode(data, asn1Spec=model.Message())
    assert rest == b""
    assert model.apiMessage.get_community(message) == b"lab"
    pdu = model.apiMessage.get_pdu(message)
    assert isinstance(pdu, model.GetRequestPDU if op == "get" else model.SetRequestPDU)
    assert model.apiPDU.get_request_id(pdu) == 1234
    bindings = model.apiPDU.get_varbinds(pdu)
    assert [str(oid) for oid, _ in bindings] == [OID, OID + ".7"]
    if value is None:
        assert all(isinstance(v, type(model.Null())) for _, v in bindings)
    else:
        assert [int(v) for _, v in bindings] == [value, value]


@settings(max_examples=200, deadline=None)
@given(
    request_id=st.integers(FIRST_ID, LAST_ID),
    version=st.sampled_from(["1", "2c"]),
    community=st.binary(min_size=0, max_size=40),
    value=st.none() | st.integers(-(2**31), 2**31 - 1),
    count=st.integers(1, 8),
)
def test_a_kept_request_is_what_pysnmp_encodes_with_that_id(
    request_id: int, version: str, community: bytes, value: int | None, count: int
) -> None:
    """A session sends a request encoded once with a new id's bytes put in: byte for byte
    the message pysnmp encodes with that id (whatever the community, OIDs and values hold,
    the four bytes of the id included)."""
    op = "get" if value is None else "set"
    pairs = [(f"{OID}.{n}", value) for n in range(count)]
    message = build_request(version, community, op, pairs)  # type: ignore[arg-type]
    kept = Encoded(version, message)  # type: ignore[arg-type]
    assert kept.with_id(request_id) == encode_request(version, community, request_id, op, pairs)  # type: ignore[arg-type]


def test_a_request_for_a_bad_oid_is_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.3\.6\.x"):
        encode_request("2c", b"lab", 1, "get", [("1.3.6.x", None)])


def test_responses_of_every_value_type() -> None:
    values = [
        rfc1902.Integer32(-5),
        rfc1902.OctetString(b"web01"),
        rfc1902.ObjectIdentifier("1.3.6.1.4.1.318"),
        rfc1902.Gauge32(4_000_000_000),
        rfc1902.Counter64(2**63),
        rfc1902.TimeTicks(100),
        rfc1902.IpAddress("192.0.2.7"),
        rfc1905.noSuchObject,
        rfc1905.noSuchInstance,
        rfc1905.endOfMibView,
        rfc1902.OctetString(b"\xff" * (MAX_STRING + 10)),
    ]
    reply = decode_response(pysnmp_response(values), "2c", b"lab")
    assert (reply.request_id, reply.error_status) == (42, 0)
    assert reply.values[:10] == [
        -5,
        "web01",
        "1.3.6.1.4.1.318",
        4_000_000_000,
        2**63,
        100,
        "192.0.2.7",
        None,
        None,
        None,
    ]
    long = reply.values[10]
    assert isinstance(long, str)
    assert len(long) == MAX_STRING  # cut, and undecodable bytes replaced


def test_error_status_is_named() -> None:
    reply = decode_response(pysnmp_response([rfc1902.Integer32(1)], status=17), "2c", b"lab")
    assert (reply.error_name, reply.error_index) == ("notWritable", 1)


def test_another_community_or_version_is_not_an_answer() -> None:
    data = pysnmp_response([rfc1902.Integer32(1)])
    with pytest.raises(NotOurs, match="another community"):
        decode_response(data, "2c", b"other")
    with pytest.raises(NotOurs, match="another SNMP version"):
        decode_response(data, "1", b"lab")


def test_every_truncation_is_refused_cleanly() -> None:
    data = pysnmp_response([rfc1902.OctetString(b"outlet name"), rfc1902.Integer32(7)])
    for cut in range(len(data)):
        with pytest.raises(NotOurs):
            decode_response(data[:cut], "2c", b"lab")


@settings(deadline=None)  # pyasn1 on a loaded machine: tens of ms, rarely hundreds
@given(st.binary(max_size=300))
def test_garbage_raises_nothing_but_not_ours(data: bytes) -> None:
    try:
        decode_response(data, "2c", b"lab")
    except NotOurs:
        pass


@settings(deadline=None)  # pyasn1 on a loaded machine: tens of ms, rarely hundreds
@given(st.binary(min_size=1, max_size=40))
def test_flipped_bytes_of_a_real_reply_raise_nothing_but_not_ours(noise: bytes) -> None:
    data = bytearray(pysnmp_response([rfc1902.OctetString(b"x"), rfc1902.Gauge32(3)]))
    for i, b in enumerate(noise):
        data[(i * 7) % len(data)] ^= b
    try:
        decode_response(bytes(data), "2c", b"lab")
    except NotOurs:
        pass


# -- the session on a socket that also carries other things


class Options:
    version = "2c"
    community = Secret("lab")
    retries = 1


@pytest.fixture
def agent() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A UDP "agent" that answers each request with garbage, a reply of another
    community, a late reply to an earlier id, and only then the right one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    seen: list[bytes] = []

    def serve() -> None:
        try:
            while True:
                data, peer = sock.recvfrom(65536)
                seen.append(data)
                message, _ = decoder.decode(data, asn1Spec=V2C.Message())
                rid = int(V2C.apiPDU.get_request_id(V2C.apiMessage.get_pdu(message)))
                for reply in (
                    b"\x30\x03garbage",
                    pysnmp_response([rfc1902.Integer32(9)], rid, community="other"),
                    pysnmp_response([rfc1902.Integer32(8)], rid - 1),
                    pysnmp_response([rfc1902.Integer32(2)], rid),
                ):
                    sock.sendto(reply, peer)
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock, seen
    sock.close()
    thread.join(10)


@pytest.mark.anyio
async def test_the_session_takes_only_its_own_answer(
    agent: tuple[socket.socket, list[bytes]],
) -> None:
    sock, seen = agent
    session = CommunitySession(Options(), Address("127.0.0.1", sock.getsockname()[1]), 5.0)
    await session.open()
    try:
        assert await session.request("get", [(OID, None)]) == [2]
        assert await session.request("set", [(OID, 1)]) == [2]
        # the same request again (the session keeps its message): a new id, the right answer
        assert await session.request("get", [(OID, None)]) == [2]
    finally:
        await session.close()
    assert len(seen) == 3  # no retry was needed
    ids = [
        int(
            V2C.apiPDU.get_request_id(
                V2C.apiMessage.get_pdu(decoder.decode(d, asn1Spec=V2C.Message())[0])
            )
        )
        for d in seen
    ]
    assert len(set(ids)) == 3


@pytest.mark.anyio
async def test_no_answer_is_a_timeout_after_the_retries() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        session = CommunitySession(Options(), Address("127.0.0.1", silent.getsockname()[1]), 0.4)
        await session.open()
        try:
            with anyio.fail_after(5), pytest.raises(TimeoutError):
                await session.request("get", [(OID, None)])
        finally:
            await session.close()
        silent.settimeout(1)
        assert len([silent.recv(65536) for _ in range(2)]) == 2  # the request and one retry

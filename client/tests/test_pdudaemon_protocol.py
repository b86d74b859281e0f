"""pdudaemon's wire protocols, sans I/O: what labpower-pdudaemon makes of the bytes."""

from __future__ import annotations

import pytest
from labpower.client.pdudaemon import protocol as p
from labpower.client.pdudaemon.address import AddressError, parse_address, port_number


def http(raw: bytes, body: bytes = b"") -> p.Request | p.HttpReply:
    head = p.parse_head(raw)
    assert head is not None
    return p.parse_http(head, body)


@pytest.mark.parametrize(
    ("first", "is_http"),
    [
        (b"GET /power/control/on?x HTTP/1.1\r\n", True),
        (b"PUT /targets/dut1 HTTP/1.1\r\n", True),
        (b"pdu01 19 on", False),
        (b"GET 19 on", False),  # a PDU named GET: no request target
        (b"", False),
    ],
)
def test_http_or_tcp_from_the_first_bytes(first: bytes, is_http: bool) -> None:
    assert p.looks_like_http(first) is is_http


def test_tcp_port_and_delay_as_pdudaemon_reads_them() -> None:
    assert p.parse_tcp(b"pdu01 08 on") == p.Request("on", hostname="pdu01", port="8")
    assert p.parse_tcp(b" pdu01 19 reboot\n") == p.Request(
        "reboot", hostname="pdu01", port="19", delay=5
    )
    assert p.parse_tcp(b"pdu01 19 off 3").delay == 3  # type: ignore[union-attr]
    assert p.parse_tcp(b"pdu01 19 reboot -2").delay == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (b"pdu01 19", b"Unexpected data"),
        # two spaces: an empty word, so four words, the last one taken for the delay
        (b"pdu01  19 on", b"invalid literal for int() with base 10: 'on'"),
        (b"pdu01 x on", b"invalid literal for int() with base 10: 'x'"),
        (b"pdu01 0 on", p.NACK),
        (b"pdu01 19 toggle", p.NACK),
        (b"\xff on", b"'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
    ],
)
def test_tcp_refusals(data: bytes, reply: bytes) -> None:
    refused = p.parse_tcp(data)
    assert isinstance(refused, p.Refused)
    assert refused.reply == reply


def test_http_control_status_and_rest() -> None:
    assert http(b"GET /power/control/on?hostname=pdu01&port=19 HTTP/1.1\r\n\r\n") == p.Request(
        "on", hostname="pdu01", port="19"
    )
    assert http(b"GET /power/control/reboot?alias=a&delay=2 HTTP/1.0\r\n\r\n") == p.Request(
        "reboot", alias="a", delay=2
    )
    assert http(b"GET /power/status?alias=a HTTP/1.1\r\n\r\n") == p.Request("status", alias="a")
    assert http(b"GET /power/rest/pdu01/19 HTTP/1.1\r\n\r\n") == p.Request(
        "get", hostname="pdu01", port="19"
    )
    assert http(b"PUT /targets/dut1 HTTP/1.1\r\n\r\n", b"1") == p.Request(
        "put", target="dut1", value=True
    )


@pytest.mark.parametrize(
    ("raw", "body", "status"),
    [
        (b"GET /power/control/on?hostname=pdu01 HTTP/1.1\r\n\r\n", b"", 500),
        (b"GET /power/control/on?alias=a&port=1 HTTP/1.1\r\n\r\n", b"", 500),
        (b"GET /power/control/on?alias=a&delay=1.5 HTTP/1.1\r\n\r\n", b"", 500),
        (b"GET /power/control/on/ HTTP/1.1\r\n\r\n", b"", 404),
        (b"POST /power/control/on?alias=a HTTP/1.1\r\n\r\n", b"", 405),
        (b"DELETE /targets/dut1 HTTP/1.1\r\n\r\n", b"", 405),
        (b"PUT /targets/dut1 HTTP/1.1\r\n\r\n", b"2", 500),
    ],
)
def test_http_refusals(raw: bytes, body: bytes, status: int) -> None:
    reply = http(raw, body)
    assert isinstance(reply, p.HttpReply)
    assert reply.status == status


def test_malformed_request_lines_are_none() -> None:
    assert p.parse_head(b"GET /\r\n\r\n") is None
    assert p.parse_head(b"GET / FTP/1.0\r\n\r\n") is None
    assert p.parse_head(b"G\xffT / HTTP/1.1\r\n\r\n") is None


def test_a_reply_to_head_has_no_body() -> None:
    reply = p.HttpReply(200, p.OK)
    assert reply.encode().endswith(b"\r\n\r\nOK - accepted request\n")
    assert reply.encode(head_only=True).endswith(b"Content-Length: 22\r\nConnection: close\r\n\r\n")


def test_addresses_in_the_config() -> None:
    assert parse_address("pdu01:019") == ("pdu01", 19)
    assert parse_address("[::1]:4") == ("[::1]", 4)
    for bad in ("pdu01", "pdu01:", ":1", "pdu 01:1", "pdu01:-1"):
        with pytest.raises(AddressError):
            parse_address(bad)
    assert port_number("08") == 8
    assert port_number("x") is None

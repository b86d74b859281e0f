"""``host = "NAME[:PORT]"``: names, IPv4, IPv6, ports, and clear errors for the rest."""

from __future__ import annotations

import pytest
from labpower.backends.net.address import Address, parse_host


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pdu1.lab", Address("pdu1.lab", 161)),
        ("pdu1.lab:1161", Address("pdu1.lab", 1161)),
        ("10.0.4.17", Address("10.0.4.17", 161)),
        ("127.0.0.1:8080", Address("127.0.0.1", 8080)),
        ("::1", Address("::1", 161)),
        ("[::1]:1161", Address("::1", 1161)),
        ("[fe80::1]", Address("fe80::1", 161)),
        ("PDU-01", Address("PDU-01", 161)),
    ],
)
def test_accepted_forms(text: str, expected: Address) -> None:
    assert parse_host(text, 161) == expected


def test_url_form_brackets_ipv6() -> None:
    assert str(parse_host("[::1]:80", 1)) == "[::1]:80"
    assert str(parse_host("pdu:80", 1)) == "pdu:80"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is not a host name"),
        ("pdu1:http", "port 'http' must be a number"),
        ("pdu1:0", "must be a number 1..65535"),
        ("pdu1:70000", "must be a number 1..65535"),
        ("http://pdu1", "no URL, no path"),
        ("pdu 1", "is not a host name"),
        ("[pdu1]:80", "is not an IPv6 address"),
        ("[::1]x", "is not an address"),
        ("1::2::3", "is not an address"),
        ("-pdu", "is not a host name"),
    ],
)
def test_refused_forms_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r"^host: ") as info:
        parse_host(text, 161)
    assert reason in str(info.value)

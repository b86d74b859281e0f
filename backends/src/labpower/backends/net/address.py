"""``host = "NAME[:PORT]"``: a network device's address in the config."""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)


class Address(NamedTuple):
    host: str
    port: int

    def url_host(self) -> str:
        """The host as it goes in a URL (IPv6 in brackets)."""
        return f"[{self.host}]" if ":" in self.host else self.host

    def __str__(self) -> str:
        return f"{self.url_host()}:{self.port}"


def parse_host(value: str, default_port: int) -> Address:
    """Split ``NAME[:PORT]``: a host name, an IPv4 address, or an IPv6 address (bare, or in
    brackets when a port follows: ``[::1]:8080``).

    :raises ValueError: ``"host: ..."`` naming what is wrong and the accepted form.
    """
    form = 'expected "NAME", "NAME:PORT", "IPv4[:PORT]", "IPv6" or "[IPv6]:PORT"'
    text = value.strip()
    port = default_port
    if "/" in text:
        raise ValueError(f"host: {value!r} is not a host name or address: no URL, no path ({form})")
    if text.startswith("["):
        inside, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"host: {value!r} is not an address ({form})")
        host, port_text = inside, rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"host: {host!r} in brackets is not an IPv6 address") from None
    elif text.count(":") > 1:
        host, port_text = text, None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"host: {value!r} is not an address ({form})") from None
    else:
        host, sep, after = text.partition(":")
        port_text = after if sep else None
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"host: {host!r} is not a host name or address ({form})")
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"host: port {port_text!r} must be a number 1..65535")
        port = int(port_text)
    return Address(host, port)

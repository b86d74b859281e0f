"""pdudaemon's names for a power port, and how they map to labpower targets.

A pdudaemon client names a port either as ``(pdu hostname, port)`` or by an alias. In
labpowerd.toml a target takes them as ``pdudaemon = "pdu01:19"`` and ``aliases = [...]``;
the daemon hands both back in every ``Target``, so the daemon's config stays the one place
that says which target answers to which name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from labpower.client.types import Target

#: a PDU hostname or an alias: no whitespace (pdudaemon's TCP message splits on spaces),
#: nothing that would need escaping in a URL query or a log line
_NAME = re.compile(r"[A-Za-z0-9_.:@+\[\]-]{1,253}")
_PORT = re.compile(r"[0-9]{1,9}")


class AddressError(ValueError):
    """A pdudaemon address or alias in labpower's config is malformed."""


def check_name(text: str, what: str) -> str:
    """``text`` if it is a usable PDU hostname or alias. :raises AddressError:"""
    if not _NAME.fullmatch(text):
        raise AddressError(
            f"{what} {text!r} must be 1 to 253 letters, digits and _.:@+-[] (no spaces)"
        )
    return text


def parse_address(text: str) -> tuple[str, int]:
    """``"pdu01:19"`` -> ``("pdu01", 19)``; the port is the part after the last colon.

    :raises AddressError: not HOSTNAME:PORT with a decimal port.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not _PORT.fullmatch(port):
        raise AddressError(f'{text!r} is not HOSTNAME:PORT (for example "pdu01:19")')
    check_name(host, "PDU hostname")
    return host, int(port)


def format_address(host: str, port: int) -> str:
    return f"{host}:{port}"


def port_number(text: str) -> int | None:
    """The port a client asked for, compared as pdudaemon compares it: as a whole number,
    so ``08`` is ``8``. None when it is not a number (no target can have it)."""
    if not _PORT.fullmatch(text):
        return None
    return int(text)


def find_target(targets: Iterable[Target], host: str, port: int) -> Target | None:
    """The target that answers to pdudaemon's ``(host, port)``, if any."""
    wanted = format_address(host, port)
    for t in targets:
        if t.pdudaemon == wanted:
            return t
    return None


def find_alias(targets: Iterable[Target], alias: str) -> Target | None:
    """The target that answers to a pdudaemon alias, if any."""
    for t in targets:
        if alias in t.aliases:
            return t
    return None

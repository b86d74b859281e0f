"""Why a device cannot be reached, in words an admin can act on: the OSError under a
library's wrapping (anyio's connect groups, pysnmp's errors) is found and named."""

from __future__ import annotations

import errno
import socket

import pytest
from labpower.backends.net.address import Address
from labpower.backends.net.base import NETWORK_DROP_IN, describe_failure

PDU = Address("pdu1.lab", 161)


def wrapped(err: OSError) -> Exception:
    """As anyio hands it on: a group of attempts, under a library error."""
    try:
        try:
            raise OSError("All connection attempts failed") from ExceptionGroup("tries", [err])
        except OSError as inner:
            raise RuntimeError("connect failed") from inner
    except RuntimeError as outer:
        return outer


def test_socket_family_forbidden_by_the_unit() -> None:
    why = describe_failure(
        wrapped(OSError(errno.EAFNOSUPPORT, "Address family not supported")), PDU
    )
    assert why.startswith("the network is forbidden to labpowerd")
    assert "AF_UNIX" in why
    assert NETWORK_DROP_IN in why
    assert "IPAddressAllow=" in why


def test_address_not_allowed() -> None:
    why = describe_failure(wrapped(OSError(errno.EPERM, "Operation not permitted")), PDU)
    assert why.startswith("sending to pdu1.lab:161 is not permitted")
    assert "IPAddressAllow=" in why


def test_refused_unreachable_unresolvable() -> None:
    assert describe_failure(wrapped(ConnectionRefusedError(errno.ECONNREFUSED, "x")), PDU) == (
        "connection refused by pdu1.lab:161"
    )
    assert "unreachable" in describe_failure(
        OSError(errno.ENETUNREACH, "Network is unreachable"), PDU
    )
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert describe_failure(wrapped(gai), PDU) == (
        "cannot resolve 'pdu1.lab': Name or service not known"
    )


def test_real_refusal_on_loopback() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionRefusedError) as info:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert describe_failure(info.value, Address("127.0.0.1", port)) == (
        f"connection refused by 127.0.0.1:{port}"
    )

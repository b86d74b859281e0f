"""SNMP v1/v2c requests over a UDP socket of the device's own, on the caller's event loop
(anyio: asyncio or trio), with the messages of :mod:`labpower.backends.net.snmp_ber`.

A request is sent, then re-sent ``retries`` times, each try waiting its share of the
device's deadline; a reply counts only if it carries the request's id, version and
community. Anything else arriving on the socket (a late reply to an earlier try, garbage) is
dropped. Calls on one device never overlap (the device's lock), so one socket serves them.
"""

from __future__ import annotations

import secrets
from typing import Any

import anyio
from anyio.abc import ConnectedUDPSocket
from labpower.backends.errors import DeviceUnavailableError, OperationError
from labpower.backends.net.address import Address
from labpower.backends.net.snmp_ber import (
    BerError,
    Response,
    Value,
    Version,
    decode_response,
    encode_request,
)


class CommunitySession:
    """One PDU's SNMP v1/v2c session."""

    def __init__(self, options: Any, address: Address, deadline: float) -> None:
        self.version: Version = options.version
        self.community: bytes = options.community.reveal().encode()
        self.retries: int = options.retries
        self.per_try = max(deadline / (options.retries + 1) * 0.9, 0.05)
        self.address = address
        self._socket: ConnectedUDPSocket | None = None
        self._next_id = secrets.randbelow(1 << 30)

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
        self._next_id = (self._next_id + 1) % (1 << 31)
        request_id = self._next_id
        message = encode_request(
            self.version, self.community, request_id, "get" if op == "get" else "set", pairs
        )
        for _ in range(self.retries + 1):
            await sock.send(message)
            with anyio.move_on_after(self.per_try):
                while True:
                    data = await sock.receive()
                    try:
                        reply = decode_response(data, self.version, self.community)
                    except BerError:
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

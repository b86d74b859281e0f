"""pysnmp 7 glue for :mod:`labpower.backends.net.snmp`'s SNMPv3 devices (v1 and v2c take
pysnmp's lighter message API: see :mod:`labpower.backends.net.snmp_community`): one engine and
target per device, a request that returns plain values, and pysnmp's errors sorted into the
backend contract. Everything here runs on the SNMP loop thread."""

from __future__ import annotations

from typing import Any

from labpower.backends.errors import DeviceUnavailableError, OperationError
from labpower.backends.net.address import Address
from labpower.backends.net.snmp_community import plain
from pysnmp import error as snmp_error
from pysnmp.hlapi.v3arch import asyncio as hlapi
from pysnmp.proto import errind, rfc1902

_AUTH = {
    "MD5": hlapi.usmHMACMD5AuthProtocol,
    "SHA": hlapi.usmHMACSHAAuthProtocol,
    "SHA224": hlapi.usmHMAC128SHA224AuthProtocol,
    "SHA256": hlapi.usmHMAC192SHA256AuthProtocol,
    "SHA384": hlapi.usmHMAC256SHA384AuthProtocol,
    "SHA512": hlapi.usmHMAC384SHA512AuthProtocol,
}
_PRIV = {
    "DES": hlapi.usmDESPrivProtocol,
    "3DES": hlapi.usm3DESEDEPrivProtocol,
    "AES": hlapi.usmAesCfb128Protocol,
    "AES192": hlapi.usmAesCfb192Protocol,
    "AES256": hlapi.usmAesCfb256Protocol,
}
#: errors that mean the agent did not accept our SNMPv3 credentials
_AUTH_ERRORS = (
    errind.WrongDigest,
    errind.UnknownUserName,
    errind.UnknownSecurityName,
    errind.UnsupportedSecurityLevel,
    errind.DecryptionError,
    errind.AuthenticationError,
    errind.AuthenticationFailure,
)


def _auth(options: Any) -> Any:
    return hlapi.UsmUserData(
        options.user,
        authKey=options.auth_key.reveal() if options.auth_key else None,
        privKey=options.priv_key.reveal() if options.priv_key else None,
        authProtocol=_AUTH[options.auth_protocol]
        if options.auth_protocol
        else hlapi.usmNoAuthProtocol,
        privProtocol=_PRIV[options.priv_protocol]
        if options.priv_protocol
        else hlapi.usmNoPrivProtocol,
    )


#: engines shared by devices with the same credentials (an engine costs a quarter second of
#: CPU and a few MB): credentials key -> [engine, users]. Touched on the loop thread only.
_ENGINES: dict[tuple[Any, ...], list[Any]] = {}


def _engine_key(options: Any) -> tuple[Any, ...]:
    # SNMPv3 users live in the engine; one engine per set of credentials keeps them apart
    return (
        options.user,
        options.auth_protocol,
        options.auth_key.reveal() if options.auth_key else None,
        options.priv_protocol,
        options.priv_key.reveal() if options.priv_key else None,
    )


class Session:
    """Credentials and target for one PDU, on an engine shared with others."""

    def __init__(
        self, key: tuple[Any, ...], auth: Any, target: Any, context: Any, address: Address
    ) -> None:
        self.key = key
        self.engine = _ENGINES[key][0]
        self.auth = auth
        self.target = target
        self.context = context
        self.address = address

    @classmethod
    async def create(cls, options: Any, address: Address, deadline: float) -> Session:
        """:raises OSError: the host cannot be resolved or no socket is allowed."""
        # pysnmp retries within the device's deadline; the deadline itself is the caller's
        per_try = max(deadline / (options.retries + 1) * 0.9, 0.05)
        try:
            target = await hlapi.UdpTransportTarget.create(
                (address.host, address.port), timeout=per_try, retries=options.retries
            )
        except snmp_error.PySnmpError as exc:
            raise _os_error(exc) from exc
        key = _engine_key(options)
        if key not in _ENGINES:
            _ENGINES[key] = [hlapi.SnmpEngine(), 0]
        _ENGINES[key][1] += 1
        context = hlapi.ContextData(contextName=options.context)
        return cls(key, _auth(options), target, context, address)

    async def request(self, op: str, pairs: list[tuple[str, int | None]]) -> list[Any]:
        """GET or SET; the values in order, None where the agent has no such object.

        :raises TimeoutError: no answer (down, unreachable, or a wrong community).
        :raises DeviceUnavailableError: SNMPv3 credentials refused.
        :raises OperationError: the agent refused the request (errorStatus).
        :raises OSError: no socket allowed.
        """
        if op == "get":
            objects = [hlapi.ObjectType(hlapi.ObjectIdentity(oid)) for oid, _ in pairs]
            command = hlapi.get_cmd
        else:
            objects = [
                hlapi.ObjectType(hlapi.ObjectIdentity(oid), rfc1902.Integer32(value))
                for oid, value in pairs
            ]
            command = hlapi.set_cmd
        try:
            indication, status, index, varbinds = await command(
                self.engine, self.auth, self.target, self.context, *objects
            )
        except snmp_error.PySnmpError as exc:
            raise _os_error(exc) from exc
        if indication:
            if isinstance(indication, errind.RequestTimedOut):
                raise TimeoutError(str(indication))
            if isinstance(indication, _AUTH_ERRORS):
                raise DeviceUnavailableError(
                    f"SNMPv3 authentication failed at {self.address}: {indication} (check "
                    "user, auth_* and priv_* in the config)"
                )
            raise DeviceUnavailableError(f"SNMP {op} to {self.address} failed: {indication}")
        if status:
            where = pairs[int(index) - 1][0] if 0 < int(index) <= len(pairs) else pairs[0][0]
            if status.prettyPrint() == "noSuchName" and op == "get" and len(pairs) == 1:
                return [None]  # SNMPv1's way of saying "no such object"
            raise OperationError(
                f"{self.address} refused the {op.upper()} of {where}: {status.prettyPrint()}"
            )
        return [plain(value) for _, value in varbinds]

    async def close(self) -> None:
        shared = _ENGINES.get(self.key)
        if shared is None:
            return
        shared[1] -= 1
        if shared[1] <= 0:
            del _ENGINES[self.key]
            self.engine.close_dispatcher()


def _os_error(exc: BaseException) -> BaseException:
    """The OSError under a pysnmp error, if any (for the admin's reason), else a
    DeviceUnavailableError with pysnmp's words."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, OSError):
            return current
        current = current.__cause__ or current.__context__
    return DeviceUnavailableError(str(exc))

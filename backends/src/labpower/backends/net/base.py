"""What every network backend shares: the address, the health check, and saying why a device
cannot be reached in words an admin can act on."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any, ClassVar

from labpower.backends.base import Backend
from labpower.backends.errors import DeviceUnavailableError
from labpower.backends.net.address import Address, parse_host

#: the drop-in that opens the network to labpowerd.service (packaging/systemd/)
NETWORK_DROP_IN = "/etc/systemd/system/labpowerd.service.d/network.conf"
DEFAULT_HEALTH_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class NetOptions:
    """``host = "NAME[:PORT]"`` and how often the device is checked while the daemon runs."""

    host: str
    health_interval: float = DEFAULT_HEALTH_INTERVAL

    def __post_init__(self) -> None:
        parse_host(self.host, 1)  # the form only; each backend knows its default port
        if not 0.1 <= self.health_interval <= 3600:
            raise ValueError(
                f"health_interval: must be 0.1..3600 seconds, not {self.health_interval}"
            )


class NetworkBackend(Backend):
    """A device reached over the network at ``host``."""

    #: the protocol's port, used when ``host`` names none
    default_port: ClassVar[int] = 0

    def __init__(self, name: str, channels: int, options: Any, timeout: float = 5.0) -> None:
        super().__init__(name, channels, options, timeout)
        self.address: Address = parse_host(options.host, self.default_port)
        self.health_interval = options.health_interval

    def unreachable(self, exc: BaseException) -> DeviceUnavailableError:
        """The error for a failure to reach the device, naming its cause (see
        :func:`describe_os_error`)."""
        return DeviceUnavailableError(describe_failure(exc, self.address))


def _os_error(exc: BaseException, depth: int = 0) -> OSError | None:
    """The OSError with an errno that a library wrapped, if any: libraries and anyio chain them,
    and anyio's happy-eyeballs connect groups one per address tried."""
    if depth > 10:
        return None
    if isinstance(exc, OSError) and (exc.errno or isinstance(exc, socket.gaierror)):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _os_error(inner, depth + 1)
            if found is not None:
                return found
    cause = exc.__cause__ or exc.__context__
    return None if cause is None else _os_error(cause, depth + 1)


def network_forbidden(err: OSError) -> bool:
    """Whether creating a socket failed because the service may not use IP at all
    (systemd's RestrictAddressFamilies=AF_UNIX makes socket() fail with EAFNOSUPPORT)."""
    return err.errno == errno.EAFNOSUPPORT


def describe_failure(exc: BaseException, address: Address) -> str:
    """Why ``address`` could not be reached, in words an admin can act on."""
    err = _os_error(exc)
    if err is None:
        return f"cannot reach {address}: {exc or type(exc).__name__}"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve {address.host!r}: {err.strerror or err}"
    if network_forbidden(err):
        return (
            f"the network is forbidden to labpowerd ({err.strerror}): its unit allows only "
            f"AF_UNIX sockets. To use network devices, install the shipped drop-in as "
            f"{NETWORK_DROP_IN}, fill in IPAddressAllow= with the devices' addresses, then "
            "systemctl daemon-reload and restart labpowerd"
        )
    if err.errno in (errno.EPERM, errno.EACCES):
        return (
            f"sending to {address} is not permitted ({err.strerror}): add its address to "
            f"IPAddressAllow= in {NETWORK_DROP_IN}, or check the host's firewall"
        )
    if err.errno == errno.ECONNREFUSED:
        return f"connection refused by {address}"
    if err.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return (
            f"{address} is unreachable ({err.strerror}); under PrivateNetwork=yes, or an "
            "IPAddressAllow= that leaves it out, labpowerd reaches only loopback"
        )
    if err.errno == errno.ETIMEDOUT:
        return f"connecting to {address} timed out"
    return f"cannot reach {address}: {err.strerror or err}"

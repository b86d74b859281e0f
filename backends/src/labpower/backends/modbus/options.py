"""Options of the ``modbus`` backend and the board profiles.

A channel is one coil (function codes 01 read coils, 05 write single coil with 0xFF00 = on,
0x0000 = off) or, for boards that work that way, one holding register (03 read holding
registers, 06 write single register with the profile's on/off values). Channel ``n`` sits at
address ``offset + n - 1`` unless ``addresses`` lists one address per channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from labpower.backends.errors import OptionError
from labpower.backends.net.address import Address
from labpower.backends.net.address import parse_host as parse_address
from labpower.backends.serial.port import _check_port

#: Modbus TCP's registered port.
DEFAULT_TCP_PORT = 502


@dataclass(frozen=True, slots=True)
class Profile:
    """How a kind of board maps channels to the Modbus data model."""

    kind: Literal["coil", "register"]
    offset: int
    max_channels: int


#: ``waveshare``: Waveshare's Modbus RTU/POE ETH relay boards (8, 16 and 32 channels), relay n
#: at coil n-1. ``generic``: any coil board, relay n at coil ``offset + n - 1``.
PROFILES: dict[str, Profile] = {
    "generic": Profile("coil", 0, 2000),
    "waveshare": Profile("coil", 0, 32),
}


def parse_host(value: str) -> Address:
    """``NAME[:PORT]`` (any form :func:`labpower.backends.net.address.parse_host` takes);
    port 502 when not given.

    :raises OptionError: naming the ``host`` key and the accepted form.
    """
    try:
        return parse_address(value, DEFAULT_TCP_PORT)
    except ValueError as exc:
        raise OptionError("host", str(exc).removeprefix("host: ")) from None


@dataclass(frozen=True, slots=True)
class ModbusOptions:
    """``[devices.NAME]`` keys of the ``modbus`` backend (exactly one of host and port)."""

    #: Modbus TCP: ``NAME[:PORT]`` (default port 502).
    host: str | None = None
    #: Modbus RTU: the serial port (8N1).
    port: str | None = None
    baudrate: int = 9600
    #: The Modbus device id (slave address).
    unit: int = 1
    profile: Literal["generic", "waveshare", "custom"] = "generic"
    #: Address of channel 1 (generic and custom profiles).
    offset: int | None = None
    #: One address per channel, instead of ``offset``.
    addresses: list[int] | None = None
    #: custom profile: ``coil`` or ``register`` (holding register).
    kind: Literal["coil", "register"] | None = None
    #: register boards: the values written for on and off, and read back as on and off.
    on_value: int | None = None
    off_value: int | None = None
    #: Seconds to wait for an answer; default: the device's ``timeout``.
    read_timeout: float | None = None

    def __post_init__(self) -> None:
        if (self.host is None) == (self.port is None):
            raise OptionError("host", "give exactly one of host (Modbus TCP) and port (RTU)")
        if self.host is not None:
            parse_host(self.host)
        if self.port is not None:
            if not self.port:
                raise OptionError("port", "must not be empty")
            _check_port(self.port)
        if not 50 <= self.baudrate <= 4_000_000:
            raise OptionError("baudrate", f"must be between 50 and 4000000, not {self.baudrate}")
        # RTU addresses 1..247 (0 is broadcast, which nobody answers); TCP gateways use 0..255
        low, high = (0, 255) if self.host is not None else (1, 247)
        if not low <= self.unit <= high:
            raise OptionError("unit", f"must be {low}..{high}, not {self.unit}")
        custom = self.profile == "custom"
        for key in ("kind", "on_value", "off_value"):
            if getattr(self, key) is not None and not custom:
                raise OptionError(key, f"only for profile = 'custom', not {self.profile!r}")
        if custom and self.kind is None:
            raise OptionError("kind", "profile = 'custom' needs kind = 'coil' or 'register'")
        if self.kind == "register" and (self.on_value is None or self.off_value is None):
            raise OptionError("on_value", "kind = 'register' needs on_value and off_value")
        if self.kind == "coil" and (self.on_value is not None or self.off_value is not None):
            raise OptionError("on_value", "coils are written 0xFF00 / 0x0000: no on/off values")
        for key in ("on_value", "off_value"):
            value = getattr(self, key)
            if value is not None and not 0 <= value <= 0xFFFF:
                raise OptionError(key, f"must be 0..65535, not {value}")
        if self.on_value is not None and self.on_value == self.off_value:
            raise OptionError("off_value", "must differ from on_value")
        if self.offset is not None and self.addresses is not None:
            raise OptionError("addresses", "give offset or addresses, not both")
        for i, address in enumerate([self.offset or 0, *(self.addresses or [])]):
            if not 0 <= address <= 0xFFFF:
                key = "offset" if i == 0 else f"addresses[{i - 1}]"
                raise OptionError(key, f"must be 0..65535, not {address}")
        if self.addresses is not None and len(set(self.addresses)) != len(self.addresses):
            raise OptionError("addresses", "an address appears twice")
        if self.read_timeout is not None and not 0 < self.read_timeout <= 600:
            raise OptionError("read_timeout", "must be more than 0 and at most 600 s")

    @property
    def board_kind(self) -> Literal["coil", "register"]:
        return self.kind or PROFILES[self.profile].kind

    def address(self, channel: int) -> int:
        """The coil or register of ``channel`` (1-based; checked by the caller)."""
        if self.addresses is not None:
            return self.addresses[channel - 1]
        base = PROFILES[self.profile].offset if self.profile != "custom" else 0
        return (base if self.offset is None else self.offset) + channel - 1

    def check_channels(self, channels: int) -> None:
        """:raises OptionError: the channel count does not fit the profile or addresses."""
        if self.addresses is not None and len(self.addresses) != channels:
            raise OptionError(
                "addresses", f"lists {len(self.addresses)} addresses for {channels} channels"
            )
        limit = PROFILES[self.profile].max_channels if self.profile != "custom" else 2000
        if channels > limit:
            raise OptionError("profile", f"{self.profile} boards have at most {limit} channels")
        if self.address(channels) > 0xFFFF:
            raise OptionError("offset", f"channel {channels} would be past address 65535")

"""The ``modbus`` backend: relay boards over Modbus RTU (a serial port) or Modbus TCP.

RTU goes through :class:`~labpower.backends.serial.port.SerialPort`, like every serial board
(exclusive open without glitching the modem lines, non-blocking exchanges on the event loop, a
bounded buffer), with the silent interval RTU requires between frames (3.5 characters, 1.75 ms
above 19200 baud) as the port's gap. TCP is one connection kept open, over anyio. Either way an
exchange is async and runs under the device's deadline; pymodbus only builds and parses frames.

Opening connects (TCP) or opens the port (RTU) and sends nothing, so it switches nothing; a
failed exchange makes :class:`~labpower.backends.device.Device` close and re-open the
connection, which also drops a late answer that would otherwise be taken for the next one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from labpower.backends.base import Backend
from labpower.backends.errors import (
    DeviceUnavailableError,
    HardwareTimeout,
    OperationError,
)
from labpower.backends.modbus.options import ModbusOptions, parse_host
from labpower.backends.modbus.protocol import (
    MBAP_SIZE,
    RTU_EXCEPTION_SIZE,
    Codec,
    Request,
    rtu_rest,
    tcp_rest,
)
from labpower.backends.serial.port import SerialPort
from labpower.backends.usbmatch import CH340, FT232R, UsbMatch

#: Most coils (function 01) and registers (function 03) one read may ask for.
MAX_READ = {"coil": 2000, "register": 125}


def silent_interval(baud: int) -> float:
    """Seconds of silence that end an RTU frame: 3.5 characters (11 bits each, as the spec
    counts them), fixed at 1.75 ms above 19200 baud."""
    return 1.75e-3 if baud > 19200 else 3.5 * 11 / baud


class ModbusBackend(Backend):
    readback = True
    #: Modbus RTU: a USB RS-485 adapter (Modbus TCP boards are not on the USB bus)
    usb = UsbMatch("tty", "Modbus RTU board on a USB RS-485 adapter", chips=(CH340, FT232R))
    Options: ClassVar[type[ModbusOptions]] = ModbusOptions
    max_channels = 2000

    def __init__(
        self, name: str, channels: int, options: ModbusOptions, timeout: float = 5.0
    ) -> None:
        self.check_options(channels, options)
        super().__init__(name, channels, options, timeout)
        self.options: ModbusOptions = options
        self.kind = options.board_kind
        self._codec: Codec | None = None
        self._port: SerialPort | None = None
        self._stream: SocketStream | None = None
        self._reader: BufferedByteReceiveStream | None = None

    @classmethod
    def check_options(cls, channels: int, options: ModbusOptions) -> None:
        options.check_channels(channels)

    @property
    def read_timeout(self) -> float:
        value = self.options.read_timeout
        return self.timeout if value is None else value

    @property
    def where(self) -> str:
        return self.options.host or self.options.port or "?"

    async def open(self) -> None:
        """Connect (TCP) or open the port (RTU); nothing is sent.

        :raises DeviceUnavailableError: no pymodbus, refused, unreachable, or no port.
        """
        o = self.options
        codec = Codec("tcp" if o.host is not None else "rtu", o.unit)
        if o.host is not None:
            host, tcp_port = parse_host(o.host)
            try:
                stream = await anyio.connect_tcp(host, tcp_port)
            except OSError as exc:
                raise DeviceUnavailableError(f"{o.host}: {exc.strerror or exc}") from exc
            self._stream, self._reader = stream, BufferedByteReceiveStream(stream)
        else:
            assert o.port is not None  # ModbusOptions requires host or port
            port = SerialPort(o.port, baud=o.baudrate, gap=silent_interval(o.baudrate))
            try:
                await self.in_thread(port.open)
            except BaseException:
                port.request_close()
                raise
            self._port = port
        self._codec = codec

    async def close(self) -> None:
        stream, self._stream, self._reader = self._stream, None, None
        port, self._port = self._port, None
        self._codec = None
        if stream is not None:
            await stream.aclose()
        if port is not None:
            if port.fileno >= 0:
                anyio.notify_closing(port.fileno)
            await anyio.to_thread.run_sync(port.request_close, abandon_on_cancel=True)

    def _check(self, channel: int) -> int:
        if not 1 <= channel <= self.channels:
            raise OperationError(f"channel {channel} out of range 1..{self.channels}")
        return self.options.address(channel)

    async def _exchange(self, request: Request) -> Any:
        """Send one request and return the decoded answer.

        :raises DeviceUnavailableError, HardwareTimeout, OperationError:
        """
        codec = self._codec
        if codec is None:
            raise DeviceUnavailableError(f"{self.where}: not connected")
        if self._port is not None:
            answer = await self._port.run(lambda port: _rtu(port, request), self.read_timeout)
        else:
            answer = await self._tcp(request)
        return codec.decode(request, answer)

    async def _tcp(self, request: Request) -> bytes:
        stream, reader = self._stream, self._reader
        if stream is None or reader is None:
            raise DeviceUnavailableError(f"{self.where}: not connected")
        try:
            with anyio.fail_after(self.read_timeout):
                await stream.send(request.frame)
                header = await reader.receive_exactly(MBAP_SIZE)
                return header + await reader.receive_exactly(tcp_rest(header))
        except TimeoutError as exc:
            raise HardwareTimeout(self.read_timeout, "waiting for the Modbus answer") from exc
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.IncompleteRead) as exc:
            raise DeviceUnavailableError(f"{self.where}: connection closed") from exc
        except OSError as exc:
            raise DeviceUnavailableError(f"{self.where}: {exc.strerror or exc}") from exc

    async def set(self, channel: int, on: bool) -> None:
        address = self._check(channel)
        codec = self._codec
        if codec is None:
            raise DeviceUnavailableError(f"{self.where}: not connected")
        if self.kind == "coil":
            request = codec.write_coil(address, on)
        else:
            value = self.options.on_value if on else self.options.off_value
            assert value is not None  # ModbusOptions requires both for registers
            request = codec.write_register(address, value)
        await self._exchange(request)

    async def _read(self, first: int, count: int) -> list[bool]:
        """States of ``count`` coils or registers from ``first``.

        :raises OperationError: a register holds neither the on nor the off value.
        """
        codec = self._codec
        if codec is None:
            raise DeviceUnavailableError(f"{self.where}: not connected")
        if self.kind == "coil":
            answer = await self._exchange(codec.read_coils(first, count))
            bits = list(answer.bits)
            if len(bits) < count:
                raise OperationError(f"Modbus board sent {len(bits)} coils, not {count}")
            return [bool(b) for b in bits[:count]]
        answer = await self._exchange(codec.read_registers(first, count))
        values = list(answer.registers)
        if len(values) != count:
            raise OperationError(f"Modbus board sent {len(values)} registers, not {count}")
        states = []
        for offset, value in enumerate(values):
            if value not in (self.options.on_value, self.options.off_value):
                raise OperationError(
                    f"register {first + offset} holds {value:#06x}, neither on_value nor off_value"
                )
            states.append(value == self.options.on_value)
        return states

    async def get(self, channel: int) -> bool:
        (state,) = await self._read(self._check(channel), 1)
        return state

    async def get_all(self) -> dict[int, bool | None]:
        """One read for the whole span of addresses where it fits one request, else one per
        channel."""
        addresses = {ch: self.options.address(ch) for ch in range(1, self.channels + 1)}
        first, last = min(addresses.values()), max(addresses.values())
        if last - first + 1 > MAX_READ[self.kind]:
            return {ch: await self.get(ch) for ch in addresses}
        states = await self._read(first, last - first + 1)
        return {ch: states[address - first] for ch, address in addresses.items()}


async def _rtu(port: SerialPort, request: Request) -> bytes:
    """One RTU exchange: the answer is a normal one of known size or a 5-byte exception."""
    await port.command(request.frame)
    head = await port.read_exact(RTU_EXCEPTION_SIZE, likely=request.answer_size)
    rest = rtu_rest(head, request)
    return head + await port.read_exact(rest) if rest else head

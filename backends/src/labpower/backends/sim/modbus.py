"""A Modbus RTU coil board on a pty (relay n = coil n-1), with the wire time of its baud rate:
for timing the ``modbus`` backend, where pymodbus's own server (asyncio, in the tests) would add
its own reaction time. Frames are parsed and built by pymodbus (``labpower-backends[modbus]``);
it answers read coils (01) and write single coil (05) for its unit, exception 01 to other
functions and 02 to coils it lacks, and nothing to other units or frames with a bad CRC."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from labpower.backends.sim.base import PtySimulator


class ModbusRtuSimulator(PtySimulator):
    kind = "modbus"
    max_channels: ClassVar[int] = 64

    def __init__(
        self,
        link: str | os.PathLike[str] | None = None,
        *,
        channels: int = 8,
        wire_baud: float | None = None,
        unit: int = 1,
    ) -> None:
        from pymodbus.framer import FramerRTU
        from pymodbus.pdu import DecodePDU, ExceptionResponse
        from pymodbus.pdu.bit_message import ReadCoilsResponse, WriteSingleCoilResponse

        super().__init__(link, channels=channels, wire_baud=wire_baud)
        self.unit = unit
        self._framer = FramerRTU(DecodePDU(True))
        self._messages: Any = (ReadCoilsResponse, WriteSingleCoilResponse, ExceptionResponse)
        self._buf = bytearray()

    def _reset_parser(self) -> None:
        self._buf.clear()

    def handle(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        used, request = self._framer.handleFrame(bytes(self._buf), 0, 0)
        if not used:
            return []  # the frame is not complete yet
        del self._buf[:used]
        if request is None or request.dev_id != self.unit:
            return [(used, b"")]
        return [(used, bytes(self._framer.buildFrame(self._reply(request))))]

    def _reply(self, request: Any) -> Any:
        read, write, exception = self._messages
        first, count = request.address, max(request.count, 1)
        if request.function_code not in (1, 5):
            return exception(request.function_code, 1, device_id=self.unit)
        if first + count > self.channels:
            return exception(request.function_code, 2, device_id=self.unit)
        if request.function_code == 5:
            self.switch(first + 1, bool(request.bits[0]))
            return write(address=first, bits=[self.relays[first + 1]], dev_id=self.unit)
        bits = [self.relays[ch] for ch in range(first + 1, first + count + 1)]
        return read(bits=bits, dev_id=self.unit)

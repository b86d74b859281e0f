"""pymodbus's own Modbus server with an in-memory datastore, in a thread of its own (it is
asyncio-only; the tests run on asyncio and trio), over TCP on loopback or RTU on a pty pair
made by socat. Every request it receives is recorded, and faults are injected on the wire:
no answer, a corrupted CRC, an exception response."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerRTU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

Fault = Literal["silent", "crc", "exception", "unit"] | None


@dataclass
class Request:
    function: int
    address: int
    count: int
    values: list[int] | list[bool] | None


@dataclass
class ModbusServer:
    """One running server: ``where`` is the backend's ``host`` (TCP) or ``port`` (RTU)."""

    where: str
    unit: int
    baudrate: int = 9600
    requests: list[Request] = field(default_factory=list)
    fault: Fault = None
    loop: asyncio.AbstractEventLoop | None = None
    server: Any = None

    def options(self) -> dict[str, Any]:
        """The backend's options that reach this server."""
        if self.where.startswith("/"):
            return {"port": self.where, "baudrate": self.baudrate, "unit": self.unit}
        return {"host": self.where, "unit": self.unit}

    @property
    def writes(self) -> list[Request]:
        """Requests that changed the datastore (pymodbus also calls the action with no values
        when it reads the written value back for its answer)."""
        return [r for r in self.requests if r.function in (5, 6, 15, 16) and r.values]

    def coils(self, first: int, count: int) -> list[bool]:
        return [bool(v) for v in self._get(1, first, count)]

    def registers(self, first: int, count: int) -> list[int]:
        return [int(v) for v in self._get(3, first, count)]

    def set_coil(self, address: int, on: bool) -> None:
        """Preset a coil, as if the board had it so from before; not recorded."""
        self._call(self.server.async_setValues(self.unit, 5, address, [on]))
        self.requests.clear()

    def _get(self, function: int, first: int, count: int) -> list[Any]:
        return list(self._call(self.server.async_getValues(self.unit, function, first, count)))

    def _call(self, coro: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(5)

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests.append(Request(function_code, address, count, set_values))
        return ExcCodes.DEVICE_FAILURE if self.fault == "exception" else None

    def trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending or self.fault is None:
            return data
        if self.fault == "silent":
            return b""
        if self.fault == "crc":
            return data[:-1] + bytes([data[-1] ^ 0x5A])
        if self.fault == "unit":  # a well-formed answer from another unit
            if self.where.startswith("/"):
                frame = bytes([data[0] ^ 0x03]) + data[1:-2]
                return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")
            return data[:6] + bytes([data[6] ^ 0x03]) + data[7:]
        return data


def _device(unit: int, coils: int, registers: int, action: Any) -> SimDevice:
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, count=coils, values=False, datatype=DataType.BITS)],
            [SimData(0, count=1, values=False, datatype=DataType.BITS)],
            [SimData(0, count=registers, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
        ),
        action=action,
    )


@contextmanager
def running(
    transport: Literal["tcp", "rtu"],
    tmp: Path,
    *,
    unit: int = 1,
    coils: int = 32,
    registers: int = 16,
    baudrate: int = 9600,
    tcp_port: int = 0,
) -> Iterator[ModbusServer]:
    """A server for ``unit`` with ``coils`` coils and ``registers`` holding registers, all 0;
    over TCP on ``tcp_port`` (0: any free port)."""
    socat = None
    if transport == "rtu":
        ours, theirs = tmp / "ttyModbus", tmp / "ttyServer"
        socat = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={ours}", f"pty,raw,echo=0,link={theirs}"],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (ours.exists() and theirs.exists()):
            assert time.monotonic() < deadline, "socat made no pty pair"
            time.sleep(0.005)
        state = ModbusServer(str(ours), unit, baudrate)
    else:
        state = ModbusServer("", unit)
    ready = threading.Event()
    failed: list[BaseException] = []

    async def main() -> None:
        state.loop = asyncio.get_running_loop()
        device = _device(unit, coils, registers, state.action)
        server: Any
        if transport == "tcp":
            server = ModbusTcpServer(
                device, address=("127.0.0.1", tcp_port), trace_packet=state.trace_packet
            )
        else:
            server = ModbusSerialServer(
                device, port=str(theirs), baudrate=baudrate, trace_packet=state.trace_packet
            )
        state.server = server
        await server.serve_forever(background=True)
        if transport == "tcp":
            host, port = server.transport.sockets[0].getsockname()[:2]
            state.where = f"{host}:{port}"
        ready.set()
        await server.serving

    def thread() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test below
            failed.append(exc)
            ready.set()

    worker = threading.Thread(target=thread, daemon=True)
    worker.start()
    try:
        assert ready.wait(10), "the Modbus server did not start"
        if failed:
            raise failed[0]
        yield state
    finally:
        if state.loop is not None and state.server is not None:
            asyncio.run_coroutine_threadsafe(state.server.shutdown(), state.loop).result(5)
        worker.join(10)
        if socat is not None:
            socat.terminate()
            socat.wait(10)

"""Modbus requests and answers for relay boards, framed by pymodbus (sans-I/O).

pymodbus builds the request PDUs and the RTU (CRC-16) and TCP (MBAP header) frames and decodes
the answers; this module checks that an answer is the one asked for: from the right unit, for
the right transaction, of the right function, and, for a write, the echo of the request that
the protocol prescribes. pymodbus is imported only when a codec is made (when a ``modbus``
device opens), so the rest of labpower runs without it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from labpower.backends.errors import DeviceUnavailableError, OperationError

#: Exception codes of the Modbus application protocol, for messages.
EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
#: RTU: device id, function code | 0x80, exception code, CRC (2)
RTU_EXCEPTION_SIZE = 5
#: TCP: transaction id, protocol id, length (2 each), unit id
MBAP_SIZE = 7


def _pymodbus() -> tuple[Any, Any, Any]:
    """The pymodbus modules this backend uses.

    :raises DeviceUnavailableError: pymodbus is not installed.
    """
    try:
        framer = importlib.import_module("pymodbus.framer")
        pdu = importlib.import_module("pymodbus.pdu")
        messages = (
            importlib.import_module("pymodbus.pdu.bit_message"),
            importlib.import_module("pymodbus.pdu.register_message"),
        )
    except ImportError as exc:
        raise DeviceUnavailableError(
            f"pymodbus is not installed ({exc}): install labpower-backends[modbus]"
        ) from exc
    return framer, pdu, messages


@dataclass(frozen=True, slots=True)
class Request:
    """A request frame and what its answer must be."""

    frame: bytes
    function: int
    #: Bytes of the whole normal answer frame (RTU) or of the PDU after the MBAP header (TCP).
    answer_size: int
    #: The answer must repeat the request (write single coil / register).
    echo: bool
    transaction: int = 0


class Codec:
    """Frames for one unit over RTU or TCP. :raises DeviceUnavailableError: no pymodbus."""

    def __init__(self, framing: Literal["rtu", "tcp"], unit: int) -> None:
        framer, pdu, (bits, registers) = _pymodbus()
        decoder = pdu.DecodePDU(False)
        self.framing = framing
        self.unit = unit
        self._framer = (
            framer.FramerRTU(decoder) if framing == "rtu" else framer.FramerSocket(decoder)
        )
        self._bits = bits
        self._registers = registers
        self._tid = 0

    def _request(self, message: Any, answer_pdu: int, echo: bool) -> Request:
        tid = 0
        if self.framing == "tcp":
            self._tid = tid = self._tid % 0xFFFF + 1
            message.transaction_id = tid
        frame = bytes(self._framer.buildFrame(message))
        # RTU: device id + PDU + CRC; TCP: the MBAP's unit id + PDU (the MBAP length field)
        size = answer_pdu + 3 if self.framing == "rtu" else answer_pdu
        return Request(frame, message.function_code, size, echo, tid)

    def write_coil(self, address: int, on: bool) -> Request:
        message = self._bits.WriteSingleCoilRequest(address=address, bits=[on], dev_id=self.unit)
        return self._request(message, 5, echo=True)

    def write_register(self, address: int, value: int) -> Request:
        message = self._registers.WriteSingleRegisterRequest(
            address=address, registers=[value], dev_id=self.unit
        )
        return self._request(message, 5, echo=True)

    def read_coils(self, address: int, count: int) -> Request:
        message = self._bits.ReadCoilsRequest(address=address, count=count, dev_id=self.unit)
        return self._request(message, 2 + (count + 7) // 8, echo=False)

    def read_registers(self, address: int, count: int) -> Request:
        message = self._registers.ReadHoldingRegistersRequest(
            address=address, count=count, dev_id=self.unit
        )
        return self._request(message, 2 + 2 * count, echo=False)

    def decode(self, request: Request, answer: bytes) -> Any:
        """The answer's PDU (with ``bits`` / ``registers``).

        :raises OperationError: bad CRC or header, another unit or transaction, another
            function, an exception response (naming its code), or a write not echoed.
        """
        used, message = self._framer.handleFrame(answer, 0, 0)
        if message is None or used != len(answer):
            what = "CRC mismatch or garbled frame" if self.framing == "rtu" else "garbled frame"
            raise OperationError(f"Modbus answer {answer[:32].hex(' ')}: {what}")
        if message.dev_id != self.unit:
            raise OperationError(f"Modbus answer from unit {message.dev_id}, not {self.unit}")
        if self.framing == "tcp" and message.transaction_id != request.transaction:
            raise OperationError(
                f"Modbus answer to transaction {message.transaction_id}, not {request.transaction}"
            )
        if message.function_code == request.function | 0x80:
            code = message.exception_code
            name = EXCEPTIONS.get(code, "unknown")
            raise OperationError(
                f"Modbus unit {self.unit}: exception {code} ({name}) to function "
                f"{request.function:02d}"
            )
        if message.function_code != request.function:
            raise OperationError(
                f"Modbus answer of function {message.function_code}, not {request.function}"
            )
        if request.echo and _pdu(self.framing, answer) != _pdu(self.framing, request.frame):
            raise OperationError(
                f"Modbus write answered {answer.hex(' ')}, not its echo {request.frame.hex(' ')}"
            )
        return message


def _pdu(framing: str, frame: bytes) -> bytes:
    return frame[1:-2] if framing == "rtu" else frame[MBAP_SIZE:]


def rtu_rest(head: bytes, request: Request) -> int:
    """How many bytes of an RTU answer follow its first :data:`RTU_EXCEPTION_SIZE` bytes."""
    if head[1] & 0x80:
        return 0
    return max(0, request.answer_size - RTU_EXCEPTION_SIZE)


def tcp_rest(header: bytes) -> int:
    """How many bytes follow an MBAP header (its length counts the unit id in the header).

    :raises OperationError: not Modbus (protocol id), or a length no PDU has.
    """
    protocol = int.from_bytes(header[2:4], "big")
    length = int.from_bytes(header[4:6], "big")
    if protocol != 0 or not 2 <= length <= 254:
        raise OperationError(f"not a Modbus TCP answer: header {header.hex(' ')}")
    return length - 1

"""The uhid USBRelay simulator, against a stand-in for /dev/uhid.

/dev/uhid is message based (one event per read and write); a SOCK_SEQPACKET socket pair is
too, so the test plays the kernel on one end and the simulator runs unchanged on the other.
The same simulator against the real kernel, through hidraw and hidapi: tests/vm.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from labpower.backends.hid.usbrelay import parse_report
from labpower.backends.sim import Switch
from labpower.backends.sim.uhid import (
    EVENT_SIZE,
    REPORT_DESCRIPTOR,
    UHID_CREATE2,
    UHID_DESTROY,
    UHID_GET_REPORT,
    UHID_GET_REPORT_REPLY,
    UHID_SET_REPORT,
    UHID_SET_REPORT_REPLY,
    Report,
    UhidRelayBoard,
)

FEATURE = 0


class Kernel:
    """The kernel's end of /dev/uhid."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.next_id = 1

    def read(self) -> bytes:
        return self.sock.recv(EVENT_SIZE + 16)

    def get_report(self, rnum: int = 0, rtype: int = FEATURE) -> tuple[int, bytes]:
        request = self.next_id
        self.next_id += 1
        self.sock.send(
            struct.pack("<IIBB", UHID_GET_REPORT, request, rnum, rtype).ljust(EVENT_SIZE, b"\0")
        )
        reply = self.read()
        kind, rid, err, size = struct.unpack_from("<IIHH", reply)
        assert (kind, rid) == (UHID_GET_REPORT_REPLY, request)
        return err, reply[12 : 12 + size]

    def set_report(self, data: bytes, rnum: int = 0, rtype: int = FEATURE) -> int:
        request = self.next_id
        self.next_id += 1
        event = struct.pack("<IIBBH", UHID_SET_REPORT, request, rnum, rtype, len(data)) + data
        self.sock.send(event.ljust(EVENT_SIZE, b"\0"))
        kind, rid, err = struct.unpack_from("<IIH", self.read())
        assert (kind, rid) == (UHID_SET_REPORT_REPLY, request)
        return int(err)


@pytest.fixture
def kernel_and_board() -> Iterator[tuple[Kernel, UhidRelayBoard]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    board = UhidRelayBoard(2, "ABCDE", fd=theirs.detach())
    board.start()
    try:
        yield Kernel(ours), board
    finally:
        board.stop()
        ours.close()


def test_creates_a_usb_hid_device_like_the_board(
    kernel_and_board: tuple[Kernel, UhidRelayBoard],
) -> None:
    kernel, board = kernel_and_board
    event = kernel.read()
    assert len(event) == EVENT_SIZE
    kind, name, phys, uniq, rd_size, bus, vendor, product = struct.unpack_from(
        "<I128s64s64sHHII", event
    )
    assert kind == UHID_CREATE2
    assert name.rstrip(b"\0") == b"USBRelay2"
    assert uniq.rstrip(b"\0") == b"ABCDE"
    assert phys.rstrip(b"\0").decode() == board.phys
    assert (bus, vendor, product) == (0x03, 0x16C0, 0x05DF)
    descriptor = event[struct.calcsize("<I128s64s64sHHIIII") :][:rd_size]
    assert descriptor == REPORT_DESCRIPTOR
    # one feature report of 8 bytes: report size 8 (75 08), report count 8 (95 08), feature
    assert bytes.fromhex("75 08 95 08") in descriptor
    assert b"\xb2" in descriptor


def test_feature_report_reads_id_and_mask(kernel_and_board: tuple[Kernel, UhidRelayBoard]) -> None:
    kernel, _ = kernel_and_board
    kernel.read()
    err, data = kernel.get_report()
    assert err == 0
    assert data == b"\x00ABCDE\x00\x00\x00"
    assert parse_report(data) == ("ABCDE", 0)


def test_switches_byte_for_byte(kernel_and_board: tuple[Kernel, UhidRelayBoard]) -> None:
    kernel, board = kernel_and_board
    kernel.read()
    on2 = bytes([0, 0xFF, 2, 0, 0, 0, 0, 0, 0])  # as hidraw passes it: report number first
    assert kernel.set_report(on2) == 0
    assert kernel.get_report()[1] == b"\x00ABCDE\x00\x00\x02"
    assert kernel.set_report(bytes([0, 0xFE, 0, 0, 0, 0, 0, 0, 0])) == 0
    assert kernel.get_report()[1][8] == 0b11
    assert kernel.set_report(bytes([0, 0xFD, 1, 0, 0, 0, 0, 0, 0])) == 0
    assert board.relays == {1: False, 2: True}
    assert kernel.set_report(bytes([0, 0xFC, 0, 0, 0, 0, 0, 0, 0])) == 0
    assert board.relays == {1: False, 2: False}
    # relay 9 does not exist on a 2-relay board: nothing happens
    assert kernel.set_report(bytes([0, 0xFF, 9, 0, 0, 0, 0, 0, 0])) == 0
    assert board.switches == [
        Switch(2, True),
        Switch(1, True),
        Switch(2, True),
        Switch(1, False),
        Switch(1, False),
        Switch(2, False),
    ]
    assert board.reports[0] == Report("feature", 0, on2)
    assert len(board.reports) == 5


def test_set_id_and_unknown_reports(kernel_and_board: tuple[Kernel, UhidRelayBoard]) -> None:
    kernel, board = kernel_and_board
    kernel.read()
    assert kernel.set_report(b"\x00\xfaRACK1\x00\x00") == 0
    assert parse_report(kernel.get_report()[1]) == ("RACK1", 0)
    # the board has no numbered reports and no input/output reports: refused, recorded
    assert kernel.get_report(rnum=1)[0] != 0
    assert kernel.set_report(b"\x01\xff\x01", rnum=1) != 0
    assert board.relays == {1: False, 2: False}
    assert board.reports[-1] == Report("feature", 1, b"\x01\xff\x01")


def test_stop_destroys_the_device() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, UhidRelayBoard(1, fd=theirs.detach()) as board:
        ours.recv(EVENT_SIZE)
        board.stop()
        assert struct.unpack_from("<I", ours.recv(EVENT_SIZE))[0] == UHID_DESTROY


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.\.8 relays"):
        UhidRelayBoard(9)
    with pytest.raises(ValueError, match="1 to 5"):
        UhidRelayBoard(2, "TOOLONG")

"""A virtual dcttech USBRelay board through /dev/uhid: a real /dev/hidrawN without hardware.

The kernel's uhid driver lets a program be a HID device: it writes UHID_CREATE2 (bus USB,
16c0:05df, name ``USBRelayN``, the board's report descriptor: one vendor feature report of 8
bytes, no report ID), and the kernel makes a hidraw node that udev, hidapi and labpower's
``usbrelay`` backend use like the real board's. The simulator answers UHID_GET_REPORT and
UHID_SET_REPORT byte for byte like the board:

- a feature report written to it is ``FF n`` relay n on, ``FD n`` off, ``FE`` all on, ``FC``
  all off, ``FA c1..c5`` set the 5-character ID (kept until the simulator ends);
- reading the feature report gives the ID in bytes 0-4 and the relay mask in byte 7 (bit 0 =
  relay 1), after the report number 00, as a USB board's report reaches hidraw.

Everything received is recorded (:attr:`UhidRelayBoard.reports`), every switching command too
(:attr:`UhidRelayBoard.switches`). :meth:`UhidRelayBoard.unplug` destroys the HID device (the
hidraw node goes away, as on a real unplug; the relays lose their state) and
:meth:`UhidRelayBoard.plug` creates it again under a new hidraw number.

Needs a Linux kernel with uhid (``modprobe uhid``) and write access to /dev/uhid (root)::

    labpower-sim usbrelay --uhid --id SIM01 --channels 2

The uniq string of the HID device is the board ID given at start, so udev's rules can name a
stable link (/dev/labpower/usbrelay-SIM01); a real dcttech board has none.
"""

from __future__ import annotations

import argparse
import os
import select
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from labpower.backends.models import Switch, UsbRelayModel
from labpower.backends.sim.base import StopSignals

# linux/uhid.h: event types
UHID_DESTROY = 1
UHID_START = 2
UHID_STOP = 3
UHID_OPEN = 4
UHID_CLOSE = 5
UHID_OUTPUT = 6
UHID_GET_REPORT = 9
UHID_GET_REPORT_REPLY = 10
UHID_CREATE2 = 11
UHID_SET_REPORT = 13
UHID_SET_REPORT_REPLY = 14
UHID_FEATURE_REPORT = 0
UHID_OUTPUT_REPORT = 1
UHID_DATA_MAX = 4096
HID_MAX_DESCRIPTOR_SIZE = 4096
BUS_USB = 0x03

# struct uhid_event is packed: u32 type, then the largest member, uhid_create2_req
_CREATE2 = struct.Struct(f"<I128s64s64sHHIIII{HID_MAX_DESCRIPTOR_SIZE}s")
EVENT_SIZE = _CREATE2.size
_TYPE = struct.Struct("<I")
_GET_REPORT = struct.Struct("<IIBB")  # type, id, rnum, rtype
_GET_REPORT_REPLY = struct.Struct(f"<IIHH{UHID_DATA_MAX}s")  # type, id, err, size, data
_SET_REPORT = struct.Struct("<IIBBH")  # type, id, rnum, rtype, size; data follows
_SET_REPORT_REPLY = struct.Struct("<IIH")  # type, id, err
_OUTPUT_SIZE = struct.Struct("<HB")  # after data[UHID_DATA_MAX]: size, rtype

VENDOR_ID = 0x16C0
PRODUCT_ID = 0x05DF
REPORT_SIZE = 8
#: the board's report descriptor: vendor page, one 8-byte feature report without report ID
REPORT_DESCRIPTOR = bytes.fromhex(
    "06 00 ff"  # usage page (vendor 0xff00)
    "09 01"  # usage 1
    "a1 01"  # collection (application)
    "15 00"  # logical minimum 0
    "26 ff 00"  # logical maximum 255
    "75 08"  # report size 8 bits
    "95 08"  # report count 8
    "09 00"  # usage 0
    "b2 02 01"  # feature (data, variable, absolute, buffered bytes)
    "c0"  # end collection
)
EIO = 5


class Report(NamedTuple):
    """One report the board received: ``kind`` "feature" or "output", report number, bytes
    as the kernel passed them (the report number first, as hidraw's caller wrote it)."""

    kind: str
    number: int
    data: bytes


def create2_event(
    name: str, phys: str, uniq: str, descriptor: bytes, vendor: int, product: int
) -> bytes:
    """A UHID_CREATE2 event for a USB HID device."""
    return _CREATE2.pack(
        UHID_CREATE2,
        name.encode(),
        phys.encode(),
        uniq.encode(),
        len(descriptor),
        BUS_USB,
        vendor,
        product,
        0x0100,
        0,
        descriptor,
    )


class UhidRelayBoard:
    """A dcttech USBRelayN board on /dev/uhid, answered by a background thread.

    ``uhid`` is the uhid device to open (tests may pass another message-based endpoint as an
    open file descriptor through ``fd``). The HID device exists between :meth:`start` (or
    :meth:`plug`) and :meth:`stop` (or :meth:`unplug`).
    """

    kind = "usbrelay"

    def __init__(
        self,
        channels: int = 2,
        board_id: str = "SIM01",
        *,
        uhid: str = "/dev/uhid",
        fd: int | None = None,
    ) -> None:
        self.model = UsbRelayModel(channels, board_id)
        self.uhid = uhid
        self.name = f"USBRelay{channels}"
        #: the HID device's uniq string: the board ID at creation, for udev links
        self.uniq = board_id
        self.phys = f"labpower-sim-uhid/{os.getpid()}/{id(self):x}"
        #: every report received, in order
        self.reports: list[Report] = []
        #: called with a short text for every switching command (the CLI prints them)
        self.on_event: Callable[[str], None] | None = None
        self._given_fd = fd
        self._fd = -1
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1

    # -- what tests check
    @property
    def relays(self) -> dict[int, bool]:
        return self.model.relays

    @property
    def switches(self) -> list[Switch]:
        return self.model.switches

    @property
    def channels(self) -> int:
        return self.model.channels

    def hidraw(self) -> str | None:
        """The /dev/hidrawN node the kernel made for this board, if it is there yet."""
        for uevent in Path("/sys/class/hidraw").glob("hidraw*/device/uevent"):
            try:
                fields = dict(
                    line.split("=", 1) for line in uevent.read_text().splitlines() if "=" in line
                )
            except OSError:
                continue
            if fields.get("HID_PHYS") == self.phys:
                return "/dev/" + uevent.parent.parent.name
        return None

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``condition()`` holds (checked after every event); False on timeout."""
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    # -- life cycle
    def start(self) -> UhidRelayBoard:
        """Open /dev/uhid, create the HID device, answer in a background thread.

        :raises OSError: no uhid (``modprobe uhid``), or no permission.
        """
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("simulator already running")
            self._fd = (
                self._given_fd if self._given_fd is not None else os.open(self.uhid, os.O_RDWR)
            )
            self._given_fd = None  # a given endpoint serves one plug only
            try:
                os.write(
                    self._fd,
                    create2_event(
                        self.name,
                        self.phys,
                        self.uniq,
                        REPORT_DESCRIPTOR,
                        VENDOR_ID,
                        PRODUCT_ID,
                    ),
                )
            except OSError:
                os.close(self._fd)
                self._fd = -1
                raise
            self._wake_r, self._wake_w = os.pipe()
            self._thread = threading.Thread(target=self._serve, name="sim-uhid", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Destroy the HID device (its hidraw node goes) and end the thread."""
        thread = self._thread
        if thread is None:
            return
        os.write(self._wake_w, b"x")
        thread.join()
        self._thread = None
        os.close(self._wake_r)
        os.close(self._wake_w)
        try:
            os.write(self._fd, _TYPE.pack(UHID_DESTROY).ljust(EVENT_SIZE, b"\0"))
        except OSError:
            pass  # closing destroys it as well
        os.close(self._fd)
        self._fd = -1

    def unplug(self) -> None:
        """Act unplugged: the HID device is destroyed, the relays lose their state."""
        self.stop()
        with self._lock:
            self.model.power_loss()

    def plug(self) -> None:
        """Act plugged in again: a new HID device (and a new hidraw node)."""
        self.start()

    def __enter__(self) -> UhidRelayBoard:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the thread
    def _serve(self) -> None:
        fd, wake = self._fd, self._wake_r
        while True:
            readable, _, _ = select.select([fd, wake], [], [])
            if wake in readable:
                return
            try:
                event = os.read(fd, EVENT_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not event:
                return
            reply = self.handle(event)
            if reply is not None:
                try:
                    os.write(fd, reply)
                except OSError:
                    return

    def handle(self, event: bytes) -> bytes | None:
        """Act on one event from the kernel; the reply event to write back, if any."""
        if len(event) < _TYPE.size:
            return None
        (kind,) = _TYPE.unpack_from(event)
        with self._lock:
            try:
                if kind == UHID_GET_REPORT:
                    return self._get_report(event)
                if kind == UHID_SET_REPORT:
                    return self._set_report(event)
                if kind == UHID_OUTPUT:
                    data = event[4 : 4 + UHID_DATA_MAX]
                    size, _ = _OUTPUT_SIZE.unpack_from(event, 4 + UHID_DATA_MAX)
                    raw = data[:size]
                    self.reports.append(Report("output", raw[0] if raw else 0, raw))
                return None
            finally:
                self._changed.notify_all()

    def _get_report(self, event: bytes) -> bytes:
        _, request, rnum, rtype = _GET_REPORT.unpack_from(event)
        if rtype != UHID_FEATURE_REPORT or rnum != 0:
            return _GET_REPORT_REPLY.pack(UHID_GET_REPORT_REPLY, request, EIO, 0, b"")
        # the report number first: hidraw hands a USB board's report over that way
        data = bytes((rnum,)) + self.model.feature_report()
        return _GET_REPORT_REPLY.pack(UHID_GET_REPORT_REPLY, request, 0, len(data), data)

    def _set_report(self, event: bytes) -> bytes:
        _, request, rnum, rtype, size = _SET_REPORT.unpack_from(event)
        start = _SET_REPORT.size
        raw = bytes(event[start : start + min(size, UHID_DATA_MAX)])
        kind = "feature" if rtype == UHID_FEATURE_REPORT else "output"
        self.reports.append(Report(kind, rnum, raw))
        if rtype != UHID_FEATURE_REPORT or rnum != 0:
            return _SET_REPORT_REPLY.pack(UHID_SET_REPORT_REPLY, request, EIO)
        # hidraw passes the report number in front; the board sees only the 8 data bytes
        payload = raw[1:] if len(raw) > REPORT_SIZE else raw
        before = len(self.model.switches)
        self.model.command(payload[:REPORT_SIZE])
        for sw in self.model.switches[before:]:
            if self.on_event is not None:
                self.on_event(f"channel {sw.channel} {'on' if sw.on else 'off'}")
        return _SET_REPORT_REPLY.pack(UHID_SET_REPORT_REPLY, request, 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labpower-sim usbrelay",
        description="Simulate a dcttech USBRelay board through /dev/uhid: a real hidraw node.",
    )
    parser.add_argument(
        "--uhid", action="store_true", help="through /dev/uhid (the only way, for now)"
    )
    parser.add_argument("--channels", type=int, default=2, metavar="N", help="relays (1-8)")
    parser.add_argument("--id", default="SIM01", help="the board ID (1-5 characters)")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print switches")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``labpower-sim usbrelay --uhid [--channels N] [--id ID]``: run until SIGINT/SIGTERM."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        board = UhidRelayBoard(args.channels, args.id)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.quiet:
        board.on_event = lambda text: print(f"usbrelay: {text}", flush=True)
    stop = StopSignals()
    try:
        board.start()
    except OSError as exc:
        print(
            f"labpower-sim: cannot create a uhid device ({board.uhid}: "
            f"{exc.strerror or exc}); is the uhid module loaded, and are you root?",
            file=sys.stderr,
        )
        return 1
    try:
        # the node appears in sysfs with no event to wait on: poll briefly, for the message
        node = board.hidraw()
        for _ in range(200):
            if node is not None or stop.wait(0.01):
                break
            node = board.hidraw()
        print(
            f"USBRelay{board.channels} board {args.id} on {node or 'a new hidraw node'}; "
            "Ctrl-C to stop",
            flush=True,
        )
        while not stop.wait(3600):
            pass
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

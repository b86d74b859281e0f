"""A serial relay board simulator behind QEMU's usb-serial device, on the host.

``-device usb-serial,chardev=ID -chardev socket,id=ID,path=SOCK,server=on,wait=off`` gives the
guest an FTDI FT232 (0403:6001, driver ftdi_sio, /dev/ttyUSBn): what the guest writes to the
tty comes out of the socket, and what is written to the socket arrives at the tty. QEMU
attaches the USB device while a client is connected to the socket and detaches it when that
client goes, so :meth:`UsbSerialBoard.plug` (connect) and :meth:`UsbSerialBoard.unplug`
(disconnect) are a real hot-plug and hot-unplug for the guest's kernel, udev and labpowerd.

The board is one of labpower's byte-accurate simulators (labpower.backends.sim), fed from the
socket instead of its pty: :meth:`~labpower.backends.sim.PtySimulator.handle` takes bytes from
any transport, and the pty is never opened. A QEMU FTDI port ignores the baud rate, so nothing
here emulates wire time (the simulator's ``wire_baud`` stays None).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from labpower.backends.sim import PtySimulator, Switch


class UsbSerialBoard:
    """``simulator`` plugged into the guest through QEMU's chardev socket ``socket_path``.

    :attr:`switches` and :attr:`relays` are what a test checks: every switching command that
    reached the board, and the real relay states.
    """

    def __init__(self, simulator: PtySimulator, socket_path: Path) -> None:
        if simulator.wire_baud is not None:
            raise ValueError("a QEMU usb-serial port has no wire time: use wire_baud=None")
        self.simulator = simulator
        self.socket_path = socket_path
        self._lock = threading.Lock()
        self._conn: socket.socket | None = None
        self._thread: threading.Thread | None = None
        #: how many times the board was plugged in
        self.plugs = 0

    @property
    def plugged(self) -> bool:
        return self._conn is not None

    @property
    def relays(self) -> dict[int, bool]:
        """The relay states now, channel 1 first."""
        with self._lock:
            return dict(self.simulator.relays)

    @property
    def switches(self) -> list[Switch]:
        """Every switching command received so far, in order."""
        with self._lock:
            return list(self.simulator.switches)

    def plug(self) -> None:
        """Connect to QEMU's socket: the guest sees the FTDI device arrive.

        :raises RuntimeError: already plugged in.
        :raises OSError: QEMU's socket is not there (QEMU not running).
        """
        if self._conn is not None:
            raise RuntimeError("the board is already plugged in")
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(self.socket_path))
        except OSError:
            conn.close()
            raise
        self._conn = conn
        self.plugs += 1
        self._thread = threading.Thread(
            target=self._serve, args=(conn,), name="usb-serial-board", daemon=True
        )
        self._thread.start()

    def unplug(self) -> None:
        """Disconnect: QEMU detaches the device, and the relays lose power (all off), as a
        real board's do when its USB cable is pulled. Does nothing when not plugged in."""
        conn, thread = self._conn, self._thread
        if conn is None or thread is None:
            return
        try:
            conn.shutdown(socket.SHUT_RDWR)  # wakes the reader with EOF
        except OSError:
            pass  # QEMU already closed its end
        thread.join()
        conn.close()
        self._conn = self._thread = None
        with self._lock:
            # drop(): without a running pty it only cuts the power and forgets partial commands
            self.simulator.drop()

    def close(self) -> None:
        self.unplug()

    def _serve(self, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return  # unplugged by us, or QEMU went away
            with self._lock:
                self.simulator.received += data
                exchanges = self.simulator.handle(data)
            answer = b"".join(reply for _, reply in exchanges)
            if answer:
                try:
                    conn.sendall(answer)
                except OSError:
                    return

"""A stand-in for the ``hid`` module (cython-hidapi, hidraw backend) over a fake bus.

Same calls, same shapes: ``enumerate()`` returns the dicts hidapi returns (``path`` as bytes),
``device()`` has ``open_path``, ``open``, ``send_feature_report``, ``get_feature_report``,
``write``, ``read``, ``close`` and the string getters, and failures are ``OSError`` as in
cython-hidapi. Report numbers behave as through hidapi on Linux: the first byte of a buffer
written is the report number (0 = unnumbered, not sent to the device), and a feature report
read comes back with the report number in front (unless the board is set to
``report_prefix = False``, to model libraries that strip it).
"""

from __future__ import annotations

import time
from typing import Any

from labpower.backends.fakes import boards
from labpower.backends.fakes.bus import Board, Bus, World


class FakeHidapi:
    """Module-shaped: use ``fake.enumerate(...)`` and ``fake.device()`` like ``hid``."""

    __version__ = "0.15.0-fake"

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def enumerate(self, vendor_id: int = 0, product_id: int = 0) -> list[dict[str, Any]]:
        with self.bus.transaction() as world:
            return [
                _info(b)
                for b in world["hid"]
                if b["plugged"] and vendor_id in (0, b["vid"]) and product_id in (0, b["pid"])
            ]

    def device(self) -> FakeHidDevice:
        return FakeHidDevice(self.bus)


def _info(b: Board) -> dict[str, Any]:
    return {
        "path": b["path"].encode(),
        "vendor_id": b["vid"],
        "product_id": b["pid"],
        "serial_number": b["serial"],
        "release_number": 0x0100,
        "manufacturer_string": b["manufacturer"],
        "product_string": b["product"],
        "usage_page": 0xFF00 if b["model"] != "ykush" else 0xFF01,
        "usage": 1,
        "interface_number": 0,
        "bus_type": 1,
    }


class FakeHidDevice:
    """An hidapi device handle on a fake board."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._key: str | None = None
        self._generation = 0
        self._nonblocking = False

    # -- opening
    def open_path(self, path: bytes | str) -> None:
        want = path.decode() if isinstance(path, bytes) else path
        self._attach(lambda b: b["path"] == want)

    def open(
        self, vendor_id: int = 0, product_id: int = 0, serial_number: str | None = None
    ) -> None:
        self._attach(
            lambda b: (
                b["vid"] == vendor_id
                and b["pid"] == product_id
                and serial_number in (None, b["serial"])
            )
        )

    def _attach(self, match: Any) -> None:
        with self._bus.transaction() as world:
            for b in world["hid"]:
                if b["plugged"] and match(b):
                    self._key, self._generation = b["key"], b["generation"]
                    _log(world, b, "open", [])
                    return
        raise OSError("open failed")

    def close(self) -> None:
        if self._key is not None:
            with self._bus.transaction() as world:
                for b in world["hid"]:
                    if b["key"] == self._key:
                        _log(world, b, "close", [])
        self._key = None

    def set_nonblocking(self, v: int) -> int:
        self._nonblocking = bool(v)
        return 0

    # -- transfers
    def _board(self, world: World) -> Board:
        if self._key is None:
            raise ValueError("not open")
        for b in world["hid"]:
            if b["key"] == self._key:
                if b["plugged"] and b["generation"] == self._generation:
                    board: Board = b
                    return board
                break
        # the hidraw node of an unplugged board answers ENODEV until closed
        raise OSError(19, "No such device")

    def _ready(self) -> None:
        """Block while the board hangs (an ioctl to a wedged device does not come back)."""
        if self._key is None:
            raise ValueError("not open")
        self._bus.wait_released("hid", self._key, None)

    def send_feature_report(self, buff: Any) -> int:
        data = list(bytes(buff))
        self._ready()
        with self._bus.transaction() as world:
            b = self._board(world)
            _log(world, b, "send_feature_report", data)
            payload = data[1:] if data and data[0] == 0 else data
            if b["model"] == "usbrelay":
                boards.usbrelay_set_report(b, payload)
            return len(data)

    def get_feature_report(self, report_num: int, max_length: int) -> list[int]:
        self._ready()
        with self._bus.transaction() as world:
            b = self._board(world)
            _log(world, b, "get_feature_report", [report_num, max_length])
            if b["model"] != "usbrelay" or report_num != 0:
                raise OSError(32, "Broken pipe")  # the device stalls the request
            report = boards.usbrelay_get_report(b)
            if b.get("garble"):
                report = report[:3]  # a board answering nonsense: too short
            if b["report_prefix"]:
                return ([report_num, *report])[:max_length]
            return report[:max_length]

    def write(self, buff: Any) -> int:
        data = list(bytes(buff))
        self._ready()
        with self._bus.transaction() as world:
            b = self._board(world)
            _log(world, b, "write", data)
            payload = data[1:] if data and data[0] == 0 else data
            if b["model"] == "lcus-hid":
                boards.lcus_hid_out(b, payload)
            elif b["model"] == "ykush":
                boards.ykush_out(b, payload)
            else:
                return -1  # a board without an interrupt OUT endpoint
            return len(data)

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        self._ready()
        with self._bus.transaction() as world:
            b = self._board(world)
            pending = b.get("pending") or []
            if not pending:
                # nothing to read: hidapi returns an empty list when the wait times out
                _log(world, b, "read", [])
                return []
            reply: list[int] = pending.pop(0)[:max_length]
            if b.get("garble"):
                reply = [0xEE] * len(reply)  # no status this board ever sends
            _log(world, b, "read", reply)
            return reply

    # -- strings
    def _string(self, field: str) -> str:
        with self._bus.transaction() as world:
            return str(self._board(world)[field])

    def get_manufacturer_string(self) -> str:
        return self._string("manufacturer")

    def get_product_string(self) -> str:
        return self._string("product")

    def get_serial_number_string(self) -> str:
        return self._string("serial")


def _log(world: World, board: Board, call: str, data: list[int]) -> None:
    world["log"].append({"board": board["key"], "call": call, "data": data, "time": time.time()})

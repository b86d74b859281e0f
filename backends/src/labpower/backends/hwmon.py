"""Meters: a target's voltage and current from a Linux hwmon device (INA219/INA226/INA3221,
LTC4151 and the like), independent of the board that switches the target.

``meter = "hwmon:NAME[:CHANNEL]"`` or ``"hwmon:/sys/PATH[:CHANNEL]"``: the hwmon device whose
``name`` attribute is NAME (it must be the only one), or the one at PATH (a
``/sys/class/hwmon/hwmonN`` directory, or a device directory holding ``hwmon/hwmonN``, such as
``/sys/bus/i2c/devices/1-0040``, which stays the same across boots where hwmonN does not).
Channel n (default 1) is read from ``in<n>_input`` (millivolts) and ``curr<n>_input``
(milliamperes), or, without a current attribute, ``power<n>_input`` (microwatts) divided by the
voltage. The device is looked up at every reading, so a driver that is unbound and bound again
(a new hwmonN) is found again; while it is gone, a reading is :class:`DeviceUnavailableError`.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass

import anyio
import anyio.to_thread
from labpower.backends.base import Measurement
from labpower.backends.errors import DeviceUnavailableError, HardwareTimeout, OperationError

CLASS_DIR = "/sys/class/hwmon"
PREFIX = "hwmon:"
_SPEC = re.compile(r"hwmon:(?P<what>[^:\s]+)(?::(?P<channel>\d+))?")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: longest attribute value read (an integer in ASCII)
_ATTR_LIMIT = 64


def _attr(directory: str, attr: str) -> str | None:
    """One sysfs attribute, stripped; None if the device has no such attribute.

    :raises DeviceUnavailableError: the device vanished (driver unbound) while reading.
    """
    try:
        with open(os.path.join(directory, attr), "rb") as f:
            data = f.read(_ATTR_LIMIT)
    except FileNotFoundError:
        if not os.path.isdir(directory):
            raise DeviceUnavailableError(f"{directory}: gone (driver unbound?)") from None
        return None
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.ENXIO, errno.EIO, errno.ENOENT):
            raise DeviceUnavailableError(f"{directory}/{attr}: {exc.strerror}") from exc
        raise OperationError(f"{directory}/{attr}: {exc.strerror or exc}") from exc
    return data.decode("ascii", "replace").strip()


@dataclass(frozen=True, slots=True)
class HwmonMeter:
    """One hwmon channel. :meth:`parse` makes one from the config's text."""

    #: the ``name`` attribute to look for, or an absolute path
    device: str
    channel: int = 1
    #: where hwmon devices are listed (the kernel's; a test points it at a copy)
    class_dir: str = CLASS_DIR

    @classmethod
    def parse(cls, text: str) -> HwmonMeter:
        """:raises ValueError: the text is not ``hwmon:NAME[:CHANNEL]`` or ``hwmon:/PATH[:N]``."""
        match = _SPEC.fullmatch(text)
        form = "hwmon:NAME[:CHANNEL] or hwmon:/sys/PATH[:CHANNEL]"
        if match is None:
            raise ValueError(f"must be {form}, not {text!r}")
        what, channel = match["what"], int(match["channel"] or 1)
        if what.startswith("/"):
            if not what.startswith("/sys/") or "/../" in what + "/":
                raise ValueError(f"a path must lie under /sys/, not {what!r}")
        elif not _NAME.fullmatch(what):
            raise ValueError(f"{what!r} is not an hwmon device name ({form})")
        if not 1 <= channel <= 64:
            raise ValueError(f"channel must be 1..64, not {channel}")
        return cls(what, channel)

    def __str__(self) -> str:
        return f"{PREFIX}{self.device}" + (f":{self.channel}" if self.channel != 1 else "")

    def find(self) -> str:
        """The hwmon directory now.

        :raises DeviceUnavailableError: no such device (yet), or gone.
        :raises OperationError: several devices have the name.
        """
        if self.device.startswith("/"):
            if os.path.isfile(os.path.join(self.device, "name")):
                return self.device
            below = os.path.join(self.device, "hwmon")
            found = sorted(os.listdir(below)) if os.path.isdir(below) else []
            if len(found) == 1:
                return os.path.join(below, found[0])
            raise DeviceUnavailableError(f"{self.device}: no hwmon device there")
        try:
            entries = sorted(os.listdir(self.class_dir))
        except OSError as exc:
            raise DeviceUnavailableError(f"{self.class_dir}: {exc.strerror or exc}") from exc
        matches = []
        for entry in entries:
            directory = os.path.join(self.class_dir, entry)
            try:
                if _attr(directory, "name") == self.device:
                    matches.append(directory)
            except DeviceUnavailableError:
                continue  # one vanishing while we look is not the one we want
        if not matches:
            raise DeviceUnavailableError(f"no hwmon device named {self.device!r}")
        if len(matches) > 1:
            raise OperationError(
                f"{len(matches)} hwmon devices are named {self.device!r} "
                f"({', '.join(matches)}): give the path instead"
            )
        return matches[0]

    def read(self) -> Measurement:
        """Blocking: a reading now (I2C sensors take milliseconds).

        :raises DeviceUnavailableError, OperationError:
        """
        directory = self.find()
        n = self.channel
        voltage = self._value(directory, f"in{n}_input", 1e-3)
        if voltage is None:
            raise OperationError(f"{directory}: no in{n}_input (channel {n})")
        current = self._value(directory, f"curr{n}_input", 1e-3)
        if current is None:
            power = self._value(directory, f"power{n}_input", 1e-6)
            if power is None:
                raise OperationError(f"{directory}: neither curr{n}_input nor power{n}_input")
            current = power / voltage if voltage else 0.0
        return Measurement(voltage, current)

    @staticmethod
    def _value(directory: str, attr: str, scale: float) -> float | None:
        text = _attr(directory, attr)
        if text is None:
            return None
        try:
            return int(text) * scale
        except ValueError:
            raise OperationError(f"{directory}/{attr}: {text[:32]!r} is not a number") from None

    async def measure(self, seconds: float) -> Measurement:
        """:meth:`read` in a worker thread, within ``seconds``.

        :raises DeviceUnavailableError, OperationError, HardwareTimeout:
        """
        try:
            with anyio.fail_after(seconds):
                return await anyio.to_thread.run_sync(self.read, abandon_on_cancel=True)
        except TimeoutError as exc:
            raise HardwareTimeout(seconds, f"reading {self}") from exc

"""The ``gpio`` backend: relays wired to a host's GPIO lines, through the kernel's GPIO
character device (``/dev/gpiochipN``) and libgpiod v2 (the ``gpiod`` package, extra ``gpio``).

A device is one chip; a channel is one line, given by offset or by name. Each line is its own
request, so switching one line never reconfigures another.

Never switching what nobody asked to switch:

- **Open** requests each line *as is*: no direction, no bias, no output value. The kernel
  then changes nothing on the line (gpiolib's request only records the flags), so opening after
  a restart, a crash or a reload leaves every relay as it was, and :meth:`get` reads the level
  the line has.
- **A line that is not an output yet** (an input after boot) becomes one at its first
  :meth:`set`, with the asked value in the same call, so it never passes through the other
  level.
- **Close and process exit** release the lines. gpiolib itself leaves a released line alone,
  but it calls the chip driver's ``free`` hook, and what that does is the driver's choice:
  some drivers keep driving the last value, gpio-sim lets the line fall back to its pull.
- **Restart and crash, under systemd** (:data:`keeper`, set by the daemon): each output
  line's request descriptor is kept in systemd's file descriptor store, named after the
  chip, the offset and the level driven, so the request outlives the process. libgpiod
  cannot adopt an open request, and a held line cannot be requested again (EBUSY), so the
  next daemon asks systemd to drop its copy, waits for it (BARRIER=1), closes its own and at
  once requests the line as an output at the stored level (the output value is applied by
  the request itself): the line is released only between that close and that request
  (one close and one ioctl; tests/vm times it, slow under emulation). A stop flushes the
  store, and the lines are released as above; so
  :meth:`notes` says it in ``--check-config``, with the wiring that makes it safe
  (docs/manual.md).

Every call is one ioctl on the request's file descriptor. On a memory-mapped SoC chip that
takes microseconds and runs on the event loop, since a worker thread would cost more than the
call; a chip behind a bus that sleeps (USB, I2C, SPI expanders) runs in a worker thread.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

from labpower.backends.base import Backend
from labpower.backends.errors import DeviceUnavailableError, OperationError, OptionError

if TYPE_CHECKING:
    import gpiod

T = TypeVar("T")
log = logging.getLogger("labpower.backends.gpio")

#: Path parts of a chip's device in sysfs that mean its ioctls can sleep for a bus transfer.
SLEEPING_BUSES = ("/usb", "/i2c-", "/spi")
#: How lines show as used by labpowerd to ``gpioinfo``.
CONSUMER = "labpowerd"
#: A line name longer than this is refused (the kernel's own limit is 32 bytes).
MAX_NAME = 32


#: Names of the kept requests in systemd's store: ``gpio/<chip>/<offset>=<level>``, the chip's
#: device name (``gpiochip0``), the physical level driven (1 high, 0 low)
STORE_PREFIX = "gpio/"
STORE_NAME = re.compile(r"gpio/(gpiochip[0-9]{1,6})/([0-9]{1,5})=([01])")


@dataclass(slots=True)
class LineKeeper:
    """systemd's file descriptor store, as the daemon gives it (``None`` without systemd)."""

    #: FDSTORE=1 with FDNAME=name
    store: Callable[[str, int], object]
    #: FDSTOREREMOVE=1 with FDNAME=name
    remove: Callable[[str], object]
    #: BARRIER=1: True once systemd has handled every notification sent before
    barrier: Callable[[], bool]
    #: whether the daemon is exiting: its stored requests are then left to systemd, which
    #: keeps them for the next daemon on a restart or a crash and flushes them on a stop
    exiting: Callable[[], bool]
    #: requests the previous daemon kept, passed back by systemd: name -> descriptor
    passed: dict[str, int] = field(default_factory=dict)

    def take(self, chip: str, offset: int) -> tuple[str, int, int] | None:
        """The kept request of ``offset`` on ``chip``: (its name, descriptor, level)."""
        for name, fd in self.passed.items():
            m = STORE_NAME.fullmatch(name)
            if m and m[1] == chip and int(m[2]) == offset:
                del self.passed[name]
                return name, fd, int(m[3])
        return None

    def drop_unclaimed(self, claimed: set[tuple[str, int]]) -> None:
        """Release the kept requests of lines no configured channel is, (chip name, offset)
        in ``claimed`` (the config changed): such a line is not driven by guesswork."""
        for name, fd in list(self.passed.items()):
            m = STORE_NAME.fullmatch(name)
            if m and (m[1], int(m[2])) in claimed:
                continue
            del self.passed[name]
            log.warning(
                "releasing %s kept from the previous run: no configured gpio line is that "
                "chip and offset now",
                name[:80].encode("unicode_escape").decode(),
            )
            self.remove(name)
            os.close(fd)


#: Set by the daemon when systemd keeps descriptors for it (FileDescriptorStoreMax=).
keeper: LineKeeper | None = None


def store_name(chip_path: str, offset: int, high: bool) -> str:
    return f"{STORE_PREFIX}{os.path.basename(os.path.realpath(chip_path))}/{offset}={int(high)}"


@dataclass(frozen=True, slots=True)
class GpioOptions:
    """``[devices.NAME]`` keys of the ``gpio`` backend."""

    #: ``/dev/gpiochipN`` or any path to it (a udev link), or a chip's name (``gpiochip0``)
    #: or label (``pinctrl-bcm2711``).
    chip: str
    #: One line per channel, in channel order: an offset (17) or a line name ("GPIO17").
    lines: list[int | str] = field(default_factory=list)
    #: The relay is on when the line is low (most relay modules with an optocoupler input).
    active_low: bool = False

    def __post_init__(self) -> None:
        if not self.chip or "\0" in self.chip:
            raise OptionError("chip", "must name a chip: a path, a name or a label")
        if not self.lines:
            raise OptionError("lines", "must list one line (offset or name) per channel")
        seen: set[int | str] = set()
        for i, line in enumerate(self.lines):
            if isinstance(line, int) and not 0 <= line < 65536:
                raise OptionError(f"lines[{i}]", f"offset must be 0..65535, not {line}")
            if isinstance(line, str) and not 0 < len(line.encode()) <= MAX_NAME:
                raise OptionError(f"lines[{i}]", f"a line name is 1..{MAX_NAME} bytes")
            if line in seen:
                raise OptionError(f"lines[{i}]", f"line {line!r} is listed twice")
            seen.add(line)


def _sleeps(path: str) -> bool:
    """Whether the chip at ``path`` sits behind a bus whose transfers sleep."""
    try:
        rdev = os.stat(path).st_rdev
        device = os.path.realpath(f"/sys/dev/char/{os.major(rdev)}:{os.minor(rdev)}")
    except OSError:
        return True  # unknown: the safe side, a worker thread
    return any(part in device for part in SLEEPING_BUSES)


def find_chip(chip: str) -> str:
    """The path of the chip that ``chip`` (a path, a name or a label) names.

    :raises DeviceUnavailableError: no such chip.
    """
    import gpiod

    if "/" in chip:
        if not os.path.exists(chip):
            raise DeviceUnavailableError(f"{chip}: no such GPIO chip")
        if not gpiod.is_gpiochip_device(chip):
            raise DeviceUnavailableError(f"{chip}: not a GPIO chip")
        return chip
    paths = sorted(p for p in glob.glob("/dev/gpiochip*") if gpiod.is_gpiochip_device(p))
    for path in paths:
        if os.path.basename(path) == chip:
            return path
    for path in paths:
        try:
            with gpiod.Chip(path) as c:
                if c.get_info().label == chip:
                    return path
        except OSError:
            continue  # one chip we may not open does not hide the one asked for
    raise DeviceUnavailableError(f"no GPIO chip named or labelled {chip!r}")


def _unavailable_or_failed(where: str, exc: OSError) -> Exception:
    """ENODEV and the like: the chip went away (unplugged, driver unbound)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return DeviceUnavailableError(
            f"{where}: {reason} (the chip's node is for group labpower: 71-labpower-gpio.rules)"
        )
    if exc.errno in (errno.ENODEV, errno.ENXIO, errno.ENOENT):
        return DeviceUnavailableError(f"{where}: {reason}")
    if exc.errno == errno.EBUSY:
        return DeviceUnavailableError(f"{where}: line in use by another program")
    return OperationError(f"{where}: {reason}")


class GpioBackend(Backend):
    readback = True
    Options: ClassVar[type[GpioOptions]] = GpioOptions
    max_channels = 512

    def __init__(
        self, name: str, channels: int, options: GpioOptions, timeout: float = 5.0
    ) -> None:
        self.check_options(channels, options)
        super().__init__(name, channels, options, timeout)
        self.options: GpioOptions = options
        self._chip: gpiod.Chip | None = None
        self._path = options.chip
        #: channel -> (its request, its offset)
        self._lines: dict[int, tuple[gpiod.LineRequest, int]] = {}
        #: channels whose line is an output (set() drives it without a reconfiguration)
        self._outputs: set[int] = set()
        self._sleeps = True
        #: channel -> its request's name in systemd's store (with a keeper)
        self._stored: dict[int, str] = {}

    @classmethod
    def check_options(cls, channels: int, options: GpioOptions) -> None:
        if len(options.lines) != channels:
            raise OptionError("lines", f"lists {len(options.lines)} lines for {channels} channels")

    @classmethod
    def claims(cls, options: GpioOptions) -> set[tuple[str, int]]:
        """(chip name, offset) of each line ``options`` name that can be found now."""
        import gpiod

        try:
            path = find_chip(options.chip)
            with gpiod.Chip(path) as chip:
                base = os.path.basename(os.path.realpath(path))
                found: set[tuple[str, int]] = set()
                for line in options.lines:
                    try:
                        found.add((base, chip.line_offset_from_id(line)))
                    except (OSError, ValueError):
                        continue
                return found
        except (OSError, DeviceUnavailableError):
            return set()

    @classmethod
    def notes(cls, options: GpioOptions) -> list[str]:
        pull = "pull-up" if options.active_low else "pull-down"
        level = "high: active_low" if options.active_low else "low"
        return [
            f"chip {options.chip}: a reload keeps the lines driven, and a start drives "
            "nothing; under systemd a restart or a crash keeps them too (the unit's file "
            "descriptor store), except for a release of one close and one request (a blink, "
            "timed in the log) while the new daemon requests them again. A stop, or "
            "a daemon without systemd exiting, releases the "
            "lines, and a released line's level is the GPIO chip driver's choice (some "
            "drivers keep it, gpio-sim and some expanders let it fall to its pull). For "
            f"every relay to fall to off then instead of anywhere: wire a {pull} resistor "
            f"on each line (off is {level}; manual: GPIO relays)"
        ]

    async def _call(self, fn: Callable[[], T]) -> T:
        """``fn`` (one ioctl or a few) inline on a fast chip, in a worker thread on a chip
        whose bus sleeps."""
        return await self.in_thread(fn) if self._sleeps else fn()

    def _open(self) -> None:
        import gpiod
        from gpiod.line import Direction

        path = find_chip(self.options.chip)
        try:
            chip = gpiod.Chip(path)
        except OSError as exc:
            raise _unavailable_or_failed(path, exc) from exc
        lines: dict[int, tuple[gpiod.LineRequest, int]] = {}
        outputs: set[int] = set()
        stored: dict[int, str] = {}
        try:
            for channel, line in enumerate(self.options.lines, start=1):
                where = f"{path} line {line!r}"
                try:
                    offset = chip.line_offset_from_id(line)
                except (OSError, ValueError) as exc:
                    raise DeviceUnavailableError(f"{where}: no such line on this chip") from exc
                kept = (
                    keeper.take(os.path.basename(os.path.realpath(path)), offset)
                    if keeper
                    else None
                )
                try:
                    if kept is not None:
                        lines[channel] = (self._take_over(chip, offset, *kept), offset)
                        outputs.add(channel)
                        stored[channel] = kept[0]
                        continue
                    # as is: the kernel leaves direction and level alone, so nothing switches
                    settings = gpiod.LineSettings(active_low=self.options.active_low)
                    request = chip.request_lines({offset: settings}, consumer=CONSUMER)
                    lines[channel] = (request, offset)
                    if chip.get_line_info(offset).direction == Direction.OUTPUT:
                        outputs.add(channel)
                except OSError as exc:
                    raise _unavailable_or_failed(where, exc) from exc
        except BaseException:
            for request, _ in lines.values():
                request.release()
            chip.close()
            raise
        self._chip, self._path, self._lines, self._outputs = chip, path, lines, outputs
        self._stored = stored
        self._sleeps = _sleeps(path)

    def _take_over(
        self, chip: gpiod.Chip, offset: int, name: str, fd: int, high: int
    ) -> gpiod.LineRequest:
        """Request the line the previous daemon kept in systemd's store, driving the level it
        drove: systemd drops its copy, this process closes its own, and the request follows
        at once, so the line is free only between those two calls."""
        import gpiod
        from gpiod.line import Direction, Value

        assert keeper is not None
        keeper.remove(name)
        if not keeper.barrier():
            self.log.warning("systemd did not confirm dropping %s: requesting it anyway", name)
        on = bool(high) != self.options.active_low
        settings = gpiod.LineSettings(
            direction=Direction.OUTPUT,
            output_value=Value.ACTIVE if on else Value.INACTIVE,
            active_low=self.options.active_low,
        )
        released = time.perf_counter_ns()
        os.close(fd)
        request = chip.request_lines({offset: settings}, consumer=CONSUMER)
        gap_us = (time.perf_counter_ns() - released) / 1000
        keeper.store(name, request.fd)
        self.log.info(
            "line %d kept across the restart, driven %s (released for %.0f us)",
            offset,
            "high" if high else "low",
            gap_us,
        )
        return request

    def _keep(self, channel: int, offset: int, on: bool) -> None:
        """Name the request in systemd's store after the level it now drives."""
        if keeper is None:
            return
        name = store_name(self._path, offset, on != self.options.active_low)
        old = self._stored.get(channel)
        if old == name:
            return
        if old is not None:
            keeper.remove(old)
        keeper.store(name, self._lines[channel][0].fd)
        self._stored[channel] = name

    async def open(self) -> None:
        """Find the chip and request every line as it is (nothing is driven).

        :raises DeviceUnavailableError: no such chip or line, no access, or a line in use.
        """
        await self.in_thread(self._open)

    async def close(self) -> None:
        lines, self._lines = self._lines, {}
        chip, self._chip = self._chip, None
        self._outputs = set()
        stored, self._stored = self._stored, {}

        def release() -> None:
            if keeper is not None and stored and not keeper.exiting():
                # closed by a reload: systemd's copies would hold the lines past this close
                for name in stored.values():
                    keeper.remove(name)
                keeper.barrier()
            # every descriptor is closed even where the chip is gone: a chip kept open holds
            # its number, and the chip that comes back would get another one
            for request, _ in lines.values():
                try:
                    request.release()
                except OSError as exc:
                    self.log.debug("releasing a line: %s", exc)
            if chip is not None:
                try:
                    chip.close()
                except OSError as exc:
                    self.log.debug("closing the chip: %s", exc)

        await self.in_thread(release)

    def _line(self, channel: int) -> tuple[gpiod.LineRequest, int]:
        if not 1 <= channel <= self.channels:
            raise OperationError(f"channel {channel} out of range 1..{self.channels}")
        try:
            return self._lines[channel]
        except KeyError:
            raise DeviceUnavailableError(f"{self._path}: not open") from None

    def _set(self, channel: int, on: bool) -> None:
        import gpiod
        from gpiod.line import Direction, Value

        request, offset = self._line(channel)
        value = Value.ACTIVE if on else Value.INACTIVE
        try:
            if channel in self._outputs:
                request.set_value(offset, value)
            else:
                # an input until now: output and level in one ioctl, no glitch
                settings = gpiod.LineSettings(
                    direction=Direction.OUTPUT,
                    output_value=value,
                    active_low=self.options.active_low,
                )
                request.reconfigure_lines({offset: settings})
                self._outputs.add(channel)
        except OSError as exc:
            raise _unavailable_or_failed(f"{self._path} line {offset}", exc) from exc
        self._keep(channel, offset, on)

    def _get(self, channel: int) -> bool:
        from gpiod.line import Value

        request, offset = self._line(channel)
        try:
            return request.get_value(offset) == Value.ACTIVE
        except OSError as exc:
            raise _unavailable_or_failed(f"{self._path} line {offset}", exc) from exc

    async def set(self, channel: int, on: bool) -> None:
        await self._call(lambda: self._set(channel, on))

    async def get(self, channel: int) -> bool | None:
        """The line's level as the chip reports it (active-low applied)."""
        return await self._call(lambda: self._get(channel))

    async def switch(self, channel: int, on: bool) -> bool | None:
        def both() -> bool:
            self._set(channel, on)
            return self._get(channel)

        return await self._call(both)

"""The contract suite's rig for the ``gpio`` backend: a real gpiochip made by ``gpio-sim``,
watched from the kernel's side. Runs in the lab-host VM's guest (as root), where the kernel
has the module (tests/vm/kernel_modules.py builds it); gpio_contract.py uses it.

What the rig sees of the chip, and how:

- **Switches**: every value the kernel set on one of the chip's lines, from gpiolib's own
  tracepoint (``gpio:gpio_value``, "N set V", emitted for each line of each set-values ioctl
  and for the level given with a change to output), read from tracefs. That is each request
  the chip received, a set to the level the line already had included, and nothing a read
  causes. The kernel writes the event before the ioctl returns, so :meth:`switches` drains
  the trace buffer when asked and is exact at that moment: no polling, nothing missed.
- **Relays**: each line's level as the chip has it (``sim_gpioN/value`` in sysfs), what a
  relay module's input gets.
- **Preset**: a line nobody drives takes the level of its pull (``sim_gpioN/pull``: the
  wiring's resistor). A line the backend drives cannot be changed from the chip's side (the
  driver's output wins; nothing else can request it): there the rig sets the level through
  the backend's own line request, below the backend's code, so the backend is not told, and
  the trace events of that set are the rig's own, not switches.
- **Unplug / replug**: gpio-sim's ``live`` off and on: the gpiochip is removed and made
  anew (its lines back at their default pull-down), as a USB GPIO adapter unplugged. The
  device is named by the chip's label, so it is found again under any new number.
- A GPIO chip cannot hang or answer nonsense (:attr:`can_fail` is False): a line is a
  register the kernel reads and writes within one ioctl.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from labpower.backends.base import Backend
from labpower.backends.contract import Rig, Switch

CONFIGFS = Path("/sys/kernel/config")
TRACEFS = Path("/sys/kernel/tracing")
EVENT = TRACEFS / "events" / "gpio" / "gpio_value" / "enable"
#: "<task>-<pid> [cpu] flags time: gpio_value: <global line number> set|get <value>"
_TRACE_LINE = re.compile(rb"gpio_value: (\d+) (set|get) (\d+)")
_SERIAL = itertools.count(1)


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, capture_output=True, check=True, timeout=120)


class GpioRig(Rig):
    """A gpio-sim chip of :attr:`channels` lines (channel n = line n-1), made in
    :meth:`start`, removed in :meth:`stop`."""

    kind = "gpio"
    channels = 2
    # a guest under software emulation: calls take milliseconds, not microseconds
    timeout = 2.0
    can_fail = False

    def __init__(self, share: Path) -> None:
        self.share = share
        n = next(_SERIAL)
        self.device = CONFIGFS / "gpio-sim" / f"contract{n}"
        self.label = f"contract-rig-{n}"
        self._trace = -1
        self._pending = b""
        self._switches: list[Switch] = []
        self._base = -1
        self._backends: list[Backend] = []

    # -- life cycle
    def start(self) -> None:
        if not (CONFIGFS / "gpio-sim").is_dir():
            _sh("modprobe", "configfs")
            if not os.path.ismount(CONFIGFS):
                _sh("mount", "-t", "configfs", "none", str(CONFIGFS))
            _sh("insmod", str(self.share / "modules" / "gpio-sim.ko"))
        if not os.path.ismount(TRACEFS):
            _sh("mount", "-t", "tracefs", "nodev", str(TRACEFS))
        bank = self.device / "bank0"
        bank.mkdir(parents=True)
        (bank / "num_lines").write_text(f"{self.channels}\n")
        (bank / "label").write_text(self.label + "\n")
        (TRACEFS / "trace").write_text("")  # drop what earlier users left
        EVENT.write_text("1\n")
        (TRACEFS / "tracing_on").write_text("1\n")
        self._trace = os.open(TRACEFS / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        self.replug()

    def stop(self) -> None:
        if (self.device / "live").read_text().strip() == "1":
            self.unplug()
        if self._trace >= 0:
            os.close(self._trace)
            self._trace = -1
        EVENT.write_text("0\n")
        (self.device / "bank0").rmdir()
        self.device.rmdir()

    def unplug(self) -> None:
        self._drain()
        (self.device / "live").write_text("0\n")
        self._base = -1

    def replug(self) -> None:
        self._drain()  # anything of the chip that went away
        (self.device / "live").write_text("1\n")
        self._base = self._find_base()

    # -- what the suite asks
    def options(self) -> dict[str, Any]:
        return {"chip": self.label, "lines": list(range(self.channels))}

    def attach(self, backend: Backend) -> None:
        self._backends.append(backend)

    def switches(self) -> list[Switch]:
        self._drain()
        return list(self._switches)

    def relays(self) -> dict[int, bool]:
        return {ch: self._value(ch - 1, "value") == "1" for ch in range(1, self.channels + 1)}

    def preset(self, channel: int, on: bool) -> None:
        offset = channel - 1
        self._drain()
        request = self._driving(offset)
        if request is None:
            (self._sysfs_line(offset) / "pull").write_text("pull-up\n" if on else "pull-down\n")
        else:
            from gpiod.line import Value

            request.set_value(offset, Value.ACTIVE if on else Value.INACTIVE)
            self._drain(record=False)  # the rig's own set, not the backend's
        assert self.relays()[channel] is on, f"line {offset} did not take the preset"

    def hang(self) -> None:
        raise AssertionError("a GPIO chip cannot hang (can_fail is False)")

    def heal(self) -> None:
        """Nothing to heal: the chip never failed."""

    def garble(self) -> bool:
        raise AssertionError("a GPIO chip cannot answer nonsense (can_fail is False)")

    # -- the chip's side
    def _sysfs_line(self, offset: int) -> Path:
        chip = (self.device / "bank0" / "chip_name").read_text().strip()
        platform = (self.device / "dev_name").read_text().strip()
        return Path("/sys/devices/platform") / platform / chip / f"sim_gpio{offset}"

    def _value(self, offset: int, name: str) -> str:
        return (self._sysfs_line(offset) / name).read_text().strip()

    def _find_base(self) -> int:
        """The chip's first global line number, which the trace events count in: from the
        sysfs GPIO class where the kernel has it, else from debugfs.

        :raises RuntimeError: neither says.
        """
        for chip in Path("/sys/class/gpio").glob("gpiochip*"):
            try:
                if (chip / "label").read_text().strip() == self.label:
                    return int((chip / "base").read_text())
            except OSError:
                continue
        debug = Path("/sys/kernel/debug/gpio")
        if debug.exists():
            found = re.search(
                rf"GPIOs (\d+)-\d+, parent: \S+, {re.escape(self.label)}:", debug.read_text()
            )
            if found:
                return int(found.group(1))
        raise RuntimeError(f"no base line number for chip {self.label}")

    def _driving(self, offset: int) -> Any:
        """The line request of a backend that holds ``offset`` as an output, or None."""
        import gpiod
        from gpiod.line import Direction

        chip = (self.device / "bank0" / "chip_name").read_text().strip()
        with gpiod.Chip(f"/dev/{chip}") as c:
            info = c.get_line_info(offset)
        if not info.used or info.direction != Direction.OUTPUT:
            return None
        for backend in reversed(self._backends):
            # the backend's own request (channel -> (request, offset)): private, as the
            # rig reaches below the backend to play a change it was not told of
            held = getattr(backend, "_lines", {}).get(offset + 1)
            if held is not None and held[0]:
                return held[0]
        raise AssertionError(f"line {offset} is driven by nobody the rig knows")

    def _drain(self, *, record: bool = True) -> None:
        """Read every trace event there is now; the chip's sets become switches."""
        while True:
            try:
                chunk = os.read(self._trace, 65536)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    break
                raise
            if not chunk:
                break
            self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            event = _TRACE_LINE.search(line)
            if event is None or event.group(2) != b"set" or self._base < 0:
                continue
            offset = int(event.group(1)) - self._base
            if record and 0 <= offset < self.channels:
                self._switches.append(Switch(offset + 1, event.group(3) == b"1"))

"""The USB hub part of the lab host, run in the guest by boot.sh after scenario.py:
``usbhub.py OUTDIR``; writes OUTDIR/usbhub.json, asserted by tests/vm/test_labhost.py.

QEMU gives the guest a hub with per-port power switching (``-device usb-hub,port-power=on``)
with a USB keyboard behind its port 1. labpowerd (already running, started by the boards of
scenario.py) has the hub as device ``hub``, target ``dongle`` on port 1. From the guest's own
view (sysfs, lsusb) this checks that ``labpower off dongle`` makes the keyboard leave the bus
and keeps it off, that ``labpower on dongle`` makes it enumerate again, and what the kernel's
hub driver does with a port switched off behind its back (a raw ClearPortFeature, as uhubctl
sends it).
"""

from __future__ import annotations

import grp
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import usb.core

# scenario.py, next to this script (its directory is on sys.path): the same helpers
if TYPE_CHECKING:
    from tests.vm.guest.scenario import as_alice as scenario_as_alice
    from tests.vm.guest.scenario import run, sh, wait_for
else:
    from scenario import as_alice as scenario_as_alice
    from scenario import run, sh, wait_for

HUB = "1-2"
PORT = 1
DEVICE = Path(f"/sys/bus/usb/devices/{HUB}.{PORT}")
SWITCH = Path(f"/sys/bus/usb/devices/{HUB}:1.0/{HUB}-port{PORT}/disable")
#: seconds a port switched off is watched for the hub driver powering it again
HOLD = 10.0


def as_alice(*cmd: str) -> dict[str, Any]:
    return run(scenario_as_alice(*cmd))


def enumerated() -> bool:
    """The keyboard is on the bus and configured (its interface exists)."""
    return (DEVICE / "idVendor").exists() and Path(f"{DEVICE}:1.0").exists()


def gone() -> bool:
    return not DEVICE.exists()


def bus_view() -> dict[str, Any]:
    return {
        "device": DEVICE.exists(),
        "disable": SWITCH.read_text().strip(),
        "lsusb": sh("lsusb").stdout.splitlines(),
    }


def watch(seconds: float) -> list[list[Any]]:
    """Watch the bus for ``seconds`` (a window in which nothing is expected to happen): each
    change of the keyboard's presence as [seconds from the start, present], the first one the
    state at the start."""
    changes: list[list[Any]] = []
    start = time.monotonic()
    while (now := time.monotonic() - start) < seconds:
        present = DEVICE.exists()
        if not changes or changes[-1][1] != present:
            changes.append([round(now, 2), present])
        time.sleep(0.05)
    return changes


def hub_device() -> usb.core.Device:
    bus, ports = HUB.split("-")
    hub = usb.core.find(
        custom_match=lambda d: d.bus == int(bus) and tuple(d.port_numbers or ()) == (int(ports),)
    )
    if hub is None:
        raise RuntimeError(f"pyusb finds no hub at {HUB}")
    return hub


def port_status() -> tuple[int, int]:
    """GetPortStatus, straight from the hub: (wPortStatus, wPortChange)."""
    status = bytes(hub_device().ctrl_transfer(0xA3, 0, 0, PORT, 4, 1000))
    return status[0] | status[1] << 8, status[2] | status[3] << 8


def port_powered() -> bool:
    """The PORT_POWER bit (8, a USB 2 hub) of the port's status."""
    return bool(port_status()[0] & 0x100)


def status_trace(seconds: float) -> list[list[Any]]:
    """The port's status as it changes for ``seconds``: [seconds, wPortStatus, wPortChange]."""
    trace: list[list[Any]] = []
    start = time.monotonic()
    while (now := time.monotonic() - start) < seconds:
        status, change = port_status()
        if not trace or trace[-1][1:] != [f"{status:04x}", f"{change:04x}"]:
            trace.append([round(now, 3), f"{status:04x}", f"{change:04x}"])
    return trace


def hub_debug() -> None:
    """The hub driver's debug messages (port events, power) into the kernel log."""
    debug = Path("/sys/kernel/debug")
    if not (debug / "dynamic_debug").exists():
        sh("mount", "-t", "debugfs", "debugfs", str(debug))
    (debug / "dynamic_debug" / "control").write_text("file drivers/usb/core/hub.c +p\n")


def raw_port_power_off() -> None:
    """ClearPortFeature(PORT_POWER) to the port through usbfs, behind the hub driver's back
    (what uhubctl sends)."""
    hub_device().ctrl_transfer(0x23, 1, 8, PORT, None, 1000)


def devnum() -> str | None:
    """The keyboard's device number: a new one means it left the bus and enumerated again."""
    try:
        return (DEVICE / "devnum").read_text().strip()
    except OSError:
        return None


def kernel_log(since: int) -> list[str]:
    """The kernel's lines about the keyboard and its port from line ``since`` of dmesg on."""
    ours = (f" {HUB}.{PORT}:", f" {HUB}-port{PORT}:")
    lines = sh("dmesg").stdout.splitlines()[since:]
    return [line for line in lines if any(o in line for o in ours)][:60]


def main(out: Path) -> int:
    result: dict[str, Any] = {"steps": []}

    def step(name: str, **data: Any) -> None:
        result["steps"].append(name)
        result[name] = data
        (out / "usbhub.json").write_text(json.dumps(result, indent=1))

    wait_for("the keyboard behind the hub", enumerated)
    step(
        "start",
        hub_class=Path(f"/sys/bus/usb/devices/{HUB}/bDeviceClass").read_text().strip(),
        tree=sh("lsusb", "-t").stdout,
        **bus_view(),
    )
    # the hub was set up before labpower's rules were installed: as on a lab host after
    # installing the package, `udevadm trigger` applies them (README.Debian)
    hub = f"/sys/bus/usb/devices/{HUB}"
    trigger = sh("udevadm", "trigger", "--action=add", "--settle", hub, f"{hub}:1.0")
    st = os.stat(SWITCH)
    step(
        "rules",
        rc=trigger.returncode,
        group=grp.getgrgid(st.st_gid).gr_name,
        mode=oct(stat.S_IMODE(st.st_mode)),
        discover=as_alice("labpower-discover", "--json"),
    )

    # the daemon's way: the port's sysfs `disable`
    hub_debug()
    lines = len(sh("dmesg").stdout.splitlines())
    off = as_alice("labpower", "--json", "off", "dongle")
    took = wait_for("the keyboard leaving the bus", gone)
    step(
        "off",
        **off,
        seconds=round(took, 2),
        trace=status_trace(3.0),
        powered=port_powered(),
        kernel=kernel_log(lines),
        **bus_view(),
    )
    step(
        "held",
        bus=watch(HOLD),
        status=as_alice("labpower", "--json", "status", "--refresh", "dongle"),
        powered=port_powered(),
        **bus_view(),
    )
    on = as_alice("labpower", "--json", "on", "dongle")
    took = wait_for("the keyboard enumerating again", enumerated)
    step("on", **on, seconds=round(took, 2), powered=port_powered(), **bus_view())

    # the raw way, behind the driver's back. QEMU's hub sends no change notification for it
    # (a real hub reports the connect change at once): the driver finds out when it next
    # resumes the idle hub (runtime PM suspends it; every status poll here resumes it)
    before, lines = devnum(), len(sh("dmesg").stdout.splitlines())
    raw_port_power_off()
    trace = status_trace(HOLD / 2)
    try:
        # the poll of the port's status resumes the hub (once the keyboard has autosuspended,
        # 2 s after its last use, the idle hub suspends too)
        took = wait_for(
            "the keyboard enumerating under a new number",
            lambda: port_powered() and enumerated() and devnum() not in (None, before),
            timeout=HOLD,
        )
        back: float | None = round(took, 2)
    except TimeoutError:
        back = None
    step(
        "raw",
        devnum_before=before,
        devnum_after=devnum(),
        back=back,
        trace=trace,
        powered=port_powered(),
        status=as_alice("labpower", "--json", "status", "--refresh", "dongle"),
        kernel=kernel_log(lines),
        **bus_view(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

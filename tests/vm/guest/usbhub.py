"""The USB hub part of the lab host, run in the guest by boot.sh after scenario.py:
``usbhub.py OUTDIR``; writes OUTDIR/usbhub.json, asserted by tests/vm/test_labhost.py.

QEMU gives the guest a hub with per-port power switching (``-device usb-hub,port-power=on``)
with a USB keyboard behind its port 1. labpowerd (already running, started by the boards of
scenario.py) has the hub as device ``hub``, target ``dongle`` on port 1. From the guest's own
view (sysfs, lsusb) this checks that ``labpower off dongle`` makes the keyboard leave the bus
and keeps it off, that ``labpower on dongle`` makes it enumerate again, and what the kernel's
hub driver does with a port switched off behind its back (a raw ClearPortFeature, as uhubctl
and usbfs programs send it).
"""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import usb.core

HUB = "1-2"
PORT = 1
DEVICE = Path(f"/sys/bus/usb/devices/{HUB}.{PORT}")
SWITCH = Path(f"/sys/bus/usb/devices/{HUB}:1.0/{HUB}-port{PORT}/disable")
#: seconds a port switched off is watched for the hub driver powering it again
HOLD = 10.0


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> float:
    """Bounded poll (sysfs gives this process no event to wait on); seconds taken.

    :raises TimeoutError:
    """
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def sh(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)


def as_alice(*cmd: str) -> dict[str, Any]:
    proc = sh("setpriv", "--reuid=alice", "--regid=alice", "--init-groups", "--reset-env", *cmd)
    return {"rc": proc.returncode, "out": proc.stdout + proc.stderr}


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


def watch_gone(seconds: float) -> list[float]:
    """Watch the port for ``seconds``: the times (from the start) the device was seen back."""
    seen, start = [], time.monotonic()
    while time.monotonic() - start < seconds:
        if DEVICE.exists():
            seen.append(round(time.monotonic() - start, 2))
        time.sleep(0.05)
    return seen


def raw_port_power_off() -> None:
    """ClearPortFeature(PORT_POWER) to the port, through usbfs, behind the hub driver's back."""
    bus, ports = HUB.split("-")
    hub = usb.core.find(
        custom_match=lambda d: d.bus == int(bus) and tuple(d.port_numbers or ()) == (int(ports),)
    )
    if hub is None:
        raise RuntimeError(f"pyusb finds no hub at {HUB}")
    hub.ctrl_transfer(0x23, 1, 8, PORT, None, 1000)


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

    off = as_alice("labpower", "--json", "off", "dongle")
    took = wait_for("the keyboard leaving the bus", gone)
    step("off", **off, seconds=round(took, 2), **bus_view())
    back_while_off = watch_gone(HOLD)
    step(
        "held",
        seen_back=back_while_off,
        status=as_alice("labpower", "--json", "status", "dongle"),
        **bus_view(),
    )

    on = as_alice("labpower", "--json", "on", "dongle")
    took = wait_for("the keyboard enumerating again", enumerated)
    step("on", **on, seconds=round(took, 2), **bus_view())

    # behind the driver's back: does the port stay off?
    raw_port_power_off()
    left = wait_for("the keyboard leaving after the raw request", gone, timeout=30)
    try:
        came_back: float | None = round(wait_for("the keyboard back", enumerated, 30), 2)
    except TimeoutError:
        came_back = None
    step(
        "raw",
        left=round(left, 2),
        came_back=came_back,
        status=as_alice("labpower", "--json", "status", "dongle"),
        kernel=[
            line for line in sh("dmesg").stdout.splitlines()[-60:] if HUB in line or "usb" in line
        ][-20:],
        **bus_view(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

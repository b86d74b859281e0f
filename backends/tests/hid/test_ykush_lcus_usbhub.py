"""The LCUS HID, YKUSH and USB hub backends against byte-accurate fakes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from labpower.backends import (
    Device,
    DeviceUnavailableError,
    HardwareTimeout,
    OperationError,
    OptionError,
    parse_options,
)
from labpower.backends.fakes import MemoryBus, boards
from labpower.backends.hid.lcus_hid import LcusHidBackend, LcusHidOptions
from labpower.backends.hid.ykush import YkushBackend, YkushOptions
from labpower.backends.usb.usbhub import UsbHubBackend, UsbHubOptions

pytestmark = pytest.mark.anyio


def calls(bus: MemoryBus, key: str, call: str) -> list[list[int]]:
    return [e["data"] for e in bus.log(key) if e["call"] == call]


async def test_lcus_hid_frames_and_unknown_state(bus: MemoryBus) -> None:
    bus.add("hid", boards.lcus_hid("l", relays=2, path="/dev/hidraw1", usb_port="3-1"))
    opts = parse_options(LcusHidOptions, {"usb_port": "3-1"})
    dev = Device(LcusHidBackend("lcus", 2, opts), 2.0)
    assert not dev.readback
    assert await dev.switch(1, True) is None
    assert await dev.switch(2, True) is None
    assert await dev.switch(1, False) is None
    assert calls(bus, "l", "write") == [
        [0x00, 0xA0, 0x01, 0x01, 0xA2],
        [0x00, 0xA0, 0x02, 0x01, 0xA3],
        [0x00, 0xA0, 0x01, 0x00, 0xA1],
    ]
    assert bus.board("l")["state"] == [False, True]
    assert await dev.states() == {1: None, 2: None}


def test_lcus_hid_needs_a_location() -> None:
    with pytest.raises(OptionError) as info:
        parse_options(LcusHidOptions, {})
    assert info.value.key == "path"
    with pytest.raises(OptionError, match="unknown option"):
        parse_options(LcusHidOptions, {"id": "x"})


def ykush(serial: str = "YK20001", channels: int = 3, **extra: Any) -> Device:
    opts = parse_options(YkushOptions, {"serial": serial, **extra})
    return Device(YkushBackend("ykush", channels, opts, 2.0), 2.0)


async def test_ykush_switches_with_64_byte_reports(bus: MemoryBus) -> None:
    bus.add("hid", boards.ykush("y", serial="YK20001"))
    bus.add("hid", boards.ykush("other", serial="YK20002", path="/dev/hidraw7", usb_port="1-7"))
    dev = ykush()
    assert await dev.open()
    assert await dev.switch(2, False) is False
    assert bus.board("y")["ports"] == [True, False, True]
    assert bus.board("other")["ports"] == [True, True, True]
    assert await dev.states() == {1: True, 2: False, 3: True}
    assert await dev.switch(2, True) is True
    writes = calls(bus, "y", "write")
    assert all(len(w) == 65 and w[0] == 0 for w in writes)
    assert [w[1] for w in writes] == [0xF1, 0x02, 0x22, 0x21, 0x22, 0x23, 0x12, 0x22]


async def test_ykush_xs_has_one_port(bus: MemoryBus) -> None:
    bus.add("hid", boards.ykush("xs", serial="YKX001", model="YKUSHXS"))
    assert await ykush("YKX001", channels=1).open()
    too_many = ykush("YKX001", channels=2)
    assert not await too_many.open()
    assert too_many.problem is not None
    assert "1 ports" in too_many.problem


async def test_ykush_by_port_and_unplugged(bus: MemoryBus) -> None:
    bus.add("hid", boards.ykush("y", serial="YK20001", usb_port="1-4"))
    opts = parse_options(YkushOptions, {"usb_port": "1-4"})
    dev = Device(YkushBackend("ykush", 3, opts), 2.0)
    assert await dev.switch(3, False) is False
    bus.unplug("y")
    with pytest.raises(DeviceUnavailableError, match="1-4"):
        await dev.switch(3, True)


def hub(where: str, channels: int = 4, timeout: float = 2.0) -> Device:
    opts = parse_options(UsbHubOptions, {"hub": where})
    return Device(UsbHubBackend("hub", channels, opts, timeout), timeout)


@pytest.mark.parametrize("usb3", [False, True])
async def test_hub_port_power(bus: MemoryBus, usb3: bool) -> None:
    bus.add("hubs", boards.hub("h", location="2-1.3", usb3=usb3, ports=4))
    dev = hub("2-1.3")
    assert await dev.open()
    assert await dev.switch(3, False) is False
    assert bus.board("h")["power"] == [True, True, False, True]
    assert await dev.states() == {1: True, 2: True, 3: False, 4: True}
    assert await dev.switch(3, True) is True
    requests = [d[:4] for d in calls(bus, "h", "ctrl_transfer") if d[0] == 0x23]
    assert requests == [[0x23, 1, 8, 3], [0x23, 3, 8, 3]]


async def test_hub_errors(bus: MemoryBus) -> None:
    bus.add("hubs", boards.hub("h", location="1-2", ports=2))
    too_many = hub("1-2", channels=4)
    assert not await too_many.open()
    assert too_many.problem is not None
    assert "2 ports" in too_many.problem
    absent = hub("1-3")
    assert not await absent.open()
    assert absent.problem == "no USB hub at 1-3"
    dev = hub("1-2", channels=2, timeout=0.3)
    assert await dev.switch(1, False) is False
    bus.unplug("h")
    with pytest.raises(DeviceUnavailableError):
        await dev.switch(1, True)
    bus.replug("h")  # a new devnum
    assert bus.board("h")["power"] == [False, True]
    assert await dev.switch(1, True) is True
    bus.hang("h")
    try:
        with pytest.raises(HardwareTimeout):
            await dev.switch(2, False)
    finally:
        bus.hang("h", False)


def test_hub_location_checked() -> None:
    with pytest.raises(OptionError) as info:
        parse_options(UsbHubOptions, {"hub": "1-2:1.0"})
    assert info.value.key == "hub"
    with pytest.raises(OptionError, match="required"):
        parse_options(UsbHubOptions, {})


def kernel_hub(bus: MemoryBus, where: str, ports: int) -> Path:
    """A hub as Linux shows it in sysfs: its port count and one power switch (``disable``,
    0 = powered) per port. Returns the devices directory."""
    devices = bus.root / "sys" / "bus" / "usb" / "devices"
    (devices / where).mkdir(parents=True)
    (devices / where / "maxchild").write_text(f"{ports}\n")
    for port in range(1, ports + 1):
        switch = devices / f"{where}:1.0" / f"{where}-port{port}" / "disable"
        switch.parent.mkdir(parents=True)
        switch.write_text("0\n")
    return devices


async def test_hub_ports_switch_through_the_kernel_where_it_has_them(bus: MemoryBus) -> None:
    # the same hub through usbfs too: the backend must not go past the kernel's driver
    bus.add("hubs", boards.hub("h", location="1-4", ports=4))
    devices = kernel_hub(bus, "1-4", ports=4)
    dev = hub("1-4")
    assert await dev.open()
    assert await dev.switch(2, False) is False
    assert (devices / "1-4:1.0" / "1-4-port2" / "disable").read_text() == "1"
    assert await dev.states() == {1: True, 2: False, 3: True, 4: True}
    assert await dev.switch(2, True) is True
    assert (devices / "1-4:1.0" / "1-4-port2" / "disable").read_text() == "0"
    # nothing went past the kernel's hub driver
    assert calls(bus, "h", "ctrl_transfer") == []
    assert bus.board("h")["power"] == [True, True, True, True]
    too_many = hub("1-4", channels=5)
    assert not await too_many.open()
    assert too_many.problem is not None
    assert "4 ports" in too_many.problem
    # the kernel answering nonsense is the board answering nonsense
    (devices / "1-4:1.0" / "1-4-port3" / "disable").write_text("maybe\n")
    backend = UsbHubBackend("hub", 4, parse_options(UsbHubOptions, {"hub": "1-4"}))
    with pytest.raises(OperationError, match="port 3"):
        await backend.get(3)
    # unplugged: gone from sysfs and from usbfs
    shutil.rmtree(devices / "1-4:1.0")
    bus.unplug("h")
    with pytest.raises(DeviceUnavailableError):
        await dev.switch(1, False)

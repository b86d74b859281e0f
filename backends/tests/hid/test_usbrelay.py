"""The dcttech USBRelay backend against byte-accurate fake boards."""

from __future__ import annotations

from typing import Any

import anyio
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
from labpower.backends.hid._select import AmbiguousBoardError, Selector
from labpower.backends.hid.usbrelay import (
    UsbRelayBackend,
    UsbRelayOptions,
    parse_report,
    set_board_id,
)

pytestmark = pytest.mark.anyio


def relay(options: dict[str, Any], channels: int = 2, timeout: float = 2.0) -> Device:
    opts = parse_options(UsbRelayOptions, options)
    return Device(UsbRelayBackend("relay", channels, opts, timeout), timeout)


def sent(bus: MemoryBus, key: str) -> list[list[int]]:
    return [e["data"] for e in bus.log(key) if e["call"] == "send_feature_report"]


def test_report_parsed_with_and_without_report_number() -> None:
    with_number = [0x00, *b"QWERT", 0, 0, 0b101]
    assert parse_report(with_number) == ("QWERT", 0b101)
    assert parse_report(with_number[1:]) == ("QWERT", 0b101)
    assert parse_report([0, *b"AB\0\0\0", 0, 0, 1]) == ("AB", 1)
    with pytest.raises(OperationError, match="too short"):
        parse_report([0, 1, 2])


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "id"),
        ({"id": "TOOLONG"}, "id"),
        ({"id": "A B"}, "id"),
        ({"usb_port": "usb1"}, "usb_port"),
        ({"path": "hidraw3"}, "path"),
        ({"id": "ABCDE", "serial": "x"}, "serial"),
    ],
)
def test_bad_options_name_their_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_options(UsbRelayOptions, options)
    assert info.value.key == key


@pytest.mark.parametrize("prefix", [True, False])
async def test_switch_sends_feature_report_and_reads_back(bus: MemoryBus, prefix: bool) -> None:
    bus.add("hid", boards.usbrelay("r", id="QWERT", relays=2, report_prefix=prefix))
    dev = relay({"id": "QWERT"})
    assert await dev.open()
    assert await dev.switch(2, True) is True
    assert bus.board("r")["mask"] == 0b10
    assert await dev.states() == {1: False, 2: True}
    assert await dev.switch(2, False) is False
    assert sent(bus, "r") == [[0, 0xFF, 2, 0, 0, 0, 0, 0, 0], [0, 0xFD, 2, 0, 0, 0, 0, 0, 0]]
    assert bus.board("r")["mask"] == 0


@pytest.mark.parametrize(
    "options",
    [
        {"id": "BBBBB"},
        {"path": "/dev/hidraw5"},
        {"usb_port": "1-2.2"},
        {"id": "BBBBB", "usb_port": "1-2.2"},
    ],
)
async def test_select_by_id_path_or_port(bus: MemoryBus, options: dict[str, Any]) -> None:
    bus.add("hid", boards.usbrelay("a", id="AAAAA", path="/dev/hidraw4", usb_port="1-2.1"))
    bus.add("hid", boards.usbrelay("b", id="BBBBB", path="/dev/hidraw5", usb_port="1-2.2"))
    dev = relay(options)
    await dev.switch(1, True)
    assert (bus.board("a")["mask"], bus.board("b")["mask"]) == (0, 1)


async def test_duplicate_ids_are_refused_naming_both(bus: MemoryBus) -> None:
    bus.add("hid", boards.usbrelay("a", id="HURTM", path="/dev/hidraw4", usb_port="1-2.1"))
    bus.add("hid", boards.usbrelay("b", id="HURTM", path="/dev/hidraw5", usb_port="1-2.2"))
    dev = relay({"id": "HURTM"})
    assert not await dev.open()
    with pytest.raises(AmbiguousBoardError) as info:
        await dev.switch(1, True)
    message = str(info.value)
    for part in ("/dev/hidraw4", "/dev/hidraw5", "1-2.1", "1-2.2", "usb_port", "--set-id"):
        assert part in message
    assert sent(bus, "a") == sent(bus, "b") == []
    # the port tells them apart
    await relay({"id": "HURTM", "usb_port": "1-2.2"}).switch(1, True)
    assert (bus.board("a")["mask"], bus.board("b")["mask"]) == (0, 1)


async def test_absent_board_and_too_many_channels(bus: MemoryBus) -> None:
    bus.add("hid", boards.usbrelay("a", id="AAAAA", relays=2))
    dev = relay({"id": "ZZZZZ"})
    assert not await dev.open()
    assert dev.problem is not None
    assert "ZZZZZ" in dev.problem
    assert "AAAAA" in dev.problem
    big = relay({"id": "AAAAA"}, channels=4)
    assert not await big.open()
    assert big.problem is not None
    assert "USBRelay2 with 2 relays" in big.problem


async def test_unplug_then_replug_under_new_node(bus: MemoryBus) -> None:
    bus.add("hid", boards.usbrelay("r", id="QWERT", path="/dev/hidraw3", usb_port="1-2"))
    dev = relay({"id": "QWERT"})
    assert await dev.switch(1, True)
    bus.unplug("r")
    with pytest.raises(DeviceUnavailableError):
        await dev.switch(1, True)
    assert not dev.available
    bus.clear_log()
    bus.replug("r", path="/dev/hidraw9")
    # the board lost its relay state with its power; nothing switched it back on
    assert await dev.states() == {1: False, 2: False}
    assert dev.available
    assert sent(bus, "r") == []
    assert await dev.switch(2, True) is True
    assert sent(bus, "r") == [[0, 0xFF, 2, 0, 0, 0, 0, 0, 0]]


async def test_node_taken_over_by_another_board_is_noticed(bus: MemoryBus) -> None:
    bus.add("hid", boards.usbrelay("a", id="AAAAA", path="/dev/hidraw3", usb_port="1-2"))
    bus.add("hid", boards.usbrelay("b", id="BBBBB", path="/dev/hidraw4", usb_port="1-3"))
    dev = relay({"id": "AAAAA"})
    await dev.switch(1, True)
    # both replugged: each now has the other's node and port
    bus.unplug("a")
    bus.unplug("b")
    bus.replug("a", path="/dev/hidraw4", usb_port="1-3")
    bus.replug("b", path="/dev/hidraw3", usb_port="1-2")
    await dev.switch(2, True)
    assert (bus.board("a")["mask"], bus.board("b")["mask"]) == (0b10, 0)


async def test_hung_board_times_out_while_another_switches(bus: MemoryBus) -> None:
    bus.add("hid", boards.usbrelay("a", id="AAAAA", path="/dev/hidraw3", usb_port="1-2"))
    bus.add("hid", boards.usbrelay("b", id="BBBBB", path="/dev/hidraw4", usb_port="1-3"))
    hung, fine = relay({"usb_port": "1-2"}, timeout=0.3), relay({"usb_port": "1-3"})
    assert await hung.open()
    assert await fine.open()
    bus.hang("a")
    results: list[bool | None] = []

    async def keep_switching() -> None:
        for i in range(10):
            results.append(await fine.switch(1, i % 2 == 0))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_switching)
            with pytest.raises(HardwareTimeout):
                await hung.switch(1, True)
    finally:
        bus.hang("a", False)
    assert results == [True, False] * 5
    assert bus.board("a")["mask"] == 0


async def test_set_board_id(bus: MemoryBus) -> None:
    bus.add("hid", boards.usbrelay("a", id="HURTM", path="/dev/hidraw4", usb_port="1-2.1"))
    bus.add("hid", boards.usbrelay("b", id="HURTM", path="/dev/hidraw5", usb_port="1-2.2"))
    bus.update("b", mask=0b11)
    with pytest.raises(AmbiguousBoardError, match=r"/dev/hidraw4.*/dev/hidraw5"):
        set_board_id(Selector(id="HURTM"), "NEW01")
    with pytest.raises(OptionError):
        set_board_id(Selector(usb_port="1-2.2"), "TOO LONG")
    set_board_id(Selector(usb_port="1-2.2"), "NEW01")
    assert sent(bus, "b") == [[0, 0xFA, *b"NEW01", 0, 0]]
    with pytest.raises(OperationError, match="has ID 'NEW01' already"):
        set_board_id(Selector(id="HURTM"), "NEW01")
    bus.unplug("b")
    bus.replug("b", path="/dev/hidraw7")
    assert bus.board("b")["id"] == "NEW01"  # kept across power loss
    dev = relay({"id": "NEW01"})
    assert await dev.switch(1, True) is True
    assert (bus.board("a")["mask"], bus.board("b")["mask"]) == (0, 1)

"""labpower-discover against a fake USB world: what it lists, and that it switches nothing."""

from __future__ import annotations

import json
import tomllib

import pytest
from labpower.backends import discover
from labpower.backends.fakes import MemoryBus, boards


@pytest.fixture
def lab(bus: MemoryBus) -> MemoryBus:
    bus.add(
        "hid", boards.usbrelay("r1", id="AAAAA", relays=4, path="/dev/hidraw3", usb_port="1-2.1")
    )
    bus.add("hid", boards.usbrelay("d1", id="HURTM", path="/dev/hidraw4", usb_port="1-2.2"))
    bus.add("hid", boards.usbrelay("d2", id="HURTM", path="/dev/hidraw5", usb_port="1-2.3"))
    bus.update("r1", mask=0b0101)
    bus.add("hid", boards.lcus_hid("l", path="/dev/hidraw6", usb_port="1-3"))
    bus.add(
        "hid",
        boards.ykush("y", serial="YK20001", model="YKUSH3", path="/dev/hidraw7", usb_port="1-4"),
    )
    bus.add("hubs", boards.hub("h2", location="1-5", ports=4))
    bus.add("hubs", boards.hub("h3", location="2-1", usb3=True, ports=4))
    bus.add("hubs", boards.hub("ganged", location="1-10", per_port=False))
    bus.add(
        "serial",
        boards.serial_port(
            "ch340",
            "/dev/ttyUSB0",
            vid=0x1A86,
            pid=0x7523,
            location="1-7:1.0",
            by_path="pci-0000:00:14.0-usb-0:7:1.0-port0",
        ),
    )
    bus.add(
        "serial",
        boards.serial_port(
            "numato",
            "/dev/ttyACM0",
            vid=0x2A19,
            pid=0x0C05,
            serial_number="NL1234",
            product="Numato Lab 8 Channel USB Relay Module",
            location="1-8:1.0",
            by_id="usb-Numato_Lab_8_Channel_USB_Relay_Module_NL1234-if00",
        ),
    )
    bus.add(
        "serial",
        boards.serial_port(
            "ftdi",
            "/dev/ttyUSB1",
            vid=0x0403,
            pid=0x6001,
            serial_number="A10K2Z",
            location="1-9:1.0",
            by_id="usb-FTDI_FT232R_USB_UART_A10K2Z-if00-port0",
        ),
    )
    bus.add(
        "serial",
        boards.serial_port("dev", "/dev/ttyACM1", vid=0x04D8, pid=0xFFEE, serial_number="00012345"),
    )
    bus.add(
        "serial",
        boards.serial_port(
            "kmt",
            "/dev/ttyUSB2",
            vid=0x0403,
            pid=0x6001,
            serial_number="KMT77",
            product="KMTronic USB Relay",
            location="1-11:1.0",
        ),
    )
    bus.add("serial", boards.serial_port("modem", "/dev/ttyACM2", vid=0x1234, pid=0x5678))
    bus.clear_log()
    return bus


def test_lists_every_family_with_keys(lab: MemoryBus, capsys: pytest.CaptureFixture[str]) -> None:
    assert discover.main(["--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    by = {(f["backend"] or f["chip"], f["keys"].get("usb_port")): f for f in found}
    assert sorted(by) == sorted(
        [
            ("CH340", "1-7"),
            ("numato", "1-8"),
            ("FT232R", "1-9"),
            ("kmtronic", "1-11"),
            ("devantech", "1-6"),
            ("usbrelay", "1-2.1"),
            ("usbrelay", "1-2.2"),
            ("usbrelay", "1-2.3"),
            ("lcus-hid", "1-3"),
            ("ykush", "1-4"),
            ("usbhub", "1-5"),
            ("usbhub", "2-1"),
        ]
    )
    relay = by["usbrelay", "1-2.1"]
    assert relay["options"] == {"id": "AAAAA"}
    assert relay["channels"] == 4
    assert relay["keys"] == {"path": "/dev/hidraw3", "usb_port": "1-2.1", "id": "AAAAA"}
    assert relay["state"] == {"1": True, "2": False, "3": True, "4": False}
    # duplicated IDs: selected by port, with the way out
    dup = by["usbrelay", "1-2.2"]
    assert dup["options"] == {"usb_port": "1-2.2"}
    assert "--set-id" in " ".join(dup["notes"])
    assert by["ykush", "1-4"]["options"] == {"serial": "YK20001"}
    assert by["lcus-hid", "1-3"]["options"] == {"usb_port": "1-3"}
    assert by["usbhub", "2-1"]["options"] == {"hub": "2-1"}
    assert by["usbhub", "2-1"]["channels"] == 4
    # shared chips: listed once, as the chip, with every backend that may drive it; none chosen
    ch340 = by["CH340", "1-7"]
    assert ch340["options"] == {"port": "/dev/serial/by-path/pci-0000:00:14.0-usb-0:7:1.0-port0"}
    assert (ch340["backend"], ch340["candidates"]) == (None, ["lcus", "modbus"])
    ftdi = by["FT232R", "1-9"]
    assert (ftdi["backend"], ftdi["candidates"]) == (None, ["kmtronic", "modbus"])
    assert ftdi["options"]["port"] == "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K2Z-if00-port0"
    # ... unless the product string names the board
    named = by["kmtronic", "1-11"]
    assert (named["chip"], named["candidates"]) == (None, ["kmtronic"])
    numato = by["numato", "1-8"]
    assert numato["options"]["port"].startswith("/dev/serial/by-id/usb-Numato")
    assert numato["keys"]["serial"] == "NL1234"
    assert numato["candidates"] == ["numato"]


def test_toml_output_is_a_config(lab: MemoryBus, capsys: pytest.CaptureFixture[str]) -> None:
    assert discover.main([]) == 0
    doc = tomllib.loads(capsys.readouterr().out)
    devices = doc["devices"]
    assert devices["usbrelay-AAAAA"] == {"backend": "usbrelay", "id": "AAAAA", "channels": 4}
    assert devices["ykush-YK20001"] == {"backend": "ykush", "serial": "YK20001", "channels": 3}
    assert devices["usbhub-1-5"] == {"backend": "usbhub", "hub": "1-5", "channels": 4}
    # the two shared-chip ports are commented out: the user picks their backend
    assert len(devices) == 10
    assert not any(name.startswith(("ch340", "ft232r")) for name in devices)


def test_a_shared_chip_is_offered_not_chosen(
    lab: MemoryBus, capsys: pytest.CaptureFixture[str]
) -> None:
    assert discover.main([]) == 0
    out = capsys.readouterr().out
    block = next(b for b in out.split("\n\n") if b.startswith("# CH340 USB serial adapter"))
    assert "#   may be: lcus, modbus" in block
    # uncommenting the table makes a config: the first candidate, the others in a comment
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# [devices."))
    table = "\n".join(line.removeprefix("# ") for line in lines[start:])
    device = tomllib.loads(table)["devices"]["ch340-1-7"]
    assert device == {
        "backend": "lcus",
        "port": "/dev/serial/by-path/pci-0000:00:14.0-usb-0:7:1.0-port0",
        "channels": 1,
    }
    assert '# backend = "lcus"  # or "modbus"' in block


def test_discovery_switches_nothing(lab: MemoryBus, capsys: pytest.CaptureFixture[str]) -> None:
    before = {k: lab.board(k) for k in ("r1", "d1", "l", "y", "h2", "h3")}
    assert discover.main([]) == 0
    log = lab.log()
    assert {e["call"] for e in log} <= {"open", "close", "get_feature_report", "ctrl_transfer"}
    assert all(e["data"][0] & 0x80 for e in log if e["call"] == "ctrl_transfer")  # IN only
    assert {k: lab.board(k) for k in before} == before


def test_set_id_through_the_command(lab: MemoryBus, capsys: pytest.CaptureFixture[str]) -> None:
    assert discover.main(["--set-id", "NEW01", "--id", "HURTM"]) == 1
    err = capsys.readouterr().err
    assert "/dev/hidraw4" in err
    assert "/dev/hidraw5" in err
    assert discover.main(["--set-id", "NEW01"]) == 2
    assert discover.main(["--set-id", "NEW01", "--usb-port", "1-2.3"]) == 0
    assert "ID is now 'NEW01'" in capsys.readouterr().out
    assert (lab.board("d1")["id"], lab.board("d2")["id"]) == ("HURTM", "NEW01")


def test_nothing_plugged(bus: MemoryBus, capsys: pytest.CaptureFixture[str]) -> None:
    assert discover.main([]) == 0
    assert capsys.readouterr().out == "# no supported board found\n"

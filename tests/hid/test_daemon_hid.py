"""HID relays and hub ports through the real daemon and client, on fake USB boards.

The daemon is a child process started through the fakes' testing entry point
(``python -m labpower.backends.fakes BUS_FILE labpower.daemon ...``); it reaches the fake
boards through a shared state file (:class:`labpower.backends.fakes.FileBus`), which the
test uses to plug,
unplug, replug and hang boards and to read every byte each board received.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from labpower.backends.fakes import FileBus, boards, launcher
from labpower.client import Client, DeviceUnavailable, Timeout
from labpower.daemon.testing import DaemonProcess

StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture
def usb(tmp_path: Path) -> FileBus:
    """The fake USB world: two dcttech boards, a YKUSH, an LCUS HID, a USB 2 and a USB 3 hub."""
    bus = FileBus(tmp_path / "usb.json", create=True)
    bus.add("hid", boards.usbrelay("r1", id="AAAAA", path="/dev/hidraw3", usb_port="1-2.1"))
    bus.add(
        "hid", boards.usbrelay("r2", id="BBBBB", relays=4, path="/dev/hidraw4", usb_port="1-2.2")
    )
    bus.add("hid", boards.ykush("y", serial="YK20001", path="/dev/hidraw5", usb_port="1-3"))
    bus.add("hid", boards.lcus_hid("l", relays=2, path="/dev/hidraw6", usb_port="1-4"))
    bus.add("hubs", boards.hub("h2", location="1-5", ports=4))
    bus.add("hubs", boards.hub("h3", location="2-1", usb3=True, ports=4))
    return bus


def config(devices: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Devices as given, and a target ``<device><channel>`` for each channel."""
    targets = {
        f"{name}{ch}": {"device": name, "channel": ch}
        for name, dev in devices.items()
        for ch in range(1, dev["channels"] + 1)
    }
    return {"devices": devices, "targets": targets}


def start(start_daemon: StartDaemon, usb: FileBus, devices: dict[str, dict[str, Any]]) -> Client:
    proc = start_daemon(config(devices), launcher=launcher(usb.path))
    return proc.client(timeout=10.0)


def written(usb: FileBus, key: str) -> list[list[int]]:
    """Every report written to a board and every hub request that sets something."""
    return [
        e["data"]
        for e in usb.log(key)
        if e["call"] in ("send_feature_report", "write")
        or (e["call"] == "ctrl_transfer" and e["data"][0] == 0x23)
    ]


def switching(usb: FileBus, key: str) -> list[list[int]]:
    """What of :func:`written` switches an output (YKUSH queries and set-ID do not)."""
    model = usb.board(key)["model"]
    return [
        d
        for d in written(usb, key)
        if (model == "usbrelay" and d[1] in (0xFF, 0xFD, 0xFE, 0xFC))
        or (model == "ykush" and d[1] >> 4 in (0, 1))
        or model in ("lcus-hid", "hub")
    ]


ALL = {
    "relay": {"backend": "usbrelay", "id": "AAAAA", "channels": 2},
    "relay4": {"backend": "usbrelay", "path": "/dev/hidraw4", "channels": 4},
    "ykush": {"backend": "ykush", "serial": "YK20001", "channels": 3},
    "lcus": {"backend": "lcus-hid", "usb_port": "1-4", "channels": 2},
    "hub": {"backend": "usbhub", "hub": "1-5", "channels": 4},
    "hub3": {"backend": "usbhub", "hub": "2-1", "channels": 4},
}


def test_every_backend_switches_and_reads_back(start_daemon: StartDaemon, usb: FileBus) -> None:
    with start(start_daemon, usb, ALL) as lab:
        assert all(t.available for t in lab.targets())
        assert all(switching(usb, k) == [] for k in ("r1", "r2", "y", "l", "h2", "h3"))
        for name in ("relay2", "relay43", "ykush2", "hub3", "hub33"):
            on = lab.target(name).on()
            assert (on.state, on.verified) == ("on", True), name
            off = lab.target(name).off()
            assert (off.state, off.verified) == ("off", True), name
        lab.target("relay1").on()
        lab.target("relay43").on()
        assert lab.target("relay1").state().state == "on"
        blind = lab.target("lcus2").on()
        assert (blind.state, blind.verified) == ("on", False)
    assert usb.board("r1")["mask"] == 0b01
    assert usb.board("r2")["mask"] == 0b100
    assert usb.board("y")["ports"] == [True, False, True]
    assert usb.board("l")["state"] == [False, True]
    assert usb.board("h2")["power"] == [True, True, False, True]
    assert usb.board("h3")["power"] == [True, True, False, True]
    assert switching(usb, "l") == [[0, 0xA0, 2, 1, 0xA3]]
    assert switching(usb, "r1") == [
        [0, 0xFF, 2, 0, 0, 0, 0, 0, 0],
        [0, 0xFD, 2, 0, 0, 0, 0, 0, 0],
        [0, 0xFF, 1, 0, 0, 0, 0, 0, 0],
    ]
    assert [d[:4] for d in switching(usb, "h3")] == [[0x23, 3, 8, 3], [0x23, 1, 8, 3]]


def test_duplicate_ids_refused_naming_both(start_daemon: StartDaemon, usb: FileBus) -> None:
    usb.update("r2", id="AAAAA")
    devices = {
        "dup": {"backend": "usbrelay", "id": "AAAAA", "channels": 2},
        "byport": {"backend": "usbrelay", "id": "AAAAA", "usb_port": "1-2.2", "channels": 2},
    }
    with start(start_daemon, usb, devices) as lab:
        assert not lab.target("dup1").state().available
        with pytest.raises(DeviceUnavailable) as info:
            lab.target("dup1").on()
        reason = info.value.parameters["reason"]
        assert "/dev/hidraw3" in reason
        assert "/dev/hidraw4" in reason
        assert "usb_port" in reason
        assert lab.target("byport1").on().state == "on"
    assert switching(usb, "r1") == []
    assert usb.board("r2")["mask"] == 1


def test_unplug_and_replug_under_new_node(start_daemon: StartDaemon, usb: FileBus) -> None:
    with start(start_daemon, usb, {k: ALL[k] for k in ("relay", "hub")}) as lab:
        assert lab.target("relay1").on().verified
        assert lab.target("hub1").off().state == "off"
        usb.unplug("r1")
        usb.unplug("h2")
        with pytest.raises(DeviceUnavailable):
            lab.target("relay1").on()
        with pytest.raises(DeviceUnavailable):
            lab.target("hub1").on()
        assert not lab.target("relay1").state().available
        usb.clear_log()
        usb.replug("r1", path="/dev/hidraw9")
        usb.replug("h2")  # new devnum
        # the relay lost power with its board: it reads off; nothing switched it on again
        after = lab.target("relay1").state()
        assert (after.state, after.verified, after.available) == ("off", True, True)
        assert lab.target("hub1").state().state == "off"
        assert switching(usb, "r1") == []
        assert switching(usb, "h2") == []
        assert lab.target("relay2").on().verified
        assert lab.target("hub1").on().state == "on"
    assert switching(usb, "r1") == [[0, 0xFF, 2, 0, 0, 0, 0, 0, 0]]


@pytest.mark.timing
def test_hung_board_times_out_while_others_switch(start_daemon: StartDaemon, usb: FileBus) -> None:
    devices = {
        "stuck": {"backend": "usbrelay", "usb_port": "1-2.1", "channels": 2, "timeout": 2.0},
        "fine": {"backend": "usbrelay", "id": "BBBBB", "channels": 4},
        "hub": {"backend": "usbhub", "hub": "1-5", "channels": 4},
    }
    proc = start_daemon(config(devices), launcher=launcher(usb.path))
    usb.hang("r1")
    outcome: list[BaseException | float] = []

    def hung_call() -> None:
        with proc.client(timeout=10.0) as c:
            try:
                c.target("stuck1").on()
            except Timeout as exc:
                outcome.append(exc)
            outcome.append(time.monotonic())

    thread = threading.Thread(target=hung_call)
    try:
        with proc.client(timeout=10.0) as lab:
            thread.start()
            # wait until the hung call reached the board, then switch the others meanwhile
            deadline = time.monotonic() + 5
            while not any(e["call"] == "open" for e in usb.log("r1")[-1:]):
                assert time.monotonic() < deadline, "the call never reached the board"
                time.sleep(0.01)
            for _ in range(5):
                assert lab.target("fine1").on().state == "on"
                assert lab.target("fine1").off().state == "off"
                assert lab.target("hub2").off().state == "off"
                assert lab.target("hub2").on().state == "on"
            done = time.monotonic()
            thread.join(10)
            assert isinstance(outcome[0], Timeout)
            assert outcome[0].parameters["seconds"] == 2.0
            # the other boards were served while the stuck call was waiting for its board
            assert isinstance(outcome[1], float)
            assert outcome[1] >= done
    finally:
        usb.hang("r1", False)
        thread.join(10)
    assert len(switching(usb, "r2")) == 10
    assert len(switching(usb, "h2")) == 10


def run_discover(usb: FileBus, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *launcher(usb.path), "labpower.backends.discover", *args],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_discover_and_set_id_then_serve(start_daemon: StartDaemon, usb: FileBus) -> None:
    usb.update("r2", id="AAAAA")
    usb.add(
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
    usb.clear_log()
    listed = run_discover(usb, "--json")
    assert listed.returncode == 0, listed.stderr
    found = {
        (f["backend"] or f["chip"], f["keys"].get("usb_port")) for f in json.loads(listed.stdout)
    }
    # the CH340 is a shared chip: listed as the chip, the config picks its backend
    assert found == {
        ("CH340", "1-7"),
        ("usbrelay", "1-2.1"),
        ("usbrelay", "1-2.2"),
        ("ykush", "1-3"),
        ("lcus-hid", "1-4"),
        ("usbhub", "1-5"),
        ("usbhub", "2-1"),
    }
    assert all(switching(usb, k) == [] for k in ("r1", "r2", "y", "l", "h2", "h3"))

    refused = run_discover(usb, "--set-id", "CCCCC", "--id", "AAAAA")
    assert refused.returncode == 1
    assert "/dev/hidraw3" in refused.stderr
    assert "/dev/hidraw4" in refused.stderr
    done = run_discover(usb, "--set-id", "CCCCC", "--usb-port", "1-2.2")
    assert done.returncode == 0, done.stderr
    assert written(usb, "r2") == [[0, 0xFA, *b"CCCCC", 0, 0]]

    snippet = tomllib.loads(run_discover(usb).stdout)
    relays = {k: v for k, v in snippet["devices"].items() if v["backend"] == "usbrelay"}
    assert sorted(d.get("id") for d in relays.values()) == ["AAAAA", "CCCCC"]
    with start(start_daemon, usb, relays) as lab:
        assert lab.target("usbrelay-CCCCC3").on().verified
    assert usb.board("r2")["mask"] == 0b100
    assert usb.board("r1")["mask"] == 0

"""The modbus backend through the real daemon and client, against pymodbus's own server over
loopback TCP and a pty pair (RTU): switching, read-back, a silent board, and no write on
start, stop, kill or restart (checked in the server's record of requests)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labpower.client.errors import DeviceError, Timeout
from labpower.daemon.config import ConfigError, parse
from labpower.daemon.testing import DaemonProcess, serve

from .modbus_server import ModbusServer, running

TIMEOUT = 0.5


@pytest.fixture(params=["tcp", "rtu"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ModbusServer]:
    with running(request.param, tmp_path, baudrate=115200) as s:
        yield s


def config(server: ModbusServer, **options: Any) -> dict[str, Any]:
    device = {"backend": "modbus", "channels": 8, "timeout": TIMEOUT, **server.options()}
    return {
        "daemon": {"log_level": "debug"},
        "devices": {"coils": {**device, **options}},
        "targets": {f"dut{ch}": {"device": "coils", "channel": ch} for ch in range(1, 9)},
    }


def test_on_off_through_the_daemon(server: ModbusServer) -> None:
    server.set_coil(4, True)
    with serve(config(server)) as lab:
        # the state of a coil set before the daemon started is read from the board
        five = lab.target("dut5").state()
        assert (five.state, five.verified, five.available) == ("on", True, True)
        assert server.writes == []
        on = lab.on("dut2")
        assert (on.state, on.verified) == ("on", True)
        assert lab.off("dut5").state == "off"
        assert server.coils(0, 8) == [False, True] + [False] * 6
    assert [(w.address, w.values) for w in server.writes] == [(1, [True]), (4, [False])]


def test_silent_board_is_a_timeout_then_recovers(server: ModbusServer) -> None:
    with serve(config(server)) as lab:
        server.fault = "silent"
        with pytest.raises(Timeout):
            lab.on("dut1")
        assert lab.target("dut1").state().available is False
        server.fault = None
        assert lab.on("dut1").state == "on"
    assert server.coils(0, 1) == [True]


def test_exception_answer_is_a_device_error(server: ModbusServer) -> None:
    with serve(config(server)) as lab:
        server.fault = "exception"
        with pytest.raises(DeviceError, match="exception 4"):
            lab.on("dut3")


def test_start_stop_kill_restart_write_nothing(server: ModbusServer, tmp_path: Path) -> None:
    directory = tmp_path / "daemon"
    directory.mkdir()
    first = DaemonProcess(config(server), directory=str(directory))
    first.start()
    with first.client() as lab:
        lab.on("dut1")
        lab.on("dut8")
    asked = list(server.writes)
    first.signal(signal.SIGKILL)
    assert first.proc is not None
    first.proc.wait(10)
    second = DaemonProcess(config(server), directory=str(directory))
    second.start()
    with second.client() as lab:
        states = {t.name: t.state for t in lab.targets()}
    assert states["dut1"] == states["dut8"] == "on"
    assert states["dut2"] == "off"
    assert second.stop() == 0
    first.cleanup()
    second.cleanup()
    assert server.writes == asked
    assert server.coils(0, 8) == [True] + [False] * 6 + [True]


@pytest.mark.parametrize(
    ("device", "key", "reason"),
    [
        ({"host": "h", "profile": "waveshare", "channels": 33}, "profile", "at most 32"),
        ({"host": "h", "addresses": [1, 2], "channels": 3}, "addresses", "2 addresses"),
        ({"host": "h", "port": "/dev/ttyUSB0"}, "host", "exactly one of host"),
        ({"host": "h", "unit": 300}, "unit", "0..255"),
    ],
)
def test_config_errors_name_file_and_key(device: dict[str, Any], key: str, reason: str) -> None:
    data = {
        "devices": {"coils": {"backend": "modbus", **device}},
        "targets": {"dut": {"device": "coils", "channel": 1}},
    }
    with pytest.raises(ConfigError, match=reason) as caught:
        parse(data, "lab.toml")
    assert str(caught.value).startswith(f"lab.toml: devices.coils.{key}: ")

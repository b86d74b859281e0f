"""labpowerd runs on asyncio (the default) and on trio alike (``--async-backend``)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from labpower.client import Client, TargetNotFound
from labpower.daemon.testing import DaemonProcess

CONFIG = {
    "devices": {"bench": {"backend": "mock", "channels": 2}},
    "targets": {
        "dut1": {"device": "bench", "channel": 1},
        "dut2": {"device": "bench", "channel": 2},
    },
}


@pytest.fixture(params=["asyncio", "trio"])
def daemon(request: pytest.FixtureRequest) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(CONFIG, args=("--async-backend", request.param))
    proc.start()
    yield proc
    assert proc.stop() == 0
    proc.cleanup()


def test_switch_read_back_and_errors(daemon: DaemonProcess) -> None:
    with daemon.client() as lab:
        assert lab.on("dut1").state == "on"
        assert lab.get("dut1").verified
        assert [r.voltage for r in lab.read("dut2", count=2, interval=0.001)] == [0.0, 5.0]
        with pytest.raises(TargetNotFound):
            lab.on("nope")
        assert lab.off("dut1").state == "off"


def test_log_stream_and_concurrent_clients(
    daemon: DaemonProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        daemon.client() as lab,
        daemon.client() as other,
        lab.log_stream(),
        caplog.at_level(logging.INFO),
    ):
        lab.on("dut2")
        messages = [r.getMessage() for r in caplog.records if r.name == "labpower.remote.dut2"]
        assert messages[0] == "power on"
        assert other.get("dut2").state == "on"


def test_bad_input_closes_only_that_connection(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as lab:
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(10)
        raw.connect(daemon.socket_path)
        raw.sendall(b"{not json\0")
        assert raw.recv(100) == b""  # closed, no reply
        raw.close()
        assert lab.on("dut1").state == "on"

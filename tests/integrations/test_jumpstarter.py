"""The Jumpstarter driver, served by Jumpstarter's own serve() and used through PowerClient."""

from __future__ import annotations

import logging
import threading

import pytest
from jumpstarter.client.core import DriverError
from jumpstarter.common.utils import serve
from jumpstarter_driver_power.client import PowerClient
from labpower.client.jumpstarter import LabpowerPower
from labpower.daemon.testing import DaemonProcess

from tests.conftest import StartDaemon
from tests.integrations.conftest import HOST1

WAIT = 20.0


class _Seen(logging.Handler):
    """Sets an event when a record with the given message arrives."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.event.set()


def _driver(target: str, host: DaemonProcess) -> LabpowerPower:
    # mypy counts the gRPC servicer methods that Jumpstarter's Driver base provides at run
    # time as abstract
    return LabpowerPower(target=target, socket=host.socket_path)  # type: ignore[abstract]


@pytest.fixture
def host(start_daemon: StartDaemon) -> DaemonProcess:
    return start_daemon(HOST1)


def test_power_client_switches_and_reads(host: DaemonProcess) -> None:
    with serve(_driver("dut1", host)) as client:
        assert isinstance(client, PowerClient)
        client.on()
        with host.client() as lab:
            assert lab.get("dut1").state == "on"
            client.off()
            assert lab.get("dut1").state == "off"
        readings = [list(client.read()) for _ in range(2)]
        assert [[(r.voltage, r.current) for r in rs] for rs in readings] == [
            [(0.0, 0.0)],
            [(5.0, 2.0)],
        ]


def test_log_stream(host: DaemonProcess, caplog: pytest.LogCaptureFixture) -> None:
    """Jumpstarter's log-stream pattern: on() shows "power on" through the log stream; the
    test waits for that record rather than sleeping."""
    exporter_log = logging.getLogger("exporter:driver")
    with (
        serve(_driver("dut1", host)) as client,
        caplog.at_level(logging.INFO, logger="exporter:driver"),
        client.log_stream(),
    ):
        for action, message in ((client.on, "power on"), (client.off, "power off")):
            seen = _Seen(message)
            exporter_log.addHandler(seen)
            try:
                action()
                assert seen.event.wait(WAIT), f"no {message!r} in the log stream"
            finally:
                exporter_log.removeHandler(seen)
            assert message in caplog.text


def test_errors_reach_the_jumpstarter_client(host: DaemonProcess) -> None:
    with (
        serve(_driver("dut99", host)) as client,
        pytest.raises(DriverError, match="no target named 'dut99'"),
    ):
        client.on()

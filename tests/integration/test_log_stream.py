"""The log-stream test users know from Jumpstarter, done right.

Inside ``log_stream()``, ``on()`` yields an INFO record "power on" on
``labpower.remote.<target>`` that pytest's caplog has captured by the time the call returns:
no sleep, no flush, and no record twice (no echo loop, not even with the daemon in-process,
where the daemon's own loggers and the re-emitted records share one logging tree).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from labpower.client import Client, DeviceUnavailable
from labpower.daemon.testing import DaemonProcess, serve

from ..conftest import mock_config


@pytest.fixture(params=["child", "in-process"])
def lab(request: pytest.FixtureRequest) -> Iterator[Client]:
    if request.param == "child":
        daemon: DaemonProcess = request.getfixturevalue("daemon")
        with daemon.client(timeout=10.0) as client:
            yield client
    else:
        with serve(mock_config(), in_process=True, timeout=10.0) as client:
            yield client


def _remote(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("labpower.remote") and r.getMessage() == message
    ]


def test_on_and_off_show_up_as_log_records(lab: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), lab.log_stream():
        dut = lab.target("dut1")
        dut.on()
        (on,) = _remote(caplog, "power on")
        assert on.name == "labpower.remote.dut1"
        assert on.levelno == logging.INFO
        assert on.target == "dut1"  # type: ignore[attr-defined]  # forwarded entry fields
        assert on.device == "bench"  # type: ignore[attr-defined]
        assert isinstance(on.seq, int)  # type: ignore[attr-defined]

        dut.off()
        (off,) = _remote(caplog, "power off")
        assert off.name == "labpower.remote.dut1"
        assert off.seq > on.seq  # type: ignore[attr-defined]
        assert len(_remote(caplog, "power on")) == 1, "a record came back twice"

        dut.on()
        assert len(_remote(caplog, "power on")) == 2
        assert len(_remote(caplog, "power off")) == 1

    # nothing arrives after the stream closed, and no record is emitted twice
    seqs = [r.__dict__["seq"] for r in caplog.records if r.name.startswith("labpower.remote")]
    assert len(seqs) == len(set(seqs))
    lab.off("dut1")
    assert len(_remote(caplog, "power off")) == 1


def test_forwarded_records_do_not_reach_the_daemons_log(
    lab: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """An echo loop would put the re-emitted "power on" back into the daemon's history."""
    with caplog.at_level(logging.INFO), lab.log_stream():
        lab.on("dut2")
        lab.on("dut2")
    history = [e.message for e in lab.history(targets=["dut2"])]
    assert history.count("power on") == 2
    assert len(_remote(caplog, "power on")) == 2


def test_stream_filter_by_target_and_level(lab: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), lab.log_stream(targets=["dut2"], level="info"):
        lab.on("dut1")  # filtered out, but the call still waits for its entries
        lab.on("dut2")
    names = {r.name for r in caplog.records if r.name.startswith("labpower.remote")}
    assert names == {"labpower.remote.dut2"}
    assert len(_remote(caplog, "power on")) == 1


def test_error_entries_arrive_at_their_level(lab: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), lab.log_stream():
        with pytest.raises(DeviceUnavailable, match="unplugged"):
            lab.on("gone")
        lab.on("dut1")  # its entries come after the failure's: all of them are here now
    errors = [
        r for r in caplog.records if r.name == "labpower.remote.gone" and r.levelno == logging.ERROR
    ]
    assert len(errors) == 1
    assert "unplugged" in errors[0].getMessage()

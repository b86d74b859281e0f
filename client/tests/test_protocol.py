"""What both clients share: where the socket is, parameter checks, and how daemon log entries
become Python log records."""

from __future__ import annotations

import logging

import pytest
from labpower.client import LogEntry, TargetNotFound
from labpower.client import _protocol as p
from labpower.client.wire import Reply


def test_socket_argument_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABPOWER_SOCKET", raising=False)
    assert p.socket_path(None) == "/run/labpower/labpower.sock"
    monkeypatch.setenv("LABPOWER_SOCKET", "/tmp/env.sock")
    assert p.socket_path(None) == "/tmp/env.sock"
    assert p.socket_path("/tmp/arg.sock") == "/tmp/arg.sock"
    monkeypatch.setenv("LABPOWER_SOCKET", "")
    assert p.socket_path(None) == "/run/labpower/labpower.sock"


def test_read_parameters() -> None:
    assert p.read_parameters("dut1", 1, None) == {"target": "dut1", "count": 1}
    assert p.read_parameters("dut1", None, 0.5) == {"target": "dut1", "interval": 0.5}
    with pytest.raises(ValueError, match="count"):
        p.read_parameters("dut1", 0, None)


def test_filter_parameters() -> None:
    assert p.filter_parameters(None, None) == {}
    assert p.filter_parameters(("a", "b"), "warning") == {"targets": ["a", "b"], "level": "warning"}
    with pytest.raises(ValueError, match="level"):
        p.filter_parameters(None, "loud")


def _entry(**fields: object) -> LogEntry:
    wire = {"time": "2025-01-01T00:00:00Z", "level": "info", "message": "power on", "seq": 3}
    wire.update(fields)
    return LogEntry.from_wire(wire)


def test_entry_filter() -> None:
    accept = p.EntryFilter(["dut1"], "warning")
    assert not accept(_entry(target="dut1"))
    assert accept(_entry(target="dut1", level="error"))
    assert not accept(_entry(target="dut2", level="error"))
    assert p.EntryFilter(None, None)(_entry())
    with pytest.raises(ValueError, match="level"):
        p.EntryFilter(None, "loud")


def test_check_raises_the_error_of_the_reply() -> None:
    assert p.check(Reply({"x": 1})) == {"x": 1}
    with pytest.raises(TargetNotFound):
        p.check(Reply({"target": "x"}, error="io.labpower.Power.TargetNotFound"))


def test_emit_on_the_targets_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        p.emit(_entry(target="dut1", device="bench", channel=1, op="on"))
    (record,) = caplog.records
    assert record.name == "labpower.remote.dut1"
    assert (record.levelno, record.getMessage()) == (logging.INFO, "power on")
    fields = record.__dict__
    assert (fields["target"], fields["device"], fields["seq"]) == ("dut1", "bench", 3)
    assert (fields["channel"], fields["op"]) == (1, "on")
    assert fields["daemon_time"] == "2025-01-01T00:00:00Z"


def test_emit_daemon_wide_entry(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        p.emit(_entry(message="serving", level="warning"))
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("labpower.remote", logging.WARNING)


def test_emit_never_overwrites_record_attributes(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        p.emit(_entry(target="dut1", name="evil", msg="evil", levelname="evil", lineno=1))
    (record,) = caplog.records
    assert record.name == "labpower.remote.dut1"
    assert record.getMessage() == "power on"
    assert record.levelname == "INFO"


def test_emit_respects_the_loggers_level(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        p.emit(_entry(target="dut1"))
    assert caplog.records == []

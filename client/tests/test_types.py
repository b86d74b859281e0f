"""The values the daemon returns, parsed from the wire: Target, Reading, LogEntry."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from labpower.client import LogEntry, Reading, Target
from labpower.client.types import LEVELS, level_name
from labpower.client.wire import RemoteProtocolError

TARGET: dict[str, Any] = {
    "name": "dut1",
    "device": "bench",
    "channel": 1,
    "state": "on",
    "verified": True,
    "available": True,
    "since": "2025-01-01T00:00:00.000000Z",
}


def test_target_from_wire() -> None:
    t = Target.from_wire(TARGET)
    assert t == Target("dut1", "bench", 1, "on", True, True, "2025-01-01T00:00:00.000000Z")
    assert t.is_on
    assert t.to_dict().items() >= TARGET.items()


def test_target_since_may_be_missing_or_null() -> None:
    assert Target.from_wire({**TARGET, "since": None}).since is None
    without = dict(TARGET)
    del without["since"]
    assert Target.from_wire(without).since is None


def test_target_ignores_fields_it_does_not_know() -> None:
    assert Target.from_wire({**TARGET, "new_field": 1}).name == "dut1"


@pytest.mark.parametrize(
    "change",
    [
        {"state": "maybe"},
        {"state": None},
        {"name": 1},
        {"channel": "1"},
        {"channel": True},
        {"verified": "yes"},
        {"available": None},
    ],
)
def test_target_refuses_bad_fields(change: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        Target.from_wire({**TARGET, **change})


@pytest.mark.parametrize("obj", [None, [], "dut1"])
def test_target_must_be_an_object(obj: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        Target.from_wire(obj)


def test_target_is_frozen() -> None:
    t = Target.from_wire(TARGET)
    with pytest.raises(AttributeError):
        t.state = "off"  # type: ignore[misc]


def test_reading_from_wire_makes_floats() -> None:
    r = Reading.from_wire({"voltage": 5, "current": 2, "apparent_power": 10})
    assert r == Reading(5.0, 2.0, 10.0)
    assert all(isinstance(v, float) for v in r.to_dict().values())
    assert r.to_dict() == {"voltage": 5.0, "current": 2.0, "apparent_power": 10.0}


@pytest.mark.parametrize(
    "obj",
    [
        {"voltage": 5.0, "current": 2.0},
        {"voltage": "5", "current": 2.0, "apparent_power": 10.0},
        None,
    ],
)
def test_reading_refuses_bad_input(obj: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        Reading.from_wire(obj)


def test_log_entry_from_wire_keeps_extra_fields() -> None:
    wire = {
        "time": "2025-01-01T00:00:00Z",
        "level": "warning",
        "message": "hot",
        "seq": 7,
        "target": "dut1",
        "device": "bench",
        "channel": 1,
        "op": "on",
    }
    e = LogEntry.from_wire(wire)
    assert (e.message, e.seq, e.target, e.device) == ("hot", 7, "dut1", "bench")
    assert e.extra == {"channel": 1, "op": "on"}
    assert e.levelno == logging.WARNING
    assert e.to_dict() == wire


def test_daemon_wide_log_entry() -> None:
    e = LogEntry.from_wire({"time": "t", "level": "info", "message": "serving", "seq": 1})
    assert (e.target, e.device, e.extra) == (None, None, None)


def test_unknown_level_counts_as_info() -> None:
    e = LogEntry.from_wire({"time": "t", "level": "notice", "message": "m", "seq": 1})
    assert e.levelno == logging.INFO


@pytest.mark.parametrize("change", [{"seq": "1"}, {"seq": None}, {"message": 3}, {"time": 0}])
def test_log_entry_refuses_bad_fields(change: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        LogEntry.from_wire({"time": "t", "level": "info", "message": "m", "seq": 1, **change})


def test_level_names() -> None:
    assert LEVELS == {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
    assert [level_name(n) for n in (5, 10, 15, 20, 30, 45, 50, 60)] == [
        "debug",
        "debug",
        "debug",
        "info",
        "warning",
        "error",
        "critical",
        "critical",
    ]

"""The blocking Client against a real labpowerd child process on the standard mock lab."""

from __future__ import annotations

import time

import pytest
from labpower.client import (
    Client,
    DeviceError,
    DeviceUnavailable,
    LabpowerError,
    NotSupported,
    Reading,
    StateMismatch,
    Target,
    TargetNotFound,
    VarlinkError,
)


def _messages(lab: Client, target: str) -> list[str]:
    return [e.message for e in lab.history(targets=[target])]


def test_list_names_every_configured_target(lab: Client) -> None:
    targets = {t.name: t for t in lab.targets()}
    assert set(targets) == {
        "dut1",
        "dut2",
        "inverted",
        "spare",
        "router",
        "stuck",
        "gone",
        "faulty",
        "blind",
        "nometer",
    }
    dut1 = targets["dut1"]
    assert (dut1.device, dut1.channel) == ("bench", 1)
    # the mock reports its relays: fresh state is off, and verified
    assert (dut1.state, dut1.verified, dut1.available) == ("off", True, True)
    assert dut1.since is None
    # the inverted target's relay is off, so the output is on
    assert targets["inverted"].state == "on"
    assert targets["gone"].available is False
    assert targets["blind"].verified is False


def test_get_one_target(lab: Client) -> None:
    info = lab.target("router").state()
    assert isinstance(info, Target)
    assert (info.name, info.device, info.channel, info.state) == ("router", "rack", 1, "off")


def test_on_then_off(lab: Client) -> None:
    dut = lab.target("dut1")
    on = dut.on()
    assert (on.name, on.state, on.verified, on.is_on) == ("dut1", "on", True, True)
    assert on.since is not None
    assert dut.state().state == "on"
    assert lab.get("dut2").state == "off", "switching dut1 must not touch dut2"
    off = dut.off()
    assert (off.state, off.verified, off.is_on) == ("off", True, False)
    assert dut.state().state == "off"
    entries = lab.history(targets=["dut1"])
    assert [e.message for e in entries if e.message.startswith("power")] == [
        "power on",
        "power off",
    ]
    summaries = [e for e in entries if not e.message.startswith("power")]
    assert [(e.extra or {}).get("op") for e in summaries] == ["on", "off"]
    assert [(e.extra or {}).get("state") for e in summaries] == ["on", "off"]
    assert summaries[1].message.endswith("on -> off")


@pytest.mark.timing
def test_cycle_with_delay_switches_off_then_on(lab: Client) -> None:
    dut = lab.target("dut2")
    dut.on()
    start = time.monotonic()
    result = dut.cycle(delay=0.05)
    elapsed = time.monotonic() - start
    assert result.state == "on"
    assert 0.05 <= elapsed < 0.3  # the given delay, not the default 1 s
    entries = [e for e in lab.history(targets=["dut2"]) if e.message.startswith("power")]
    assert [e.message for e in entries] == ["power on", "power off", "power on"]


def test_cycle_uses_the_targets_cycle_delay(lab: Client) -> None:
    start = time.monotonic()
    lab.cycle("dut1")  # cycle_delay = 0.3 in the config
    assert time.monotonic() - start >= 0.3
    power = [e for e in lab.history(targets=["dut1"]) if e.message.startswith("power")]
    assert [e.message for e in power] == ["power off", "power on"]
    assert [e.extra and e.extra.get("op") for e in power] == ["cycle", "cycle"]


def test_read_once(lab: Client) -> None:
    (reading,) = lab.target("dut1").read()
    assert reading == Reading(voltage=0.0, current=0.0, apparent_power=0.0)


def test_read_three_times(lab: Client) -> None:
    readings = list(lab.target("router").read(count=3, interval=0.01))
    assert readings == [Reading(0.0, 0.0, 0.0), Reading(5.0, 2.0, 10.0), Reading(5.0, 2.0, 10.0)]


def test_inverted_target_drives_the_relay_the_other_way(lab: Client) -> None:
    inverted = lab.target("inverted")
    assert inverted.off().state == "off"
    assert inverted.on().state == "on"
    # the mock logs what its relay did: off for "off" becomes "power on", and vice versa
    relay = [e.message for e in lab.history(targets=["inverted"]) if e.message.startswith("power")]
    assert relay == ["power on", "power off"]


def test_unknown_target(lab: Client) -> None:
    with pytest.raises(TargetNotFound) as info:
        lab.target("nope").on()
    assert info.value.parameters == {"target": "nope"}
    assert "nope" in str(info.value)
    with pytest.raises(TargetNotFound):
        lab.get("nope")
    with pytest.raises(TargetNotFound):
        list(lab.read("nope"))
    # the connection survives an error reply
    assert lab.get("dut1").name == "dut1"


def test_state_mismatch_when_the_board_disagrees(lab: Client) -> None:
    with pytest.raises(StateMismatch) as info:
        lab.on("stuck")
    assert info.value.parameters == {"target": "stuck", "expected": "on", "actual": "off"}
    assert lab.get("stuck").state == "off"


def test_device_unavailable(lab: Client) -> None:
    with pytest.raises(DeviceUnavailable) as info:
        lab.on("gone")
    assert info.value.parameters["device"] == "unplugged"
    assert "unplugged" in info.value.parameters["reason"]
    assert isinstance(info.value, LabpowerError)
    assert lab.get("gone").available is False


def test_device_error(lab: Client) -> None:
    with pytest.raises(DeviceError) as info:
        lab.on("faulty")
    assert info.value.name == "io.labpower.Power.DeviceError"
    assert isinstance(info.value, VarlinkError)
    assert info.value.parameters["device"] == "faulty"
    assert "injected failure" in info.value.parameters["reason"]
    # Get asks the board again, which still reports its relay off
    assert (lab.get("faulty").state, lab.get("faulty").verified) == ("off", True)


def test_not_supported(lab: Client) -> None:
    with pytest.raises(NotSupported) as info:
        list(lab.read("nometer"))
    assert info.value.parameters == {"target": "nometer", "operation": "read"}


def test_board_without_readback_reports_unverified_state(lab: Client) -> None:
    blind = lab.target("blind")
    on = blind.on()
    assert (on.state, on.verified) == ("on", False)
    assert (blind.state().state, blind.state().verified) == ("on", False)
    assert blind.off().state == "off"
    assert "(not verified)" in _messages(lab, "blind")[-1]


def test_log_seq_waits_are_unnecessary_without_a_stream(lab: Client) -> None:
    """History right after a call already holds the call's entries."""
    lab.on("spare")
    assert _messages(lab, "spare")[-1].endswith(" -> on")


def test_history_limit_and_level(lab: Client) -> None:
    lab.on("dut1")
    lab.off("dut1")
    with pytest.raises(DeviceUnavailable):
        lab.on("gone")
    last_two = lab.history(limit=2)
    everything = lab.history()
    assert [e.seq for e in last_two] == [e.seq for e in everything[-2:]]
    assert [e.seq for e in everything] == sorted(e.seq for e in everything)
    errors = lab.history(level="error")
    assert errors
    assert all(e.level == "error" for e in errors)
    assert errors[-1].target == "gone"
    with pytest.raises(ValueError, match="level"):
        lab.history(level="loud")


def test_two_clients_see_the_same_state(lab: Client, daemon: object) -> None:
    with Client(lab.path) as other:
        lab.on("router")
        assert other.get("router").state == "on"
        other.off("router")
        assert lab.get("router").state == "off"

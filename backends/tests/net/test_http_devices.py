"""Every HTTP device backend against its simulator: switching and read-back, auth, readings,
and the faults a real device shows (refused, hung, HTTP 500, cut-off JSON, an ignored switch)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import anyio
import pytest
from labpower.backends import (
    DeviceUnavailableError,
    HardwareTimeout,
    Measurement,
    NotSupportedError,
    OperationError,
)
from labpower.backends.sim.http import HttpSimulator
from labpower.backends.sim.http_devices import (
    CURRENT_ON,
    VOLTAGE,
    GudeSimulator,
    NetioSimulator,
    TasmotaSimulator,
)
from labpower.backends.sim.shelly import ShellySimulator

from .conftest import MakeDevice

pytestmark = pytest.mark.anyio
Sims = Callable[..., Any]

SIMULATORS: dict[str, type[HttpSimulator]] = {
    "shelly": ShellySimulator,
    "tasmota": TasmotaSimulator,
    "gude": GudeSimulator,
    "netio": NetioSimulator,
}
#: backends whose devices meter, and the option that makes a model without a meter
METERING = {"shelly", "tasmota", "netio", "gude"}


@pytest.fixture(params=sorted(SIMULATORS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_switch_reads_back(sims: Sims, device: MakeDevice, kind: str) -> None:
    sim = sims(SIMULATORS[kind], channels=3)
    dev = device(kind, channels=3, host=sim.address)
    assert await dev.switch(2, True) is True
    assert sim.relays == {1: False, 2: True, 3: False}
    assert await dev.states() == {1: False, 2: True, 3: False}
    assert await dev.switch(2, False) is False
    assert sim.relays[2] is False


async def test_one_channel_device(sims: Sims, device: MakeDevice, kind: str) -> None:
    sim = sims(SIMULATORS[kind], channels=1)
    dev = device(kind, host=sim.address)
    assert await dev.switch(1, True) is True
    assert await dev.state(1) is True
    assert await dev.states() == {1: True}


async def test_state_switched_behind_our_back(sims: Sims, device: MakeDevice, kind: str) -> None:
    sim = sims(SIMULATORS[kind], channels=2)
    dev = device(kind, channels=2, host=sim.address)
    sim.relays[1] = True
    assert await dev.state(1) is True
    assert await dev.states() == {1: True, 2: False}


async def test_ignored_switch_shows_in_the_read_back(
    sims: Sims, device: MakeDevice, kind: str
) -> None:
    sim = sims(SIMULATORS[kind])
    dev = device(kind, host=sim.address)
    sim.ignore_next_switch()
    assert await dev.switch(1, True) is False
    assert len(sim.switches) == 1


async def test_readings(sims: Sims, device: MakeDevice, kind: str) -> None:
    sim = sims(SIMULATORS[kind], channels=2)
    dev = device(kind, channels=2, host=sim.address)
    await dev.switch(2, True)
    assert await dev.measure(2) == Measurement(VOLTAGE, CURRENT_ON)
    assert await dev.measure(1) == Measurement(VOLTAGE, 0.0)


@pytest.mark.parametrize("kind", sorted(METERING))
async def test_no_readings_without_a_meter(sims: Sims, device: MakeDevice, kind: str) -> None:
    sim = sims(SIMULATORS[kind], metering=False)
    dev = device(kind, host=sim.address)
    with pytest.raises(NotSupportedError):
        await dev.measure(1)


async def test_password(sims: Sims, device: MakeDevice, kind: str) -> None:
    sim = sims(SIMULATORS[kind], password="s3cret")
    good = device(kind, host=sim.address, password="s3cret")
    assert await good.switch(1, True) is True
    wrong = device(kind, host=sim.address, password="wrong")
    assert not await wrong.open()
    assert "authentication failed" in (wrong.problem or "")
    with pytest.raises(DeviceUnavailableError, match="authentication failed"):
        await wrong.switch(1, False)
    assert sim.relays[1] is True
    assert "s3cret" not in repr(good.backend.options)


async def test_refused_then_back(sims: Sims, device: MakeDevice, kind: str) -> None:
    sim = sims(SIMULATORS[kind])
    dev = device(kind, host=sim.address)
    assert await dev.open()
    sim.refuse()
    assert not await dev.check()
    assert dev.problem == f"connection refused by {sim.address}"
    sim.come_back()
    assert await dev.check()
    assert await dev.switch(1, True) is True


async def test_hung_device_times_out(sims: Sims, device: MakeDevice, kind: str) -> None:
    sim = sims(SIMULATORS[kind])
    dev = device(kind, host=sim.address, timeout=0.3)
    assert await dev.open()
    sim.hang()
    with pytest.raises(HardwareTimeout):
        await dev.state(1)
    assert dev.problem == "no answer within 0.3 s"
    assert not await dev.check()
    sim.heal()
    assert await dev.check()


@pytest.mark.parametrize(("fault", "message"), [("fail", "HTTP 500"), ("truncate", "not JSON")])
async def test_bad_replies(
    sims: Sims, device: MakeDevice, kind: str, fault: str, message: str
) -> None:
    sim = sims(SIMULATORS[kind])
    dev = device(kind, host=sim.address)
    assert await dev.open()
    getattr(sim, fault)()
    with pytest.raises(OperationError, match=message):
        await dev.state(1)
    sim.heal()
    assert await dev.state(1) is False


async def test_opening_and_checking_never_switch(sims: Sims, device: MakeDevice, kind: str) -> None:
    sim = sims(SIMULATORS[kind], channels=2)
    dev = device(kind, channels=2, host=sim.address)
    assert await dev.open()
    assert await dev.check()
    assert await dev.probe()
    await dev.states()
    with pytest.raises(NotSupportedError) if kind not in METERING else nullcontext():
        await dev.measure(1)
    await dev.close()
    assert sim.switches == []


async def test_nobody_listening(device: MakeDevice, kind: str) -> None:
    with socket.socket() as s:  # a port that was free a moment ago, and nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with anyio.fail_after(5):
        dev = device(kind, host=f"127.0.0.1:{port}")
        assert not await dev.open()
    assert dev.problem == f"connection refused by 127.0.0.1:{port}"

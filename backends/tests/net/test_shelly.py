"""The shelly backend against the Shelly simulator (Gen1 REST and Gen2+ JSON-RPC), and what
every HTTP device shares: auth, faults, deadlines, availability that comes back by itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from labpower.backends import (
    DeviceUnavailableError,
    HardwareTimeout,
    Measurement,
    NotSupportedError,
)
from labpower.backends.sim.shelly import CURRENT_ON, VOLTAGE, ShellySimulator

from .conftest import MakeDevice

pytestmark = pytest.mark.anyio
Sims = Callable[..., Any]


@pytest.fixture(params=[1, 2])
def generation(request: pytest.FixtureRequest) -> int:
    return int(request.param)


async def test_switch_reads_back(sims: Sims, device: MakeDevice, generation: int) -> None:
    sim = sims(ShellySimulator, channels=2, generation=generation)
    dev = device("shelly", channels=2, host=sim.address)
    assert await dev.switch(2, True) is True
    assert sim.relays == {1: False, 2: True}
    assert await dev.states() == {1: False, 2: True}
    assert await dev.state(2) is True
    assert await dev.switch(2, False) is False
    assert sim.relays[2] is False


async def test_gen2_speaks_json_rpc(sims: Sims, device: MakeDevice) -> None:
    sim = sims(ShellySimulator, channels=1, generation=3)
    dev = device("shelly", host=sim.address)
    await dev.switch(1, True)
    assert ("POST", "/rpc") in sim.requests
    assert not any(path.startswith("/relay") for _, path in sim.requests)


async def test_gen1_uses_the_relay_url(sims: Sims, device: MakeDevice) -> None:
    sim = sims(ShellySimulator, channels=1, generation=1)
    dev = device("shelly", host=sim.address)
    await dev.switch(1, True)
    assert ("GET", "/relay/0?turn=on") in sim.requests


async def test_ignored_switch_is_seen_in_the_read_back(
    sims: Sims, device: MakeDevice, generation: int
) -> None:
    sim = sims(ShellySimulator, generation=generation)
    dev = device("shelly", host=sim.address)
    sim.ignore_next_switch()
    assert await dev.switch(1, True) is False


async def test_gen2_readings_are_the_meters(sims: Sims, device: MakeDevice) -> None:
    sim = sims(ShellySimulator, generation=2)
    dev = device("shelly", host=sim.address)
    assert await dev.measure(1) == Measurement(VOLTAGE, 0.0)
    await dev.switch(1, True)
    assert await dev.measure(1) == Measurement(VOLTAGE, CURRENT_ON)


async def test_gen1_3em_readings_are_its_emeter(sims: Sims, device: MakeDevice) -> None:
    sim = sims(ShellySimulator, generation=1, emeter=True)
    dev = device("shelly", host=sim.address)
    assert await dev.measure(1) == Measurement(VOLTAGE, 0.0)
    await dev.switch(1, True)
    assert await dev.measure(1) == Measurement(VOLTAGE, CURRENT_ON)


async def test_no_readings_without_a_meter_of_voltage_and_current(
    sims: Sims, device: MakeDevice
) -> None:
    for sim in (
        sims(ShellySimulator, generation=1),  # 1PM: power only
        sims(ShellySimulator, generation=1, channels=2),  # 2.5: power, supply voltage
        sims(ShellySimulator, generation=1, metering=False),  # Shelly 1
        sims(ShellySimulator, metering=False),
    ):
        dev = device("shelly", host=sim.address, channels=sim.channels)
        with pytest.raises(NotSupportedError):
            await dev.measure(1)


async def test_auth(sims: Sims, device: MakeDevice, generation: int) -> None:
    sim = sims(ShellySimulator, generation=generation, password="s3cret")
    dev = device("shelly", host=sim.address, password="s3cret")
    assert await dev.switch(1, True) is True
    wrong = device("shelly", host=sim.address, password="wrong")
    with pytest.raises(DeviceUnavailableError, match=r"authentication failed .*HTTP 401"):
        await wrong.switch(1, False)
    assert not wrong.available
    assert "authentication failed" in (wrong.problem or "")
    assert sim.relays[1] is True
    none = device("shelly", host=sim.address)
    assert not await none.open()
    assert "authentication failed" in (none.problem or "")


@pytest.mark.timing
async def test_hung_device_times_out_at_the_deadline(sims: Sims, device: MakeDevice) -> None:
    sim = sims(ShellySimulator)
    dev = device("shelly", host=sim.address, timeout=0.5)
    assert await dev.open()
    sim.hang()
    start = anyio.current_time()
    with pytest.raises(HardwareTimeout):
        await dev.switch(1, True)
    assert anyio.current_time() - start < 0.5 + 1.0  # the deadline, not forever
    assert dev.problem == "no answer within 0.5 s"
    sim.heal()
    assert await dev.check()


async def test_open_and_checks_never_switch(
    sims: Sims, device: MakeDevice, generation: int
) -> None:
    sim = sims(ShellySimulator, channels=2, generation=generation)
    dev = device("shelly", channels=2, host=sim.address)
    assert await dev.open()
    assert await dev.check()
    assert await dev.probe()
    await dev.states()
    await dev.close()
    assert sim.switches == []


@pytest.mark.timing
async def test_other_devices_are_not_delayed_by_a_hung_one(sims: Sims, device: MakeDevice) -> None:
    hung, fine = sims(ShellySimulator), sims(ShellySimulator)
    slow = device("shelly", host=hung.address, timeout=1.0)
    fast = device("shelly", host=fine.address, timeout=1.0)
    assert await slow.open()
    assert await fast.open()
    hung.hang()
    took: dict[str, float] = {}

    async def run(name: str, coro: Any) -> None:
        start = anyio.current_time()
        try:
            await coro
        except HardwareTimeout:
            pass
        took[name] = anyio.current_time() - start

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "slow", slow.switch(1, True))
        tg.start_soon(run, "fast", fast.switch(1, True))
    assert fine.relays[1] is True
    assert took["fast"] < took["slow"]
    hung.heal()

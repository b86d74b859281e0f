"""Fixtures for the network backend tests: device simulators on loopback, both async loops."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from labpower.backends import Backend, Device, parse_options, registry
from labpower.backends.sim.http import HttpSimulator

MakeDevice = Callable[..., Device]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on asyncio and on trio."""
    return str(request.param)


@pytest.fixture
def sims() -> Iterator[Callable[..., Any]]:
    """``sims(SimulatorClass, **kwargs)``: a started simulator, stopped after the test."""
    started: list[HttpSimulator] = []

    def make(cls: type[HttpSimulator], **kwargs: Any) -> Any:
        sim = cls(**kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def build(backend: str, channels: int = 1, timeout: float = 2.0, **table: Any) -> Device:
    """A Device of ``backend`` built from a config table, as the daemon builds it."""
    cls: type[Backend] = registry.load(backend)
    return Device(cls(backend, channels, parse_options(cls.Options, table), timeout), timeout)


@pytest.fixture
async def device() -> AsyncIterator[MakeDevice]:
    """``device(backend, channels=1, timeout=2.0, **table)``: a Device as the daemon builds
    it from a config table; closed after the test."""
    made: list[Device] = []

    def make(*args: Any, **kwargs: Any) -> Device:
        made.append(build(*args, **kwargs))
        return made[-1]

    yield make
    for dev in made:
        await dev.close()

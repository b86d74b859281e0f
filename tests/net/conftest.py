"""Network device simulators for tests through the real daemon."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from labpower.backends.sim.http import HttpSimulator
from labpower.backends.sim.http_cli import HTTP_SIMULATORS

MakeSim = Callable[..., HttpSimulator]


@pytest.fixture
def http_sims() -> Iterator[MakeSim]:
    """``http_sims(kind, **kwargs)``: a started HTTP device simulator, stopped afterwards."""
    started: list[HttpSimulator] = []

    def make(kind: str, **kwargs: Any) -> HttpSimulator:
        started.append(HTTP_SIMULATORS[kind](**kwargs).start())
        return started[-1]

    yield make
    for sim in started:
        sim.stop()


def net_config(sims: dict[str, HttpSimulator], **options: Any) -> dict[str, Any]:
    """Device NAME on each simulator, targets NAME1, NAME2... on its channels."""
    devices: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    for name, sim in sims.items():
        devices[name] = {
            "backend": sim.kind,
            "host": sim.address,
            "channels": sim.channels,
            **options,
        }
        for ch in range(1, sim.channels + 1):
            targets[f"{name}{ch}"] = {"device": name, "channel": ch}
    return {"daemon": {"log_level": "debug"}, "devices": devices, "targets": targets}

"""Simulated serial relay boards on real ptys, and configs that point labpowerd at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from labpower.backends.sim import SIMULATORS, Boards, PtySimulator

#: every serial board that has a simulator (the contract suite checks that every backend
#: has a rig; these are the daemon-level tests of the same boards)
KINDS = tuple(sorted(SIMULATORS))
#: the deadline of every hardware call in these tests, seconds
TIMEOUT = 0.5
#: options that keep the tests fast: no gap between commands, a short silence probe
FAST: dict[str, dict[str, Any]] = {"lcus": {"gap": 0.0, "probe_timeout": 0.2}}

MakeBoard = Callable[..., PtySimulator]
MakeConfig = Callable[..., dict[str, Any]]


@pytest.fixture
def boards(tmp_path: Path) -> Iterator[MakeBoard]:
    """``boards(kind, name="board", **options)``: a started simulator linked at
    tmp_path/name, stopped after the test."""
    with Boards(tmp_path) as made:
        yield made


def make_config(
    boards: Mapping[str, PtySimulator], *, timeout: float = TIMEOUT, **options: Any
) -> dict[str, Any]:
    """A config with device NAME on each simulator and targets NAME1, NAME2, ... on its
    channels; ``options`` go to every device (after the fast defaults)."""
    devices: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    for name, sim in boards.items():
        devices[name] = {
            "backend": sim.kind,
            "port": str(sim.link),
            "channels": sim.channels,
            "timeout": timeout,
            **FAST.get(sim.kind, {}),
            **options,
        }
        for ch in range(1, sim.channels + 1):
            targets[f"{name}{ch}"] = {"device": name, "channel": ch}
    return {"daemon": {"log_level": "debug"}, "devices": devices, "targets": targets}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each serial board kind in turn."""
    return str(request.param)


@pytest.fixture(name="serial_config")
def serial_config_fixture() -> MakeConfig:
    """:func:`make_config`: ``serial_config({"a": board}, timeout=..., **device_options)``."""
    return make_config

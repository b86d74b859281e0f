"""Fixtures for the serial backend tests: simulated boards on ptys, and both async loops."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from labpower.backends.sim import SIMULATORS, PtySimulator

MakeBoard = Callable[..., PtySimulator]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on asyncio and on trio."""
    return str(request.param)


@pytest.fixture
def boards(tmp_path: Path) -> Iterator[MakeBoard]:
    """``boards(kind, name="board", **options)``: a started simulator linked at
    tmp_path/name, stopped after the test."""
    made: list[PtySimulator] = []

    def make(kind: str, name: str = "board", **options: Any) -> PtySimulator:
        sim = SIMULATORS[kind](tmp_path / name, **options)
        made.append(sim)
        sim.start()
        return sim

    yield make
    for sim in made:
        sim.stop()

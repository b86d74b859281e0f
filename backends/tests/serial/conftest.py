"""Fixtures for the serial backend tests: simulated boards on ptys, and both async loops."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labpower.backends.sim import Boards, PtySimulator

MakeBoard = Callable[..., PtySimulator]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on asyncio and on trio."""
    return str(request.param)


@pytest.fixture
def boards(tmp_path: Path) -> Iterator[MakeBoard]:
    """``boards(kind, name="board", **options)``: a started simulator linked at
    tmp_path/name, stopped after the test."""
    with Boards(tmp_path) as made:
        yield made

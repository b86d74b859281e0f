"""Fixtures of the HID/USB backend tests: a fake USB world installed in this process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from labpower.backends import fakes
from labpower.backends.fakes import MemoryBus


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[MemoryBus]:
    """An empty fake USB world, seen by hidapi, pyusb, pyserial and sysfs lookups."""
    with fakes.install(MemoryBus(tmp_path / "usb")) as installed:
        assert isinstance(installed, MemoryBus)
        yield installed


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)

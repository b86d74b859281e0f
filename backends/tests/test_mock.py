"""The mock backend: relays in memory, INFO logs, fixed readings, injected trouble."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from labpower.backends import (
    DeviceUnavailableError,
    Measurement,
    NotSupportedError,
    OperationError,
    OptionError,
    parse_options,
    registry,
)
from labpower.backends.mock import MockBackend, MockOptions

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def mock(channels: int = 4, **options: Any) -> MockBackend:
    return MockBackend("bench", channels, parse_options(MockOptions, options))


async def test_registered_as_mock() -> None:
    assert registry.load("mock") is MockBackend
    assert "mock" in registry.names()


async def test_switch_and_read_back() -> None:
    board = mock()
    await board.open()
    assert await board.get_all() == {1: False, 2: False, 3: False, 4: False}
    await board.set(2, True)
    assert await board.get(2) is True
    assert await board.get(1) is False
    assert await board.get_all() == {1: False, 2: True, 3: False, 4: False}
    await board.set(2, False)
    assert await board.get(2) is False
    assert board.calls == [("set", 2, True), ("set", 2, False)]


async def test_logs_power_on_and_off_at_info(caplog: pytest.LogCaptureFixture) -> None:
    board = mock()
    with caplog.at_level(logging.INFO, logger="labpower.backends"):
        await board.set(1, True)
        await board.set(1, False)
    records = [r for r in caplog.records if r.name == "labpower.backends.mock"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "power on"),
        (logging.INFO, "power off"),
    ]
    assert all(r.device == "bench" for r in records)  # type: ignore[attr-defined]


async def test_readings_idle_then_powered_per_channel() -> None:
    board = mock()
    assert await board.read(1) == Measurement(0.0, 0.0)
    assert await board.read(1) == Measurement(5.0, 2.0)
    assert (await board.read(1)).apparent_power == 10.0
    assert await board.read(2) == Measurement(0.0, 0.0)
    assert Measurement(0.0, 0.0).apparent_power == 0.0


async def test_capabilities() -> None:
    assert (MockBackend.readback, MockBackend.measures) == (True, True)
    blind = mock(readback=False, measures=False)
    assert (blind.readback, blind.measures) == (False, False)
    # the class keeps its capabilities; only this instance is blind
    assert MockBackend.readback is True


async def test_without_readback_get_cannot_tell() -> None:
    board = mock(readback=False)
    await board.set(1, True)
    assert await board.get(1) is None
    assert await board.get_all() == {1: None, 2: None, 3: None, 4: None}


async def test_without_measuring_read_is_not_supported() -> None:
    with pytest.raises(NotSupportedError) as info:
        await mock(measures=False).read(1)
    assert info.value.operation == "read"


async def test_delay() -> None:
    board = mock(delay=0.05)
    start = anyio.current_time()
    await board.set(1, True)
    assert anyio.current_time() - start >= 0.05


async def test_injected_failure_of_one_operation() -> None:
    board = mock(fail=["set"])
    await board.open()
    with pytest.raises(OperationError, match="injected failure of set"):
        await board.set(1, True)
    assert board.relays[1] is False
    assert await board.get(1) is False
    assert await board.read(1) == Measurement(0.0, 0.0)


@pytest.mark.parametrize("op", ["open", "get", "read", "close"])
async def test_each_operation_can_fail(op: str) -> None:
    board = mock(fail=[op])
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "open": board.open,
        "close": board.close,
        "get": lambda: board.get(1),
        "read": lambda: board.read(1),
    }
    with pytest.raises(OperationError, match=op):
        await calls[op]()


async def test_unavailable_board() -> None:
    board = mock(unavailable=True)
    for call in (
        board.open,
        lambda: board.set(1, True),
        lambda: board.get(1),
        lambda: board.read(1),
        board.close,
    ):
        with pytest.raises(DeviceUnavailableError, match="unplugged"):
            await call()
    assert board.calls == []


async def test_ignored_channel_keeps_its_state() -> None:
    board = mock(ignore=[2])
    await board.set(2, True)
    await board.set(1, True)
    assert await board.get(2) is False
    assert await board.get(1) is True
    assert board.calls == [("set", 2, True), ("set", 1, True)]


async def test_options_are_validated() -> None:
    with pytest.raises(OptionError) as info:
        parse_options(MockOptions, {"delay": -0.5})
    assert info.value.key == "delay"
    with pytest.raises(OptionError) as info:
        parse_options(MockOptions, {"fail": ["explode"]})
    assert info.value.key == "fail[0]"
    with pytest.raises(OptionError) as info:
        parse_options(MockOptions, {"delay": "x"})
    assert info.value.key == "delay"

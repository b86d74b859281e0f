"""Device: one lock per board (calls in arrival order), a deadline on every operation,
re-opening after failures, and never a switch that nobody asked for."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from labpower.backends import (
    Backend,
    Device,
    DeviceUnavailableError,
    HardwareTimeout,
    NotSupportedError,
    OperationError,
    parse_options,
)
from labpower.backends.mock import MockBackend, MockOptions

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class CountingMock(MockBackend):
    """A mock that counts how often it was opened and closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = self.closed = 0

    async def open(self) -> None:
        self.opened += 1
        await super().open()

    async def close(self) -> None:
        self.closed += 1
        await super().close()


def device(timeout: float = 1.0, channels: int = 4, **options: Any) -> Device:
    return Device(CountingMock("bench", channels, parse_options(MockOptions, options)), timeout)


def board(dev: Device) -> CountingMock:
    assert isinstance(dev.backend, CountingMock)
    return dev.backend


async def test_open_switch_read_back() -> None:
    dev = device()
    assert dev.available is False  # not opened yet
    assert await dev.open() is True
    assert (dev.available, dev.problem, dev.name, dev.readback) == (True, None, "bench", True)
    assert await dev.switch(1, True) is True
    assert await dev.state(1) is True
    assert await dev.states() == {1: True, 2: False, 3: False, 4: False}
    assert (await dev.measure(1)).voltage == 0.0
    assert board(dev).opened == 1


async def test_switch_without_readback_returns_none() -> None:
    dev = device(readback=False)
    assert await dev.switch(1, True) is None
    assert board(dev).relays[1] is True


async def test_the_device_timeout_becomes_the_backends() -> None:
    dev = device(timeout=0.25)
    assert dev.backend.timeout == 0.25


async def test_absent_board_does_not_stop_anything_and_comes_back() -> None:
    dev = device(unavailable=True)
    assert await dev.open() is False
    assert dev.available is False
    assert dev.problem is not None
    assert "unplugged" in dev.problem
    with pytest.raises(DeviceUnavailableError):
        await dev.switch(1, True)
    board(dev).unavailable = False  # plugged back in
    assert await dev.switch(1, True) is True
    assert dev.available is True
    # every attempt only opened the board; the one switch is the one that was asked for
    assert board(dev).calls == [("set", 1, True)]


async def test_a_failed_operation_closes_the_board_and_the_next_call_reopens_it() -> None:
    dev = device(fail=["set"])
    await dev.open()
    with pytest.raises(OperationError):
        await dev.switch(1, True)
    assert dev.available is False
    assert dev.problem is not None
    assert "injected" in dev.problem
    assert board(dev).closed == 1
    board(dev).fail.clear()
    assert await dev.switch(1, True) is True
    assert board(dev).opened == 2
    assert dev.available is True


async def test_not_supported_leaves_the_board_alone() -> None:
    dev = device(measures=False)
    await dev.open()
    with pytest.raises(NotSupportedError):
        await dev.measure(1)
    assert dev.available is True
    assert board(dev).closed == 0
    assert not dev.errors  # the board cannot: no failure


@pytest.mark.timing
async def test_deadline_of_a_hung_board() -> None:
    dev = device(timeout=0.05)
    await dev.open()
    board(dev).delay = 10.0  # the board stops answering
    start = anyio.current_time()
    with pytest.raises(HardwareTimeout) as info:
        await dev.switch(1, True)
    assert 0.05 <= anyio.current_time() - start < 1.0
    assert info.value.seconds == 0.05
    assert isinstance(info.value, TimeoutError)
    assert dev.available is False
    assert dev.problem == "no answer within 0.05 s"


@pytest.mark.timing
async def test_open_has_a_deadline_too() -> None:
    dev = device(timeout=0.05, delay=10.0)
    start = anyio.current_time()
    assert await dev.open() is False
    assert anyio.current_time() - start < 1.0
    assert dev.problem is not None
    assert "timed out" in dev.problem


async def test_calls_to_one_device_run_one_at_a_time_in_order() -> None:
    dev = device(delay=0.01)
    await dev.open()
    inside = 0
    most = 0
    original = board(dev).set

    async def set_(channel: int, on: bool) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        try:
            await original(channel, on)
        finally:
            inside -= 1

    board(dev).set = set_  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        for channel in (3, 1, 4, 2):
            tg.start_soon(dev.switch, channel, True)
            await anyio.lowlevel.checkpoint()  # let it queue on the lock before the next
    assert most == 1
    assert board(dev).calls == [
        ("set", 3, True),
        ("set", 1, True),
        ("set", 4, True),
        ("set", 2, True),
    ]


@pytest.mark.timing
async def test_different_devices_switch_concurrently() -> None:
    a, b = device(delay=0.1), device(delay=0.1)
    await a.open()
    await b.open()
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.switch, 1, True)
        tg.start_soon(b.switch, 1, True)
    # one switch is set + read-back, 0.2 s; one after the other would take 0.4 s
    assert anyio.current_time() - start < 0.35


async def test_close_only_closes_an_open_board() -> None:
    dev = device()
    await dev.close()
    assert board(dev).closed == 0
    await dev.open()
    await dev.close()
    await dev.close()
    assert board(dev).closed == 1
    assert board(dev).calls == []


class BlockingBoard(Backend):
    """A board whose library call blocks in a worker thread until the test releases it."""

    readback = False

    def __init__(self) -> None:
        super().__init__("blocking", 1, None)
        self.release = threading.Event()
        self.switched: list[bool] = []

    async def set(self, channel: int, on: bool) -> None:
        await self.in_thread(self._set, on)

    def _set(self, on: bool) -> None:
        self.release.wait(10)
        self.switched.append(on)


@pytest.mark.timeout(20)
async def test_a_blocking_library_call_is_abandoned_at_the_deadline() -> None:
    backend = BlockingBoard()
    dev = Device(backend, timeout=0.1)
    await dev.open()
    try:
        with pytest.raises(HardwareTimeout):
            await dev.switch(1, True)
        # the abandoned call still holds the board: the next one cannot talk over it
        with pytest.raises(HardwareTimeout):
            await dev.switch(1, False)
    finally:
        backend.release.set()
    # once the stuck call returned, the board works again
    with anyio.fail_after(5):
        while True:
            try:
                await dev.switch(1, False)
                break
            except HardwareTimeout:
                continue
    assert backend.switched[0] is True
    assert backend.switched[-1] is False


async def test_failures_are_counted_by_kind_and_reopens_as_reconnects() -> None:
    """What monitoring reads (labpowerd's Stats): failures by kind, opens after the first."""
    dev = device(timeout=0.05, unavailable=True)
    await dev.open()
    with pytest.raises(DeviceUnavailableError):
        await dev.switch(1, True)
    assert (dict(dev.errors), dev.reconnects) == ({"unavailable": 2}, 0)
    board(dev).unavailable = False
    await dev.switch(1, True)  # the first open that worked: no reconnect
    assert dev.reconnects == 0
    board(dev).fail.add("set")
    with pytest.raises(OperationError):
        await dev.switch(1, True)
    board(dev).fail.clear()
    board(dev).delay = 10.0
    with pytest.raises(HardwareTimeout):
        await dev.switch(1, True)  # closed after the failure: re-opening it hangs
    assert dev.reconnects == 0
    board(dev).delay = 0.0
    await dev.switch(1, False)  # opened again, and it works
    assert dict(dev.errors) == {"unavailable": 2, "error": 1, "timeout": 1}
    assert dev.reconnects == 1

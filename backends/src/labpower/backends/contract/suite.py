"""The contract suite: the rules of :mod:`labpower.backends.base`, checked against a real
(simulated) board through :class:`~labpower.backends.device.Device`, as the daemon uses it.

Subclass :class:`BackendContract` in a test module as ``TestSomething`` and give it a ``rig``
fixture that yields a started :class:`~labpower.backends.contract.rig.Rig`; pytest collects
every test of the suite for it. The backend is found by the rig's ``kind`` through the
``labpower.backends`` entry points, as the daemon finds it, so the suite also proves that the
entry point is there.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from labpower.backends import registry
from labpower.backends.contract.rig import Rig, Switch
from labpower.backends.device import Device
from labpower.backends.errors import (
    DeviceUnavailableError,
    HardwareTimeout,
    OperationError,
)
from labpower.backends.options import parse_options

#: the event loops the suite runs on: trio too where it is installed (anyio's pytest plugin
#: needs it to run a test on trio; labpower's own suite always has it)
LOOPS = ["asyncio", *(["trio"] if importlib.util.find_spec("trio") else [])]
#: how long a command that has no answer may take to reach a board, seconds
SETTLE = 5.0
#: what a call may take beyond its deadline on a loaded machine (thread hand-offs, a
#: closing port), seconds
SLACK = 0.75


def make_device(rig: Rig) -> Device:
    """A device of the rig's backend on the rig's board, built as the daemon builds one from
    its config: the class from the entry point, the options parsed from the table.

    :raises LookupError: no backend of that kind is installed.
    :raises OptionError: the rig's options are not the backend's.
    """
    cls = registry.load(rig.kind)
    options = parse_options(cls.Options, rig.options())
    backend = cls(rig.kind, rig.channels, options, rig.timeout)
    rig.attach(backend)
    return Device(backend, rig.timeout)


def _only(rig: Rig, before: int, switch: Switch) -> bool:
    return rig.switches()[before:] == [switch]


def absent_errors(rig: Rig) -> tuple[type[Exception], ...]:
    """What a call to an absent board of this rig may raise."""
    if rig.absent_is_silent:
        return (DeviceUnavailableError, HardwareTimeout)
    return (DeviceUnavailableError,)


async def settle(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds, for commands a board takes without answering."""
    deadline = time.monotonic() + SETTLE
    while not condition():
        assert time.monotonic() < deadline, f"not within {SETTLE} s: {what}"
        await anyio.sleep(0.002)


async def within(seconds: float, call: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    """(result or the exception raised, seconds taken) of ``await call()``, given up after
    ``seconds`` (the result is then a :class:`TimeoutError` of the suite's own), so that a
    backend without a deadline fails the test rather than hanging it."""
    started = time.monotonic()
    result: Any = None
    with anyio.move_on_after(seconds) as scope:
        try:
            result = await call()
        except Exception as exc:
            result = exc
    if scope.cancelled_caught:
        result = TimeoutError(f"still running after {seconds:g} s")
    return result, time.monotonic() - started


class BackendContract:
    """The rules every backend keeps, as tests. A subclass provides the ``rig`` fixture."""

    @pytest.fixture(params=LOOPS)
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    async def device(self, rig: Rig) -> AsyncIterator[Device]:
        """A device on the rig's board, opened; closed after the test."""
        dev = make_device(rig)
        assert await dev.open(), f"{rig.kind}: the board did not open: {dev.problem}"
        yield dev
        await dev.close()

    @pytest.mark.anyio
    async def test_open_read_close_and_reopen_switch_nothing(self, rig: Rig) -> None:
        preset = {ch: ch % 2 == 0 for ch in range(1, rig.channels + 1)}
        for ch, on in preset.items():
            rig.preset(ch, on)
        before = rig.switches()
        dev = make_device(rig)
        assert await dev.open(), dev.problem
        states = await dev.states()
        each = {ch: await dev.state(ch) for ch in preset}
        assert await dev.check(), dev.problem  # the health check
        assert await dev.probe(), dev.problem  # closed and opened again, as after hot-plug
        await dev.close()
        again = make_device(rig)  # the daemon restarted
        assert await again.open(), again.problem
        await again.states()
        await again.close()
        assert rig.switches() == before, "opening, reading or closing sent a switch"
        assert rig.relays() == preset
        expected = preset if dev.readback else dict.fromkeys(preset)
        assert states == expected
        assert each == expected

    @pytest.mark.anyio
    async def test_a_switch_reaches_the_board_and_is_read_back(
        self, rig: Rig, device: Device
    ) -> None:
        for on in (True, False):
            before = len(rig.switches())
            got = await device.switch(1, on)
            await settle(
                functools.partial(_only, rig, before, Switch(1, on)),
                f"the board received exactly one switch of channel 1 to {on}",
            )
            assert rig.relays()[1] is on
            assert not rig.relays()[2], "a channel nobody switched changed"
            assert got is (on if device.readback else None)

    @pytest.mark.anyio
    async def test_get_reports_the_board_never_a_guess(self, rig: Rig, device: Device) -> None:
        before = rig.switches()
        await device.switch(2, True)
        await settle(lambda: len(rig.switches()) > len(before), "the switch reached the board")
        rig.preset(2, False)  # behind the backend's back: it must ask, not remember
        rig.preset(1, True)
        if device.readback:
            assert await device.state(2) is False
            assert await device.state(1) is True
            states = await device.states()
            assert (states[1], states[2]) == (True, False)
        else:
            assert await device.state(2) is None
            assert await device.states() == dict.fromkeys(range(1, rig.channels + 1))

    @pytest.mark.anyio
    async def test_an_absent_board_is_unavailable(self, rig: Rig) -> None:
        rig.unplug()
        dev = make_device(rig)
        with pytest.raises(absent_errors(rig)):  # noqa: PT012 - whichever call meets it
            await dev.states()  # opens the board first
            await dev.switch(1, False)  # a board that cannot report: the switch must fail
        assert not dev.available
        await dev.close()
        assert rig.switches() == []

    @pytest.mark.anyio
    async def test_nonsense_from_the_board_is_an_operation_error(
        self, rig: Rig, device: Device
    ) -> None:
        if not rig.can_fail:
            # nothing between the backend and the board could garble its answer
            assert await device.states() == rig.relays()
            return
        if not rig.garble():
            # a board that sends the host nothing cannot answer nonsense: the backend must
            # then not claim to read its state back
            assert not device.readback
            assert await device.states() == dict.fromkeys(range(1, rig.channels + 1))
            return
        with pytest.raises(OperationError):
            await device.states()
        rig.heal()
        assert await device.states() == rig.relays()

    @pytest.mark.anyio
    @pytest.mark.xdist_group("timing")
    async def test_a_hung_board_fails_at_the_deadline_and_works_once_healed(
        self, rig: Rig, device: Device
    ) -> None:
        limit = rig.timeout + SLACK
        first = len(rig.switches())
        if not rig.can_fail:
            # a board that cannot hang: reading and switching come back within the deadline
            result, took = await within(limit * 3, device.states)
            assert result == rig.relays(), f"the board's state: {result!r}"
            assert took < limit, f"reading the board took {took:.2f} s"
            result, took = await within(limit * 3, lambda: device.switch(2, True))
            assert took < limit, f"switching the board took {took:.2f} s"
            assert result is (True if device.readback else None), repr(result)
            assert rig.switches()[first:] == [Switch(2, True)]
            return
        rig.hang()
        if device.readback:
            result, took = await within(limit * 3, device.states)
            assert isinstance(result, HardwareTimeout), f"a hung board's state: {result!r}"
            assert took < limit, f"reading a hung board took {took:.2f} s"
        result, took = await within(limit * 3, lambda: device.switch(1, True))
        assert took < limit, f"switching a hung board took {took:.2f} s"
        assert result is None or isinstance(result, HardwareTimeout), repr(result)
        rig.heal()
        got = await device.switch(2, True)
        await settle(
            lambda: Switch(2, True) in rig.switches()[first:], "a healed board takes a switch"
        )
        assert got is (True if device.readback else None)
        # the switch sent while it hung may arrive late (the board took it in, or the call
        # abandoned at the deadline still finished): nothing else may
        assert set(rig.switches()[first:]) <= {Switch(1, True), Switch(2, True)}

    @pytest.mark.anyio
    async def test_a_board_that_vanishes_works_again_when_back(
        self, rig: Rig, device: Device
    ) -> None:
        await device.switch(1, True)
        rig.unplug()
        with pytest.raises(absent_errors(rig)):
            await device.switch(1, False)
        assert not device.available
        rig.replug()
        before = rig.switches()
        assert await device.check(), device.problem
        states = await device.states()
        assert rig.switches() == before, "coming back switched a relay"
        assert set(states) == set(range(1, rig.channels + 1))
        assert await device.switch(2, True) is (True if device.readback else None)
        await settle(
            lambda: rig.switches()[len(before) :] == [Switch(2, True)],
            "the board that came back took the switch",
        )

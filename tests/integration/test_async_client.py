"""AsyncClient against a real labpowerd child process, on asyncio and on trio."""

from __future__ import annotations

import logging
import time
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest
from labpower.client import (
    AsyncClient,
    DaemonUnreachable,
    DeviceUnavailable,
    LogEntry,
    NotSupported,
    Reading,
    StateMismatch,
    TargetNotFound,
)
from labpower.daemon.testing import DaemonProcess

pytestmark = pytest.mark.anyio


async def test_list_get_on_off(daemon: DaemonProcess) -> None:
    async with AsyncClient(daemon.socket_path) as lab:
        names = [t.name for t in await lab.targets()]
        assert "dut1" in names
        assert "router" in names
        dut = lab.target("dut1")
        assert (await dut.on()).state == "on"
        assert (await dut.state()).state == "on"
        assert (await lab.get("dut2")).state == "off"
        assert (await dut.off()).state == "off"
        assert (await lab.get("dut1")).verified is True


async def test_cycle(daemon: DaemonProcess) -> None:
    async with AsyncClient(daemon.socket_path) as lab:
        start = time.monotonic()
        assert (await lab.target("dut2").cycle(delay=0.05)).state == "on"
        assert time.monotonic() - start >= 0.05
        power = [
            e.message for e in await lab.history(targets=["dut2"]) if e.message.startswith("power")
        ]
        assert power == ["power off", "power on"]


async def test_read(daemon: DaemonProcess) -> None:
    async with AsyncClient(daemon.socket_path) as lab:
        once = [r async for r in lab.target("dut1").read()]
        assert once == [Reading(0.0, 0.0, 0.0)]
        three = [r async for r in lab.read("router", count=3, interval=0.01)]
        assert three == [Reading(0.0, 0.0, 0.0), Reading(5.0, 2.0, 10.0), Reading(5.0, 2.0, 10.0)]
        assert three[1].apparent_power == 10.0


async def test_errors(daemon: DaemonProcess) -> None:
    async with AsyncClient(daemon.socket_path) as lab:
        with pytest.raises(TargetNotFound):
            await lab.on("nope")
        with pytest.raises(StateMismatch):
            await lab.on("stuck")
        with pytest.raises(DeviceUnavailable):
            await lab.off("gone")
        with pytest.raises(NotSupported):
            [r async for r in lab.read("nometer")]
        # the connection survives error replies
        assert (await lab.get("dut1")).name == "dut1"


async def test_logs_iterator(daemon: DaemonProcess) -> None:
    async with (
        AsyncClient(daemon.socket_path) as lab,
        aclosing(lab.logs(targets=["dut1"])) as entries,
    ):
        seen: list[LogEntry] = []
        done = anyio.Event()

        async def follow() -> None:
            async for entry in entries:
                seen.append(entry)
                if len(seen) >= 2 and seen[-2].message == "power on":
                    done.set()
                    return

        # logs() yields nothing until an entry arrives, so there is no moment at which the
        # subscription is known to be live: keep switching until the follower saw a switch
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                while not done.is_set():
                    await lab.on("dut1")
                    await lab.on("dut2")  # filtered out by the daemon
        on, summary = seen[-2:]
        assert (on.message, on.target, on.device, on.level) == ("power on", "dut1", "bench", "info")
        assert summary.seq == on.seq + 1
        assert summary.message.endswith("-> on")
        assert {e.target for e in seen} == {"dut1"}


async def test_log_stream(daemon: DaemonProcess, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        async with AsyncClient(daemon.socket_path) as lab:
            async with lab.log_stream():
                await lab.on("dut1")
                on = [
                    r
                    for r in caplog.records
                    if r.name == "labpower.remote.dut1" and r.getMessage() == "power on"
                ]
                assert len(on) == 1
                assert on[0].device == "bench"  # type: ignore[attr-defined]
                await lab.off("dut1")
                off = [
                    r
                    for r in caplog.records
                    if r.name == "labpower.remote.dut1" and r.getMessage() == "power off"
                ]
                assert len(off) == 1
            await lab.on("dut1")  # the stream is closed: no new record
    remote = [r for r in caplog.records if r.name.startswith("labpower.remote")]
    assert [r.getMessage() for r in remote if r.getMessage().startswith("power")] == [
        "power on",
        "power off",
    ]


async def test_log_stream_needs_async_with(daemon: DaemonProcess) -> None:
    lab = AsyncClient(daemon.socket_path)
    with pytest.raises(RuntimeError, match="async with"):
        async with lab.log_stream():
            pass


async def test_unreachable(tmp_path: Path) -> None:
    path = str(tmp_path / "nobody.sock")
    with pytest.raises(DaemonUnreachable) as info:
        async with AsyncClient(path):
            pass
    assert isinstance(info.value, ConnectionError)
    assert path in str(info.value)

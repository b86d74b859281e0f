"""Reloading the configuration (SIGHUP / systemctl reload), seen from inside the daemon.

The daemon runs in-process (DaemonThread) so the test can see its boards: an unchanged board
is neither closed nor opened again and keeps its state, a changed one is reopened, nothing is
switched, and a bad file changes nothing at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest
from labpower.backends.mock import MockBackend
from labpower.client import Client, TargetNotFound
from labpower.daemon.daemon import Daemon
from labpower.daemon.testing import DaemonThread

from .conftest import write_toml

BEFORE: dict[str, Any] = {
    "devices": {
        "bench": {"backend": "mock", "channels": 2},
        "rack": {"backend": "mock", "channels": 2},
        "old": {"backend": "mock", "channels": 1},
    },
    "targets": {
        "dut1": {"device": "bench", "channel": 1},
        "dut2": {"device": "bench", "channel": 2},
        "router": {"device": "rack", "channel": 1, "cycle_delay": 0.5},
        "legacy": {"device": "old", "channel": 1},
    },
}
AFTER: dict[str, Any] = {
    "devices": {
        "bench": {"backend": "mock", "channels": 2, "description": "only the words changed"},
        "rack": {"backend": "mock", "channels": 2, "delay": 0.001},
        "extra": {"backend": "mock", "channels": 1},
    },
    "targets": {
        "dut1": {"device": "bench", "channel": 1},
        "dut2": {"device": "bench", "channel": 2, "cycle_delay": 3.0},
        "router": {"device": "rack", "channel": 1},
        "fresh": {"device": "extra", "channel": 1},
    },
}


class Running:
    """The in-process daemon, and a way to run things on its event loop."""

    def __init__(self, thread: DaemonThread) -> None:
        self.thread = thread
        assert thread.daemon is not None
        self.daemon: Daemon = thread.daemon
        self.config_path = Path(self.daemon.config.path)

    def run(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        return anyio.from_thread.run(fn, token=self.thread._token)  # the daemon's own loop

    def reload(self, config: dict[str, Any] | str) -> bool:
        if isinstance(config, str):
            self.config_path.write_text(config)
        else:
            write_toml(self.config_path, config)
        return bool(self.run(self.daemon.reload))

    def backend(self, device: str) -> MockBackend:
        backend = self.daemon.lab.devices[device].backend
        assert isinstance(backend, MockBackend)
        return backend

    def client(self) -> Client:
        return Client(self.thread.socket_path, timeout=10)


@pytest.fixture
def running() -> Iterator[Running]:
    thread = DaemonThread(BEFORE)
    thread.start()
    yield Running(thread)
    thread.stop()


def count_opens_and_closes(backend: MockBackend) -> list[str]:
    """Record every open and close of ``backend`` from now on."""
    seen: list[str] = []
    for name in ("open", "close"):
        original = getattr(backend, name)

        async def wrapper(
            original: Callable[[], Awaitable[None]] = original, name: str = name
        ) -> None:
            seen.append(name)
            await original()

        setattr(backend, name, wrapper)
    return seen


def test_unchanged_boards_untouched_changed_reopened_nothing_switched(
    running: Running,
) -> None:
    with running.client() as lab:
        lab.on("dut1")
        lab.on("router")
        before = {t.name: t for t in lab.targets()}
    lab_state = running.daemon.lab
    bench, rack, old = (running.backend(n) for n in ("bench", "rack", "old"))
    bench_device, dut1 = lab_state.devices["bench"], lab_state.targets["dut1"]
    calls = {n: list(b.calls) for n, b in (("bench", bench), ("rack", rack), ("old", old))}
    relays = dict(bench.relays)
    bench_io, rack_io = count_opens_and_closes(bench), count_opens_and_closes(rack)

    assert running.reload(AFTER)

    assert lab_state.devices["bench"] is bench_device
    assert running.backend("bench") is bench
    assert bench_io == [], "an unchanged board is neither closed nor reopened"
    assert bench.relays == relays
    assert rack_io == ["close"], "a changed board is closed and replaced"
    new_rack = running.backend("rack")
    assert new_rack is not rack
    assert new_rack.delay == 0.001
    assert "old" not in lab_state.devices
    # no relay was switched by the reload, on any board, old or new
    assert {"bench": bench.calls, "rack": rack.calls, "old": old.calls} == calls
    assert new_rack.calls == []
    assert running.backend("extra").calls == []
    assert lab_state.targets["dut1"] is dut1

    with running.client() as lab:
        after = {t.name: t for t in lab.targets()}
        assert set(after) == {"dut1", "dut2", "router", "fresh"}
        assert after["dut1"] == before["dut1"], "what the daemon knows of dut1 is kept"
        assert after["dut2"] == before["dut2"]
        # the new board reads back off (it is a fresh mock): read back, not assumed
        assert (after["router"].state, after["router"].verified) == ("off", True)
        with pytest.raises(TargetNotFound):
            lab.get("legacy")
        assert lab.on("fresh").state == "on"
    assert lab_state.targets["dut2"].config.cycle_delay == 3.0


def test_a_bad_config_is_refused_and_the_old_one_keeps_serving(running: Running) -> None:
    with running.client() as lab:
        lab.on("dut1")
    lab_state = running.daemon.lab
    config, devices, targets = lab_state.config, dict(lab_state.devices), dict(lab_state.targets)
    bench_calls = list(running.backend("bench").calls)

    assert not running.reload(
        "[devices.bench]\nbackend = 'mock'\nchannels = 2\n"
        "[targets.dut1]\ndevice = 'bench'\nchannel = 9\n"
    )
    assert not running.reload("this is not TOML")

    assert lab_state.config is config
    assert lab_state.devices == devices
    assert lab_state.targets == targets
    assert running.backend("bench").calls == bench_calls
    refused = [e for e, _ in running.daemon.bus.history if "reload refused" in e["message"]]
    assert [e["level"] for e in refused] == ["error", "error"]
    assert "targets.dut1.channel" in refused[0]["message"]
    with running.client() as lab:
        assert lab.get("dut1").state == "on"
        assert lab.on("legacy").state == "on"


def test_a_call_in_flight_finishes_on_the_board_it_started_on(running: Running) -> None:
    """A cycle is in its off-time when its board's config changes: the reload waits for it,
    the cycle completes on the old board, and the new board is opened after."""
    rack = running.backend("rack")
    result: list[Any] = []

    def cycle() -> None:
        with running.client() as lab:
            result.append(lab.cycle("router"))

    switched_off = threading.Event()

    class OnOff(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "power off":
                switched_off.set()

    handler = OnOff()
    remote = logging.getLogger("labpower.remote")
    remote.addHandler(handler)
    # in-process, the daemon's loggers and the client's share the "labpower" level
    everything = logging.getLogger("labpower")
    level = everything.level
    everything.setLevel(logging.INFO)
    worker = threading.Thread(target=cycle)
    try:
        with running.client() as lab, lab.log_stream(targets=["router"]):
            worker.start()  # the stream is live: its "power off" entry cannot be missed
            assert switched_off.wait(10), "the cycle never switched off"
    finally:
        remote.removeHandler(handler)
        everything.setLevel(level)
    assert running.reload(AFTER)
    worker.join(10)
    assert [r.state for r in result] == ["on"]
    assert rack.calls == [("set", 1, False), ("set", 1, True)]
    assert running.backend("rack").calls == []

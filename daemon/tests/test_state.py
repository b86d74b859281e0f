"""The state file and the start policies.

The file is written atomically (no temporary file is left, it reads back whole), a torn or
edited file is refused loudly and moved aside, never half-read. Each target's start policy
(keep, off, on, restore) holds across a clean restart and across a SIGKILL. The mock's relays
live in memory, so they start off in every run: what a policy did is seen in what the daemon
reports and in its log entries with op "start".
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from labpower.client import Client
from labpower.daemon.state import FILENAME, Remembered, StateStore, decode
from labpower.daemon.testing import DaemonProcess

RECORDS = {
    "dut1": Remembered("on", "2024-05-01T10:00:00.000000Z", 1000, 42, "ci-job"),
    "dut2": Remembered("off"),
}


def test_atomic_write_round_trip(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "state"))
    for name, record in RECORDS.items():
        store.update(name, record)
    store.write_now()
    store.update("dut2", Remembered("unknown"))
    store.write_now()
    assert os.listdir(tmp_path / "state") == [FILENAME]  # no temporary file left behind
    assert StateStore(str(tmp_path / "state")).load() == {**RECORDS, "dut2": Remembered("unknown")}


def test_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    assert StateStore(str(tmp_path)).load() == {}


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="torn"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: data.replace(b'"on"', b'"off"', 1), id="edited"),
        pytest.param(lambda data: b"\x00" * len(data), id="zeroed"),
    ],
)
def test_damaged_file_is_refused_and_moved_aside(
    tmp_path: Path, damage: Callable[[bytes], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    store = StateStore(str(tmp_path))
    for name, record in RECORDS.items():
        store.update(name, record)
    store.write_now()
    path = tmp_path / FILENAME
    original = path.read_bytes()
    path.write_bytes(damage(original))
    with caplog.at_level(logging.ERROR, logger="labpower.daemon.state"):
        assert StateStore(str(tmp_path)).load() == {}
    assert "corrupt" in caplog.text
    assert not path.exists()
    assert (tmp_path / (FILENAME + ".corrupt")).read_bytes() == damage(original)


def test_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))
    store.update("dut1", RECORDS["dut1"])
    store.write_now()
    (tmp_path / ".targets.abc123").write_bytes(b"half a wri")  # a write cut short by a crash
    assert StateStore(str(tmp_path)).load() == {"dut1": RECORDS["dut1"]}
    assert os.listdir(tmp_path) == [FILENAME]


# -- start policies against a real daemon
CONFIG = {
    "daemon": {"log_level": "info"},
    "devices": {
        "bench": {"backend": "mock", "channels": 4},
        "blind": {"backend": "mock", "channels": 1, "readback": False},
    },
    "targets": {
        "keep": {"device": "bench", "channel": 1},
        "off": {"device": "bench", "channel": 2, "start": "off"},
        "on": {"device": "bench", "channel": 3, "start": "on"},
        "restore": {"device": "bench", "channel": 4, "start": "restore"},
        "blindkeep": {"device": "blind", "channel": 1},
    },
}


@pytest.fixture
def directory(tmp_path: Path) -> str:
    return str(tmp_path)


def _started(directory: str) -> DaemonProcess:
    proc = DaemonProcess(CONFIG, directory=directory)
    proc.start()
    return proc


def _persisted(directory: str) -> dict[str, str]:
    try:
        data = Path(directory, "state", FILENAME).read_bytes()
    except FileNotFoundError:
        return {}
    return {name: r.state for name, r in decode(data).items()}


def _start_switches(lab: Client) -> dict[str, str]:
    """Target -> the state its start policy switched it to, from this run's log."""
    return {
        e.target: (e.extra or {}).get("state", "")
        for e in lab.history()
        if e.target is not None and (e.extra or {}).get("op") == "start" and "->" in e.message
    }


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_start_policies_across_a_restart(directory: str, stop: str) -> None:
    first = _started(directory)
    try:
        with first.client(timeout=10.0) as lab:
            # first run: nothing remembered; off and on switch, keep and restore do not
            assert _start_switches(lab) == {"off": "off", "on": "on"}
            for name in ("keep", "off", "on", "restore", "blindkeep"):
                lab.on(name)
            lab.off("on")
        wanted = {"keep": "on", "off": "on", "on": "off", "restore": "on", "blindkeep": "on"}
        if stop == "sigkill":
            # writes trail the switches by a few ms: wait until they are on disk, then crash
            deadline = time.monotonic() + 5
            while _persisted(directory) != wanted and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _persisted(directory) == wanted
            first.signal(signal.SIGKILL)
            assert first.proc is not None
            assert first.proc.wait(10) == -signal.SIGKILL
        else:
            assert first.stop() == 0
            assert _persisted(directory) == wanted
    finally:
        first.stop()

    second = _started(directory)
    try:
        with second.client(timeout=10.0) as lab:
            # off/on switch to their state; restore to the remembered one (on); keep switches
            # nothing
            assert _start_switches(lab) == {"off": "off", "on": "on", "restore": "on"}
            states = {t.name: t for t in lab.targets()}
            assert (states["off"].state, states["on"].state) == ("off", "on")
            assert states["restore"].state == "on"
            # keep: the board says what it is (the mock's relays start off)...
            assert (states["keep"].state, states["keep"].verified) == ("off", True)
            # ...and a board that cannot tell shows the remembered state, not verified
            assert (states["blindkeep"].state, states["blindkeep"].verified) == ("on", False)
    finally:
        assert second.stop() == 0
        second.cleanup()
    leftovers = [n for n in os.listdir(Path(directory, "state")) if n != FILENAME]
    assert leftovers == []
    assert json.loads(Path(directory, "state", FILENAME).read_bytes())["format"] == 1

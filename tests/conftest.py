"""Fixtures shared by the cross-package tests: mock configs and real daemons to talk to.

``daemon`` is a real ``labpowerd`` child process (``labpower.daemon.testing.DaemonProcess``)
on a socket in the test's own temporary directory, serving :func:`mock_config`'s standard lab.
``start_daemon`` starts more of them, with any config; every daemon a test started is stopped
after it, and must exit with status 0 and remove its socket.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

# pytester: tests/integrations runs the labpower pytest plugin in pytest's own test harness
# (pytest_plugins is honoured only in a conftest that pytest loads at startup, like this one)
pytest_plugins = ["pytester"]

#: The standard lab: one device per behaviour a test wants to see.
STANDARD: dict[str, Any] = {
    "daemon": {"log_level": "debug"},
    "devices": {
        "bench": {"backend": "mock", "channels": 4},
        "rack": {"backend": "mock", "channels": 2},
        # channel 2 ignores every command: read-back disagrees -> StateMismatch
        "sticky": {"backend": "mock", "channels": 2, "ignore": [2]},
        "unplugged": {"backend": "mock", "channels": 1, "unavailable": True},
        "faulty": {"backend": "mock", "channels": 1, "fail": ["set"]},
        "blind": {"backend": "mock", "channels": 1, "readback": False},
        "nometer": {"backend": "mock", "channels": 1, "measures": False},
    },
    "targets": {
        "dut1": {"device": "bench", "channel": 1, "cycle_delay": 0.3},
        "dut2": {"device": "bench", "channel": 2},
        "inverted": {"device": "bench", "channel": 3, "invert": True},
        "spare": {"device": "bench", "channel": 4},
        "router": {"device": "rack", "channel": 1},
        "stuck": {"device": "sticky", "channel": 2},
        "gone": {"device": "unplugged", "channel": 1},
        "faulty": {"device": "faulty", "channel": 1},
        "blind": {"device": "blind", "channel": 1},
        "nometer": {"device": "nometer", "channel": 1},
    },
}


def mock_config(
    devices: Mapping[str, Mapping[str, Any]] | None = None,
    targets: Mapping[str, Mapping[str, Any]] | None = None,
    daemon: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A config mapping: the standard lab, or only the given mock devices and targets.

    ``mock_config()`` is :data:`STANDARD`; ``mock_config({"slow": {"delay": 1}},
    {"t": {"device": "slow", "channel": 1}})`` is a lab of just that (``backend`` defaults to
    ``"mock"``).
    """
    if devices is None and targets is None:
        doc = copy.deepcopy(STANDARD)
    else:
        doc = {
            "devices": {name: {"backend": "mock", **dev} for name, dev in (devices or {}).items()},
            "targets": {name: dict(t) for name, t in (targets or {}).items()},
        }
    if daemon is not None:
        doc["daemon"] = dict(daemon)
    return doc


StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture(name="mock_config")
def mock_config_fixture() -> Callable[..., dict[str, Any]]:
    return mock_config


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[StartDaemon]:
    """``start_daemon(config, args=(...))``: a started labpowerd child; stopped afterwards,
    where it must exit 0 and leave no socket behind."""
    started: list[DaemonProcess] = []

    def start(
        config: Mapping[str, Any] | str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> DaemonProcess:
        directory = tmp_path / f"daemon{len(started)}"
        directory.mkdir()
        proc = DaemonProcess(
            mock_config() if config is None else config, directory=str(directory), **kwargs
        )
        started.append(proc)
        proc.start()
        return proc

    yield start
    for proc in started:
        running = proc.proc is not None and proc.proc.poll() is None
        code = proc.stop()
        if running:
            assert code == 0, f"labpowerd exited with {code}:\n{proc.stderr()}"
            assert not os.path.exists(proc.socket_path), "labpowerd left its socket behind"
        proc.cleanup()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One labpowerd for a whole module, for tests that leave no state behind (bad input,
    error replies): starting a daemon per parametrized case would dominate the run time."""
    proc = DaemonProcess(mock_config(), directory=str(tmp_path_factory.mktemp("shared")))
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"labpowerd exited with {code}:\n{proc.stderr()}"
    assert not os.path.exists(proc.socket_path), "labpowerd left its socket behind"


@pytest.fixture
def daemon(start_daemon: StartDaemon) -> DaemonProcess:
    """A labpowerd child process serving the standard mock lab."""
    return start_daemon()


@pytest.fixture
def lab(daemon: DaemonProcess) -> Iterator[Client]:
    """A connected client of :func:`daemon`."""
    with daemon.client(timeout=10.0) as client:
        yield client


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on asyncio and on trio."""
    return str(request.param)

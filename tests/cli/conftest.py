"""Run the real ``labpower`` command, as a child process, against the daemon of the shared
``daemon`` fixture (tests/conftest.py: a real labpowerd on the standard mock lab)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest
from labpower.daemon.testing import DaemonProcess

#: ``python -m labpower.client.cli``: the module the installed ``labpower`` script runs
#: (test_commands.py also runs that script itself).
LABPOWER = (sys.executable, "-m", "labpower.client.cli")
RUN_TIMEOUT = 30.0

Run = Callable[..., subprocess.CompletedProcess[str]]


def command_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The command's environment: no $LABPOWER_SOCKET unless the test sets one."""
    env = {k: v for k, v in os.environ.items() if k != "LABPOWER_SOCKET"}
    env.update(extra or {})
    return env


def _run(
    *args: str, env: Mapping[str, str] | None = None, command: Sequence[str] = LABPOWER
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=command_env(env),
        stdin=subprocess.DEVNULL,
        timeout=RUN_TIMEOUT,
        check=False,
    )


@pytest.fixture
def run_labpower() -> Run:
    """``run_labpower(*args, env=None, command=LABPOWER)``: run the command, no daemon given."""
    return _run


@pytest.fixture
def labpower(daemon: DaemonProcess) -> Run:
    """``labpower(*args)``: ``labpower --socket <the test's daemon> ARGS``."""

    def run(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return _run("--socket", daemon.socket_path, *args, env=env)

    return run


@pytest.fixture
def spawn_labpower(daemon: DaemonProcess) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``spawn_labpower(*args)``: a running ``labpower --socket <daemon> ARGS`` whose stdout
    and stderr are pipes. Killed after the test if still running."""
    procs: list[subprocess.Popen[str]] = []

    def spawn(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*LABPOWER, "--socket", daemon.socket_path, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=command_env(),
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

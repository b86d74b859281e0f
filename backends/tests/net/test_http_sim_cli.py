"""``labpower-sim shelly|tasmota|gude|netio``: a network device a user can point a config at."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from labpower.backends.sim.cli import HTTP_KINDS
from labpower.backends.sim.http_cli import HTTP_SIMULATORS

from .conftest import build


def test_every_network_kind_is_dispatched() -> None:
    assert set(HTTP_KINDS) == set(HTTP_SIMULATORS)


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_switch_through_the_command_line_simulator(kind: str, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labpower.backends.sim.cli",
            kind,
            "--channels",
            "2",
            "--password-file",
            str(secret),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            found = re.search(r'host = "([^"]+)"', banner)
            assert found, banner
            dev = build(kind, channels=2, host=found.group(1), password_file=str(secret))

            async def switch() -> bool | None:
                try:
                    return await dev.switch(2, True)
                finally:
                    await dev.close()

            assert anyio.run(switch) is True
            assert proc.stdout.readline() == f"{kind}: channel 2 on\n"
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0


def test_bad_listen_address_is_refused() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "labpower.backends.sim.cli", "gude", "--listen", "x:99999"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert "port '99999' must be a number 1..65535" in run.stderr

"""Smaller defects found by the red-team pass (issue 14, item 10): what a user sees from
``labpower bridge``, a state file nested too deeply, ``--check-config`` on ports and delays
that are not what they claim, and the wording of a failed switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from labpower.client import DeviceError
from labpower.daemon.state import FILENAME
from labpower.daemon.testing import DaemonProcess, to_toml

from ..conftest import StartDaemon, mock_config
from .conftest import wait_until

LABPOWER = (sys.executable, "-m", "labpower.client.cli")
LABPOWERD = (sys.executable, "-m", "labpower.daemon")


def test_bridge_delivers_the_reply_when_stdin_closes_right_after_the_call(
    daemon: DaemonProcess,
) -> None:
    call = {"method": "io.labpower.Power.On", "parameters": {"target": "dut1"}}
    done = subprocess.run(
        [*LABPOWER, "--socket", daemon.socket_path, "bridge"],
        input=json.dumps(call).encode() + b"\0",  # then EOF at once
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout.rstrip(b"\0"))
    assert reply["parameters"]["target"]["state"] == "on"


def test_a_state_file_nested_too_deeply_is_moved_aside(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    config = mock_config({"bench": {"channels": 1}}, {"dut1": {"device": "bench", "channel": 1}})
    first = start_daemon(config)
    first.stop()
    state = first.directory / "state"
    deep = b"[" * 100_000 + b"]" * 100_000
    (state / FILENAME).write_bytes(deep)
    again = DaemonProcess(config, directory=str(first.directory))
    again.start()
    try:
        with again.client(timeout=10) as lab:
            assert lab.get("dut1").name == "dut1"
    finally:
        assert again.stop() == 0, again.stderr()
    assert (state / (FILENAME + ".corrupt")).read_bytes() == deep
    assert "nested too deeply" in again.stderr()


def _check(tmp_path: Path, device: dict[str, object]) -> subprocess.CompletedProcess[str]:
    config = {
        "devices": {"b": {**device, "channels": 1}},
        "targets": {"t": {"device": "b", "channel": 1}},
    }
    path = tmp_path / "labpowerd.toml"
    path.write_text(to_toml(config))
    return subprocess.run(
        [*LABPOWERD, "--check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("kind", ["regular file", "directory", "link to /etc/passwd", "relative"])
def test_check_config_refuses_a_port_that_is_not_a_serial_device(tmp_path: Path, kind: str) -> None:
    port = {
        "regular file": tmp_path / "file",
        "directory": tmp_path / "dir",
        "link to /etc/passwd": tmp_path / "link",
        "relative": Path("ttyUSB0"),
    }[kind]
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("/etc/passwd")
    done = _check(tmp_path, {"backend": "lcus", "port": str(port)})
    assert done.returncode == 1, done.stdout
    assert "devices.b.port" in done.stderr
    assert ("absolute path" if kind == "relative" else "not a serial port") in done.stderr


def test_check_config_accepts_a_pty_and_a_port_not_plugged_in(tmp_path: Path) -> None:
    leader, follower = os.openpty()
    try:
        done = _check(tmp_path, {"backend": "lcus", "port": os.ttyname(follower)})
        assert done.returncode == 0, done.stderr
    finally:
        os.close(leader)
        os.close(follower)
    done = _check(tmp_path, {"backend": "lcus", "port": "/dev/serial/by-id/not-plugged-in"})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("delay", ["nan", "inf", "-inf", "-1.0"])
def test_check_config_refuses_a_mock_delay_that_is_not_a_duration(
    tmp_path: Path, delay: str
) -> None:
    done = _check(tmp_path, {"backend": "mock", "delay": float(delay)})
    assert done.returncode == 1, done.stdout
    assert "devices.b.delay" in done.stderr


def test_a_failed_switch_is_worded_once(daemon: DaemonProcess) -> None:
    with daemon.client(timeout=10) as lab, pytest.raises(DeviceError):
        lab.on("faulty")
    # the log task writes stderr a moment after the reply: wait for the line (bounded)
    wait_until(lambda: "error: faulty: on by uid " in daemon.stderr(), 10.0)
    lines = [line for line in daemon.stderr().splitlines() if "failed" in line]
    assert any(line.startswith("error: faulty: on by uid ") for line in lines), lines
    assert not any("on on" in line for line in lines), lines

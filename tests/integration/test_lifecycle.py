"""The daemon's process life: socket mode, SIGTERM, a busy or stale socket, no daemon at all."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from labpower.client import Client, DaemonUnreachable, LogEntry, Target
from labpower.daemon.testing import DaemonProcess

from ..conftest import StartDaemon, mock_config


def test_socket_mode_is_0660(daemon: DaemonProcess) -> None:
    st = os.stat(daemon.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_sigterm_exits_0_and_removes_the_socket(daemon: DaemonProcess) -> None:
    with daemon.client() as lab:
        lab.on("dut1")
    daemon.signal(signal.SIGTERM)
    assert daemon.proc is not None
    assert daemon.proc.wait(10) == 0
    assert not os.path.exists(daemon.socket_path)


def test_sigint_exits_0_and_removes_the_socket(daemon: DaemonProcess) -> None:
    daemon.signal(signal.SIGINT)
    assert daemon.proc is not None
    assert daemon.proc.wait(10) == 0
    assert not os.path.exists(daemon.socket_path)


@pytest.mark.timeout(20)
def test_sigterm_lets_the_call_in_flight_finish(start_daemon: StartDaemon) -> None:
    """SIGTERM in the middle of a cycle: the cycle completes and its caller gets the result;
    nothing else is switched at stop."""
    daemon = start_daemon(
        mock_config(
            {"board": {"channels": 2, "delay": 0.02}},
            {
                "dut": {"device": "board", "channel": 1, "cycle_delay": 0.4},
                "other": {"device": "board", "channel": 2},
            },
        )
    )
    results: list[Target | BaseException] = []

    def cycle() -> None:
        try:
            with daemon.client() as lab:
                results.append(lab.cycle("dut"))
        except BaseException as exc:
            results.append(exc)

    with daemon.client() as watcher:
        entries = watcher.logs(targets=["dut"])
        worker = threading.Thread(target=cycle)
        # "power off" is logged in the middle of the cycle: it still has to wait its
        # cycle_delay and switch on again when the signal arrives
        worker.start()
        try:
            entry: LogEntry = next(entries)
            while entry.message != "power off":
                entry = next(entries)
            daemon.signal(signal.SIGTERM)
        finally:
            worker.join(15)
        with pytest.raises(DaemonUnreachable):  # the daemon ends the subscription at stop
            for _ in entries:
                pass
    (result,) = results
    assert isinstance(result, Target), result
    assert (result.name, result.state) == ("dut", "on")
    assert daemon.proc is not None
    assert daemon.proc.wait(10) == 0
    assert not os.path.exists(daemon.socket_path)
    # the daemon logs every switch to stderr: the cycle's two and nothing at stop
    switched = [line for line in daemon.stderr().splitlines() if "power o" in line]
    assert len(switched) == 2
    assert "power off" in switched[0]
    assert "power on" in switched[1]


def test_no_daemon_is_a_clear_connection_error(tmp_path: Path) -> None:
    path = str(tmp_path / "nobody.sock")
    with pytest.raises(DaemonUnreachable) as info:
        Client(path).targets()
    assert isinstance(info.value, ConnectionError)
    assert path in str(info.value)
    with pytest.raises(DaemonUnreachable, match=r"nobody\.sock"), Client(path):
        pass


def test_stale_socket_file_is_a_clear_connection_error(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)  # the file stays behind, with nobody listening
    with pytest.raises(DaemonUnreachable) as info:
        Client(path).on("dut1")
    assert path in str(info.value)


def test_environment_names_the_socket(
    daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABPOWER_SOCKET", daemon.socket_path)
    with Client() as lab:
        assert lab.path == daemon.socket_path
        assert lab.get("dut1").name == "dut1"


def test_client_reconnects_after_a_daemon_restart(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    first = start_daemon()
    lab = Client(first.socket_path)
    try:
        lab.on("dut1")
        assert first.stop() == 0
        with pytest.raises(DaemonUnreachable):
            lab.get("dut1")
        second = DaemonProcess(mock_config(), directory=str(first.directory))
        second.start()
        try:
            # a new daemon starts with nothing switched, and knows nothing of the old state
            assert lab.get("dut1").state == "off"
        finally:
            assert second.stop() == 0
    finally:
        lab.close()


def test_second_daemon_on_a_busy_socket_is_refused(daemon: DaemonProcess) -> None:
    config = Path(daemon.config_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "labpower.daemon",
            "--config",
            str(config),
            "--socket",
            daemon.socket_path,
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode != 0
    assert daemon.socket_path in result.stderr
    assert "already listening" in result.stderr
    # the first daemon keeps its socket and keeps serving
    assert os.path.exists(daemon.socket_path)
    with daemon.client() as lab:
        assert lab.on("dut1").state == "on"


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    proc = DaemonProcess(mock_config(), directory=str(tmp_path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(proc.socket_path)  # left behind by a daemon that crashed
    try:
        proc.start()
        with proc.client() as lab:
            assert lab.on("dut1").state == "on"
        assert stat.S_IMODE(os.stat(proc.socket_path).st_mode) == 0o660
    finally:
        assert proc.stop() == 0
    assert not os.path.exists(proc.socket_path)


def test_a_file_in_the_sockets_place_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "labpower.sock"
    path.write_text("not a socket")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "labpower.daemon",
            "--config",
            str(Path(__file__).parents[2] / "packaging" / "examples" / "mock.toml"),
            "--socket",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode != 0
    assert str(path) in result.stderr
    assert path.read_text() == "not a socket"

"""Socket activation: the daemon serves on the listening socket it is given (LISTEN_FDS),
here by systemd-socket-activate, which starts it on the first connection."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from labpower.client import Client

from .conftest import NotifySocket, clean_env, labpowerd, write_toml

CONFIG = {
    "devices": {"bench": {"backend": "mock", "channels": 1}},
    "targets": {"dut1": {"device": "bench", "channel": 1}},
}


def test_the_first_call_starts_the_daemon_on_the_passed_socket(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "labpowerd.toml", CONFIG)
    activated, own = tmp_path / "activated.sock", tmp_path / "own.sock"
    proc = subprocess.Popen(
        [
            "systemd-socket-activate",
            "-l",
            str(activated),
            *labpowerd("--config", str(config), "--socket", str(own)),
        ],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert "Listening on" in proc.stderr.readline()  # the socket is bound: connect
        with Client(activated, timeout=20) as lab:
            assert lab.on("dut1").state == "on"
            served = [e.message for e in lab.history() if e.message.startswith("serving on")]
        assert served == [
            f"serving on {activated} (socket activation): 1 targets, 1/1 devices available"
        ]
        assert not own.exists(), "with a socket passed, the daemon binds none of its own"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        # the socket belongs to whoever passed it: the daemon leaves it in place
        assert activated.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_an_inherited_socket_meant_for_another_process_is_ignored(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    """LISTEN_PID names another process (the variables leaked): bind the own socket."""
    config = write_toml(tmp_path / "labpowerd.toml", CONFIG)
    own = tmp_path / "own.sock"
    with open(tmp_path / "stderr.log", "wb") as err:
        proc = subprocess.Popen(
            labpowerd("--config", str(config), "--socket", str(own)),
            env=clean_env(
                LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), NOTIFY_SOCKET=notify_socket.path
            ),
            stdin=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        notify_socket.wait_for("READY", "1")
        with Client(own, timeout=20) as lab:
            assert lab.get("dut1").name == "dut1"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0

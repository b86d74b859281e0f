"""Helpers for the system tier: real journald, sd_notify listeners, systemd tools.

These tests use the real parts (systemd-journald, systemd-analyze, systemd-socket-activate,
systemd-nspawn) and root, as CI has. A real journald runs in a private mount namespace made by
a child process (``unshare``, see journald_ns.py), so the rest of the pytest session is not
affected.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PACKAGING = REPO / "packaging"
JOURNALD_NS = HERE / "journald_ns.py"
SCENARIOS = HERE / "journal_scenarios.py"
_UCRED = struct.Struct("3i")


@dataclass(frozen=True, slots=True)
class Notification:
    """One sd_notify datagram: its ``KEY=value`` fields, sender pid, arrival time."""

    fields: dict[str, str]
    pid: int
    when: float


class NotifySocket:
    """A NOTIFY_SOCKET of the test's own, as systemd would listen on it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.seen: list[Notification] = []

    def receive(self, timeout: float) -> Notification:
        """:raises TimeoutError: nothing came within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
        pid = -1
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = _UCRED.unpack(payload[: _UCRED.size])[0]
        fields = dict(line.partition("=")[::2] for line in data.decode().splitlines() if line)
        note = Notification(fields, pid, time.monotonic())
        self.seen.append(note)
        return note

    def wait_for(self, key: str, value: str | None = None, timeout: float = 20.0) -> Notification:
        """The next notification that has ``key`` (with ``value``), skipping others.

        :raises TimeoutError:
        """
        deadline = time.monotonic() + timeout
        while True:
            note = self.receive(max(deadline - time.monotonic(), 0.001))
            if key in note.fields and (value is None or note.fields[key] == value):
                return note

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


def write_toml(path: Path, config: Mapping[str, Any]) -> Path:
    from labpower.daemon.testing import to_toml

    path.write_text(to_toml(config))
    return path


def labpowerd(*args: str) -> list[str]:
    """The command line of the daemon in this environment."""
    return [sys.executable, "-m", "labpower.daemon", *args]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything systemd may have set for it."""
    drop = {
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "JOURNAL_STREAM",
        "INVOCATION_ID",
        "LABPOWER_SOCKET",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def run_with_journald(
    workdir: Path, *command: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a private mount namespace next to a real journald (journald_ns.py);
    its journal files stay in ``workdir/log``."""
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            sys.executable,
            str(JOURNALD_NS),
            str(workdir),
            "--",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        check=False,
    )


def scenario(workdir: Path, name: str, timeout: float = 60.0) -> dict[str, Any]:
    """Run one of journal_scenarios.py next to a real journald; return what it observed."""
    result = run_with_journald(
        workdir, sys.executable, str(SCENARIOS), name, str(workdir), timeout=timeout
    )
    assert result.returncode == 0, f"scenario {name} failed:\n{result.stdout}\n{result.stderr}"
    return json.loads((workdir / "result.json").read_text())  # type: ignore[no-any-return]


def journal_entries(workdir: Path, *matches: str) -> list[dict[str, Any]]:
    """The daemon's entries journald stored, oldest first, as ``journalctl -o json``."""
    out = subprocess.run(
        [
            "journalctl",
            "--no-pager",
            "-D",
            str(workdir / "log" / "journal"),
            "-o",
            "json",
            "SYSLOG_IDENTIFIER=labpowerd",
            *matches,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]

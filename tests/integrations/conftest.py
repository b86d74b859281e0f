"""Fixtures of the integration tests: a real sshd in front of labpower daemons, and how to run
the ``labpower`` command against them.

``sshd`` is OpenSSH's own server, started on 127.0.0.1 with a host key, a config and an
authorized key made for the test session; its sessions find ``labpower`` on their PATH (the
workspace's virtualenv) through ``SetEnv``. ``ssh_env`` points the client's ssh at the
session's known_hosts and identity through $LABPOWER_SSH_OPTIONS.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from labpower.client.transport import SSH_OPTIONS_ENV

SSHD = "/usr/sbin/sshd"
BIN = str(Path(sys.executable).parent)
LABPOWER = (sys.executable, "-m", "labpower.client.cli")
RUN_TIMEOUT = 60.0
START_TIMEOUT = 20.0

#: Two small labs, each played by one daemon: "host1" and "host2"
HOST1: dict[str, Any] = {
    "devices": {"bench": {"backend": "mock", "channels": 2}},
    "targets": {
        "dut1": {"device": "bench", "channel": 1, "cycle_delay": 0.1},
        "dut2": {"device": "bench", "channel": 2, "cycle_delay": 0.1},
    },
}
HOST2: dict[str, Any] = {
    "devices": {"rack": {"backend": "mock", "channels": 2}},
    "targets": {
        "dut7": {"device": "rack", "channel": 1, "cycle_delay": 0.1},
        "dut8": {"device": "rack", "channel": 2, "cycle_delay": 0.1},
    },
}


@dataclass(frozen=True, slots=True)
class Sshd:
    port: int
    ssh_config: Path
    proc: subprocess.Popen[bytes]

    def address(self, socket_path: str) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{socket_path}"

    @property
    def env(self) -> dict[str, str]:
        return {SSH_OPTIONS_ENV: f"-F {self.ssh_config}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "labpower-test", "-f", str(path)],
        check=True,
        timeout=RUN_TIMEOUT,
    )
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real sshd on 127.0.0.1 that lets the session's key in as root."""
    assert os.path.exists(SSHD), "tests/integrations need OpenSSH's server (apt: openssh-server)"
    d = tmp_path_factory.mktemp("sshd")
    host_pub = _keygen(d / "host_key")
    (d / "authorized_keys").write_text(_keygen(d / "id_key") + "\n")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile none\nStrictModes no\n"
        "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUseDNS no\n"
        f"SetEnv PATH={BIN}:/usr/bin:/bin\n"
    )
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    config = d / "ssh_config"
    config.write_text(
        f"Host *\n  IdentityFile {d / 'id_key'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {d / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n  LogLevel ERROR\n  GSSAPIAuthentication no\n"
    )
    # privilege separation directory, which sshd insists on
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = d / "sshd.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    try:
        # sshd announces itself on stderr and has no other readiness signal: poll its log
        deadline = time.monotonic() + START_TIMEOUT
        while "Server listening" not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"sshd exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"sshd did not start:\n{log.read_text()}"
            time.sleep(0.02)
        yield Sshd(port, config, proc)
    finally:
        proc.terminate()
        proc.wait(START_TIMEOUT)


@pytest.fixture
def ssh_env(sshd: Sshd, monkeypatch: pytest.MonkeyPatch) -> Sshd:
    """This process's clients use the test sshd's keys."""
    for key, value in sshd.env.items():
        monkeypatch.setenv(key, value)
    return sshd


def run_labpower(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run the ``labpower`` command; no $LABPOWER_* from this process leaks into it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABPOWER_")}
    return subprocess.run(
        [*LABPOWER, *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )

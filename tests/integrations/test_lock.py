"""``labpower lock TARGET -- COMMAND``: the lease is held while COMMAND runs, COMMAND itself
may switch the target, and its exit status is the command's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from labpower.client import Locked
from labpower.daemon.testing import DaemonProcess

from tests.conftest import StartDaemon
from tests.integrations.conftest import HOST1, LABPOWER, RUN_TIMEOUT, run_labpower

# The locked command: switch the target under the lease with the labpower command, say so,
# wait for the test's go-ahead on stdin, and exit with status 3.
CHILD = f"""
import subprocess, sys
cmd = [{sys.executable!r}, "-m", "labpower.client.cli", "on", "dut1"]
on = subprocess.run(cmd, capture_output=True, text=True)
print("switched", on.returncode, on.stdout.strip(), flush=True)
sys.stdin.readline()
sys.exit(3)
"""


@pytest.fixture
def host(start_daemon: StartDaemon) -> DaemonProcess:
    return start_daemon(HOST1)


def test_lock_holds_the_lease_while_the_command_runs(host: DaemonProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABPOWER_")}
    lock = subprocess.Popen(
        [
            *LABPOWER,
            "--socket",
            host.socket_path,
            "lock",
            "--name",
            "ci-job",
            "dut1",
            "--",
            sys.executable,
            "-c",
            CHILD,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert lock.stdin is not None
    assert lock.stdout is not None
    try:
        # the command switched the target itself, under the lease
        assert lock.stdout.readline() == "switched 0 dut1: on (verified)\n"
        with host.client() as other:
            held = other.get("dut1")
            assert held.state == "on"
            assert held.lease is not None
            assert held.lease.name == "ci-job"
            with pytest.raises(Locked, match="ci-job"):
                other.off("dut1")
            lock.stdin.write("go\n")
            lock.stdin.flush()
            assert lock.wait(RUN_TIMEOUT) == 3
            # released once the command ended: anybody may switch again
            assert other.off("dut1").state == "off"
            assert other.get("dut1").lease is None
    finally:
        lock.stdin.close()
        lock.stdout.close()
        lock.wait(RUN_TIMEOUT)


def test_lock_refused_while_somebody_holds_it(host: DaemonProcess) -> None:
    with host.client() as holder, holder.lease("dut2", name="someone-else"):
        result = run_labpower("--socket", host.socket_path, "lock", "dut2", "--", "true")
        assert result.returncode == 1
        assert "someone-else" in result.stderr


def test_lock_exit_statuses(host: DaemonProcess) -> None:
    sock = ("--socket", host.socket_path)
    assert run_labpower(*sock, "lock", "dut2", "--", "true").returncode == 0
    assert run_labpower(*sock, "lock", "dut2", "--", "sh", "-c", "exit 7").returncode == 7
    missing = run_labpower(*sock, "lock", "dut2", "--", "no-such-command-here")
    assert missing.returncode == 127
    assert "command not found" in missing.stderr
    usage = run_labpower(*sock, "lock", "dut2")
    assert usage.returncode == 2
    assert "no COMMAND" in usage.stderr
    # the lease never outlives the command
    with host.client() as other:
        assert other.get("dut2").lease is None

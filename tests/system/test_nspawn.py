"""The shipped units under real systemd as PID 1, in a systemd-nspawn container.

The container boots this machine's own /usr (--volatile=yes: a fresh /etc and /var, nothing
written to the host) with packaging/'s units, sysusers.d and tmpfiles.d files installed, and
the project's tree and Python visible read-only. A checker unit inside (nspawn_check.py) acts
as two users and as the admin, then powers the container off; the test asserts on what it saw.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..nspawn import machine_name
from .conftest import HERE, PACKAGING, REPO

CONFIG = """\
[devices.bench]
backend = "mock"
channels = 2

[targets.dut1]
device = "bench"
channel = 1
"""
WATCHDOG_SEC = 2


def python_prefix() -> Path | None:
    """Where this Python lives, when /usr (which the container has) is not the place."""
    prefix = Path(sys.base_prefix).resolve()
    return None if prefix.is_relative_to("/usr") else prefix


def install(tmp_path: Path) -> dict[str, Path]:
    units = tmp_path / "units"
    units.mkdir()
    for unit in (PACKAGING / "systemd").iterdir():
        shutil.copy(unit, units)
    # Test-only changes, as a drop-in: the daemon from this tree, with a
    # short watchdog; this Python made visible where it lives.
    prefix = python_prefix()
    home = ""
    if prefix is not None and (prefix.is_relative_to("/root") or prefix.is_relative_to("/home")):
        # ProtectHome=yes hides home directories: show the service this one, read-only
        home = f"ProtectHome=tmpfs\nBindReadOnlyPaths={prefix}\n"
    dropin = units / "labpowerd.service.d"
    dropin.mkdir()
    # The tree itself, read-only: the unit's PrivateTmp= would hide a checkout under /tmp.
    (dropin / "test.conf").write_text(
        "[Service]\nExecStart=\n"
        f"ExecStart={REPO}/.venv/bin/labpowerd\n"
        f"WatchdogSec={WATCHDOG_SEC}s\nRestartSec=100ms\n{home}"
        f"BindReadOnlyPaths={REPO}\n"
    )
    (units / "labpower-check.service").write_text(
        "[Unit]\nDescription=labpower system test checker\n"
        "Requires=labpowerd.socket\nAfter=labpowerd.socket\n"
        "SuccessAction=poweroff-force\nFailureAction=poweroff-force\n"
        "[Service]\nType=oneshot\nTimeoutStartSec=120\n"
        f"ExecStart={REPO}/.venv/bin/python {HERE}/nspawn_check.py /out\n"
        "StandardOutput=journal+console\nStandardError=journal+console\n"
    )
    (units / "labpower-test.target").write_text(
        "[Unit]\nDescription=labpower system test\n"
        "Requires=labpowerd.socket labpower-check.service\n"
    )
    sysusers = tmp_path / "sysusers.d"
    sysusers.mkdir()
    shutil.copy(PACKAGING / "sysusers.d/labpower.conf", sysusers)
    (sysusers / "test-users.conf").write_text(
        'u alice - "labpower test, member of group labpower"\n'
        "m alice labpower\n"
        'u bob - "labpower test, not a member"\n'
    )
    tmpfiles = tmp_path / "tmpfiles.d"
    tmpfiles.mkdir()
    shutil.copy(PACKAGING / "tmpfiles.d/labpower.conf", tmpfiles)
    config = tmp_path / "etc-labpower"
    config.mkdir()
    (config / "labpowerd.toml").write_text(CONFIG)
    out = tmp_path / "out"
    out.mkdir()
    return {
        "units": units,
        "sysusers": sysusers,
        "tmpfiles": tmpfiles,
        "config": config,
        "out": out,
    }


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return boot(install(tmp_path_factory.mktemp("nspawn")), "labpower-test.target")


def boot(d: dict[str, Path], unit: str) -> dict[str, Any]:
    """Boot the container with ``d``'s units, sysusers.d, tmpfiles.d, /etc/labpower and
    /out (see :func:`install`) into ``unit``; the checker's result.json."""
    prefix = python_prefix()
    with machine_name() as machine:
        return _boot(d, unit, prefix, machine)


def _boot(d: dict[str, Path], unit: str, prefix: Path | None, machine: str) -> dict[str, Any]:
    command = [
        "systemd-nspawn",
        "--quiet",
        "--directory=/",
        "--volatile=yes",
        "--register=no",
        f"--machine={machine}",
        "--keep-unit",
        "--private-network",
        f"--bind-ro={d['units']}:/etc/systemd/system",
        f"--bind-ro={d['sysusers']}:/etc/sysusers.d",
        f"--bind-ro={d['tmpfiles']}:/etc/tmpfiles.d",
        f"--bind={d['config']}:/etc/labpower",
        f"--bind={d['out']}:/out",
        f"--bind-ro={REPO}",
        *([f"--bind-ro={prefix}"] if prefix is not None else []),
        "--boot",
        "--",
        f"systemd.unit={unit}",
        "systemd.firstboot=no",
    ]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=150,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    result_file = d["out"] / "result.json"
    assert result_file.exists(), f"the checker did not report:\n{run.stdout}\n{run.stderr}"
    result: dict[str, Any] = json.loads(result_file.read_text())
    assert "checker_error" not in result, f"{result}\n{run.stdout}\n{run.stderr}"
    return result


pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]


def test_the_socket_starts_the_daemon_on_the_first_call(booted: dict[str, Any]) -> None:
    assert booted["before_first_call"] == "inactive"
    assert booted["alice_on"]["reply"]["parameters"]["target"]["state"] == "on"
    assert booted["after_first_call"] == "active"


def test_the_daemon_runs_as_user_labpower_from_sysusers(booted: dict[str, Any]) -> None:
    assert booted["daemon_uid"] == booted["labpower_uid"] != 0


def test_only_members_of_group_labpower_may_connect(booted: dict[str, Any]) -> None:
    assert "reply" in booted["alice_on"]
    assert booted["bob_on"]["errno"] == 13, booted["bob_on"]  # EACCES from the socket's mode


def test_systemctl_reload_applies_the_new_config_in_the_same_process(
    booted: dict[str, Any],
) -> None:
    assert booted["reload_exit"] == 0
    assert booted["targets_after_reload"] == ["dut1", "dut2"]
    assert booted["pid_after_reload"] == booted["first_pid"], "reloaded, not restarted"
    dut1 = booted["dut1_after_reload"]["reply"]["parameters"]["target"]
    assert (dut1["state"], dut1["verified"]) == ("on", True), "nothing was switched"


def test_a_frozen_event_loop_is_killed_by_the_watchdog_and_restarted(
    booted: dict[str, Any],
) -> None:
    assert int(booted["restarted"]["NRestarts"]) >= 1
    assert "Watchdog timeout" in booted["watchdog_log"]
    assert "reply" in booted["alice_after_restart"], "the restarted daemon serves again"


def test_history_reads_the_journal_across_the_restart(booted: dict[str, Any]) -> None:
    """The restarted daemon (user labpower, group systemd-journal) serves the entries of the
    one the watchdog killed, from the journal."""
    entries = booted["history_after_restart"]["reply"]["parameters"]["entries"]
    switched = [e for e in entries if e.get("op") == "on" and e.get("state") == "on"]
    assert switched, entries
    assert switched[0]["target"] == "dut1"

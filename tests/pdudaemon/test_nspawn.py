"""The services in front of labpowerd under real systemd as PID 1 (systemd-nspawn, this
machine's /usr, a fresh /etc and /var), in one boot: labpower-pdudaemon's socket starts the
hardened service as its own user from sysusers.d, and a pduclient exchange switches a target
through labpowerd's socket; labpower-web's socket starts its hardened service (no network of
its own, AF_UNIX only) as its own user, and its /metrics shows the state that switch made."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from ..system.test_nspawn import boot

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
HERE = Path(__file__).resolve().parent
CONFIG = """\
[devices.bench]
backend = "mock"
channels = 2

[targets.dut1]
device = "bench"
channel = 1
pdudaemon = "pdu01:1"

[targets.dut2]
device = "bench"
channel = 2
"""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]


def dropin(units: Path, unit: str, command: str) -> None:
    """Test-only: ``command`` from this tree, and this tree and Python visible read-only
    (ProtectHome= would hide a Python under /root)."""
    prefix = Path(sys.base_prefix).resolve()
    binds = [str(REPO)] + ([str(prefix)] if not prefix.is_relative_to("/usr") else [])
    d = units / f"{unit}.d"
    d.mkdir()
    (d / "test.conf").write_text(
        f"[Service]\nExecStart=\nExecStart={command}\nProtectHome=tmpfs\n"
        + "".join(f"BindReadOnlyPaths={b}\n" for b in binds)
    )


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("nspawn-pdu")
    units = tmp / "units"
    units.mkdir()
    for unit in (PACKAGING / "systemd").iterdir():
        shutil.copy(unit, units)
    dropin(units, "labpowerd.service", f"{REPO}/.venv/bin/labpowerd")
    dropin(units, "labpower-pdudaemon.service", f"{REPO}/.venv/bin/labpower-pdudaemon")
    dropin(units, "labpower-web.service", f"{REPO}/.venv/bin/labpower-web")
    (units / "pdu-check.service").write_text(
        "[Unit]\nRequires=labpowerd.socket labpower-pdudaemon.socket labpower-web.socket\n"
        "After=labpowerd.socket labpower-pdudaemon.socket labpower-web.socket\n"
        "SuccessAction=poweroff-force\nFailureAction=poweroff-force\n"
        "[Service]\nType=oneshot\nTimeoutStartSec=120\n"
        f"ExecStart={REPO}/.venv/bin/python {HERE}/nspawn_check.py /out\n"
    )
    (units / "pdu-test.target").write_text(
        "[Unit]\nRequires=labpowerd.socket labpower-pdudaemon.socket labpower-web.socket\n"
        "Requires=pdu-check.service\n"
    )
    etc = {name: tmp / name for name in ("sysusers", "tmpfiles", "config", "out")}
    for path in etc.values():
        path.mkdir()
    shutil.copy(PACKAGING / "sysusers.d/labpower.conf", etc["sysusers"])
    shutil.copy(PACKAGING / "tmpfiles.d/labpower.conf", etc["tmpfiles"])
    (etc["config"] / "labpowerd.toml").write_text(CONFIG)
    return boot({"units": units, **etc}, "pdu-test.target")


def test_the_socket_starts_the_service_which_switches(booted: dict[str, Any]) -> None:
    assert booted["before"] == "inactive"
    assert booted["on"] == "ack\n", booted
    assert booted["after"] == "active"
    assert (booted["dut1"]["state"], booted["dut1"]["verified"]) == ("on", True)


def test_a_target_without_a_pdudaemon_name_is_not_reachable(booted: dict[str, Any]) -> None:
    assert booted["unknown"] == "nack\n"


def test_the_service_runs_as_its_own_user_and_the_daemon_logs_it(
    booted: dict[str, Any],
) -> None:
    assert booted["service_uid"] == booted["pdudaemon_uid"] != 0
    assert f"uid {booted['pdudaemon_uid']}" in booted["daemon_log"]


def test_the_web_socket_starts_its_service_which_shows_the_switch(
    booted: dict[str, Any],
) -> None:
    assert booted["web_before"] == "inactive"
    assert booted["web_after"] == "active"
    assert booted["web_uid"] == booted["web_user_uid"] != 0
    metrics = booted["metrics"]
    assert 'labpower_up{host="local"} 1.0' in metrics, metrics
    state = [line for line in metrics.splitlines() if line.startswith("labpower_target_state{")]
    assert any(
        'target="dut1"' in line and 'state="on"' in line and line.endswith(" 1.0") for line in state
    ), state

"""Network devices under the shipped unit, with real systemd as PID 1 (systemd-nspawn, as
test_nspawn.py): the unit's ``RestrictAddressFamilies=AF_UNIX`` really forbids them, and the
daemon says so and what to change, at start and in ``labpower list``; with the shipped
drop-in installed as its header says, the same devices switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import HERE, REPO
from .test_nspawn import boot, install

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = install(tmp_path_factory.mktemp("nspawn-network"))
    units: Path = d["units"]
    (units / "labpower-network-check.service").write_text(
        "[Unit]\nDescription=labpower network system test checker\n"
        "Requires=labpowerd.socket\nAfter=labpowerd.socket\n"
        "SuccessAction=poweroff-force\nFailureAction=poweroff-force\n"
        "[Service]\nType=oneshot\nTimeoutStartSec=120\n"
        f"ExecStart={REPO}/.venv/bin/python {HERE}/nspawn_network_check.py /out\n"
        "StandardOutput=journal+console\nStandardError=journal+console\n"
    )
    (units / "labpower-network-test.target").write_text(
        "[Unit]\nDescription=labpower network system test\n"
        "Requires=labpowerd.socket labpower-network-check.service\n"
    )
    return boot(d, "labpower-network-test.target")


def test_without_the_drop_in_the_daemon_names_the_cause(booted: dict[str, Any]) -> None:
    listed = booted["forbidden_list"]
    for name in ("plug", "pdu"):  # HTTP (TCP) and SNMP (UDP) alike
        assert listed[name]["available"] is False
        problem = listed[name]["problem"]
        assert "network is forbidden to labpowerd" in problem, problem
        assert "labpowerd.service.d/network.conf" in problem, problem
        assert "IPAddressAllow=" in problem, problem
    # a switch is refused with the same reason, and nothing was switched
    assert booted["forbidden_on"]["reply"]["error"] == "io.labpower.Power.DeviceUnavailable"
    assert "network is forbidden" in booted["forbidden_on"]["reply"]["parameters"]["reason"]
    assert booted["relays_while_forbidden"] == {"1": False, "2": False}
    # said at start, in the journal
    assert "network is forbidden to labpowerd" in booted["forbidden_journal"]


def test_with_the_drop_in_the_same_devices_work(booted: dict[str, Any]) -> None:
    plug = booted["allowed_on"]["reply"]["parameters"]["target"]
    assert (plug["state"], plug["verified"], plug["available"]) == ("on", True, True)
    assert booted["relays_after_on"] == {"1": True, "2": False}
    # the SNMP device now reaches the network: what stops it is that nothing answers there
    assert "forbidden" not in booted["snmp_after"]

"""An SNMP PDU (a real snmpsim agent) through the real daemon and client: switching with
read-back, readings, and a PDU that stops answering and comes back by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labpower.backends.sim.snmp import READINGS, SnmpAgent

WAIT = 20.0


@pytest.fixture
def eaton(tmp_path: Path) -> Iterator[SnmpAgent]:
    with SnmpAgent(tmp_path / "eaton", "eaton", outlets=2, community="lab") as agent:
        yield agent


def config(agent: SnmpAgent, community_file: Path) -> dict[str, Any]:
    return {
        "daemon": {"log_level": "debug"},
        "devices": {
            "pdu": {
                "backend": "snmp",
                "host": agent.address,
                "profile": "eaton",
                "community_file": str(community_file),
                "channels": 2,
                "timeout": 5.0,
                "health_interval": 0.3,
            }
        },
        "targets": {
            "dut1": {"device": "pdu", "channel": 1},
            "dut2": {"device": "pdu", "channel": 2},
        },
    }


def test_snmp_pdu_through_the_daemon(eaton: SnmpAgent, tmp_path: Path, start_daemon: Any) -> None:
    community = tmp_path / "community"
    community.write_text("lab\n")
    community.chmod(0o600)
    daemon = start_daemon(config(eaton, community))
    with daemon.client(timeout=30.0) as lab:
        on = lab.on("dut2")
        assert (on.state, on.verified, on.available) == ("on", True, True)
        listed = {t.name: (t.state, t.verified) for t in lab.targets()}
        assert listed == {"dut1": ("off", True), "dut2": ("on", True)}
        (reading,) = lab.target("dut2").read()
        assert (reading.voltage, reading.current) == READINGS["eaton"]
        eaton.pause()
        try:
            end = time.monotonic() + WAIT
            while lab.get("dut1").available:
                assert time.monotonic() < end, "the PDU was never seen gone"
                time.sleep(0.05)
            gone = next(t for t in lab.targets() if t.name == "dut1")
            assert gone.problem == "no answer within 5 s"
        finally:
            eaton.resume()
        end = time.monotonic() + WAIT
        while not next(t for t in lab.targets() if t.name == "dut1").available:
            assert time.monotonic() < end, "the PDU never came back"
            time.sleep(0.05)
        assert lab.off("dut2").verified
    assert "lab\n" not in daemon.stderr()

"""Run by labgrid's own pytest (its venv, its plugin, ``--lg-env``): labgrid's unmodified
PDUDaemonDriver and NetworkPowerDriver (model ``rest``) switching through labpower-pdudaemon.
$LISTENER is the listener's port. Not collected by the workspace's pytest (no test_ prefix)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests

PORT = os.environ["LISTENER"]


def status(query: str) -> str:
    reply = requests.get(f"http://127.0.0.1:{PORT}/power/status?{query}", timeout=60)
    reply.raise_for_status()
    return str(reply.text).strip()


def test_pdudaemon_driver_on_off_cycle(env: Any) -> None:
    power = env.get_target("pdu").get_driver("PowerProtocol")
    power.on()
    assert status("hostname=pdu01&port=19") == "on"
    power.off()
    assert status("hostname=pdu01&port=19") == "off"
    power.cycle()
    assert status("hostname=pdu01&port=19") == "on"


def test_network_power_driver_rest_on_off_cycle_get(env: Any) -> None:
    power = env.get_target("rest").get_driver("PowerProtocol")
    power.on()
    assert power.get() is True
    power.off()
    assert power.get() is False
    power.cycle()
    assert power.get() is True


def test_rest_get_of_an_unknown_state_is_an_error_not_off(env: Any) -> None:
    power = env.get_target("blind").get_driver("PowerProtocol")
    with pytest.raises(requests.HTTPError):
        power.get()

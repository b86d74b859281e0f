"""HTTP plugs and PDUs through the real daemon and client: switching with read-back, readings,
honest availability with its reason, health checks, and secrets in the config."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from labpower.backends.sim import Switch
from labpower.backends.sim.http_cli import HTTP_SIMULATORS
from labpower.client import Client
from labpower.client.errors import DeviceUnavailable, NotSupported, StateMismatch
from labpower.daemon.testing import to_toml

from .conftest import MakeSim, net_config

#: how long a test waits for a condition the daemon reaches by itself (health checks)
WAIT = 15.0


def wait_for(what: str, condition: Any) -> Any:
    """Poll ``condition()`` until it returns something true (at most WAIT seconds)."""
    end = time.monotonic() + WAIT
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture(params=sorted(HTTP_SIMULATORS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_switch_list_and_read(kind: str, http_sims: MakeSim, start_daemon: Any) -> None:
    sim = http_sims(kind, channels=2)
    daemon = start_daemon(net_config({"pdu": sim}, timeout=2.0))
    with daemon.client() as lab:
        on = lab.on("pdu2")
        assert (on.state, on.verified, on.available) == ("on", True, True)
        sim.relays[1] = True  # a button pressed on the device
        listed = {t.name: (t.state, t.verified) for t in lab.targets(refresh=True)}
        assert listed == {"pdu1": ("on", True), "pdu2": ("on", True)}
        (reading,) = lab.target("pdu2").read()
        assert reading.voltage > 200
        assert reading.current > 0
    assert sim.switches == [Switch(2, True)]


#: (kind, simulator options, what the model's meter gives: (volts, amps) while on, or None)
METER_MODELS = [
    ("gude", {"channels": 2}, (230.4, 0.105)),  # a meter per port
    ("gude", {"channels": 2, "metering": False}, None),
    ("shelly", {"generation": 1, "emeter": True}, (230.4, 0.105)),  # 3EM: phase A
    ("shelly", {"generation": 1}, None),  # 1PM: power only
    ("shelly", {"generation": 1, "channels": 2}, None),  # 2.5: power, and the supply voltage
    ("shelly", {"generation": 1, "metering": False}, None),  # Shelly 1
]


@pytest.mark.parametrize(("kind", "options", "on_reading"), METER_MODELS)
def test_readings_as_the_model_meters(
    kind: str,
    options: dict[str, Any],
    on_reading: tuple[float, float] | None,
    http_sims: MakeSim,
    start_daemon: Any,
) -> None:
    sim = http_sims(kind, **options)
    daemon = start_daemon(net_config({"pdu": sim}, timeout=2.0))
    with daemon.client() as lab:
        target = lab.on("pdu1")
        assert (target.state, target.verified) == ("on", True)
        if on_reading is None:
            with pytest.raises(NotSupported):
                list(lab.target("pdu1").read())
            return
        (reading,) = lab.target("pdu1").read()
        assert (reading.voltage, reading.current) == pytest.approx(on_reading)
        assert lab.off("pdu1").state == "off"
        (reading,) = lab.target("pdu1").read()
        assert (reading.voltage, reading.current) == pytest.approx((on_reading[0], 0.0))
    assert sim.switches == [Switch(1, True), Switch(1, False)]


def test_ignored_switch_is_a_state_mismatch(
    kind: str, http_sims: MakeSim, start_daemon: Any
) -> None:
    sim = http_sims(kind)
    daemon = start_daemon(net_config({"pdu": sim}, timeout=2.0))
    sim.ignore_next_switch()
    with daemon.client() as lab:
        with pytest.raises(StateMismatch):
            lab.on("pdu1")
        assert lab.on("pdu1").is_on


def test_device_gone_and_back_by_itself(http_sims: MakeSim, start_daemon: Any) -> None:
    sim = http_sims("shelly")
    other = http_sims("tasmota")
    config = net_config({"plug": sim, "other": other}, timeout=1.0, health_interval=0.2)
    daemon = start_daemon(config)
    with daemon.client() as lab:
        assert lab.get("plug1").available
        sim.refuse()
        # nobody calls: the health check finds it gone, with the reason
        gone = wait_for("plug gone", lambda: _unavailable(lab, "plug1"))
        assert gone.problem == f"connection refused by {sim.address}"
        with pytest.raises(DeviceUnavailable, match="connection refused"):
            lab.on("plug1")
        assert lab.on("other1").is_on  # the others switch as before
        sim.come_back()
        wait_for("plug back", lambda: lab.targets()[0].available)
        assert lab.on("plug1").is_on


def _unavailable(lab: Client, name: str) -> Any:
    target = next(t for t in lab.targets() if t.name == name)
    return None if target.available else target


@pytest.mark.timing
def test_hung_device_does_not_hold_up_the_others(http_sims: MakeSim, start_daemon: Any) -> None:
    hung, fine = http_sims("netio"), http_sims("gude")
    hung.hang()
    timeout = 3.0
    started = time.monotonic()
    daemon = start_daemon(net_config({"hung": hung, "fine": fine}, timeout=timeout))
    startup = time.monotonic() - started
    with daemon.client() as lab:
        targets = {t.name: t for t in lab.targets()}
        assert not targets["hung1"].available
        assert targets["hung1"].problem == f"open timed out after {timeout:g} s"
        # a List does not wait for the hung device again: it is left to its health checks
        begin = time.monotonic()
        assert lab.on("fine1").is_on
        assert {t.name: t.available for t in lab.targets()} == {"hung1": False, "fine1": True}
        assert time.monotonic() - begin < timeout
    # READY came after the hung device's deadline, not much later (a loaded machine adds some)
    assert startup >= timeout
    hung.heal()


def test_auth_failure_is_the_reason(http_sims: MakeSim, start_daemon: Any, tmp_path: Path) -> None:
    sim = http_sims("shelly", password="right")
    wrong = tmp_path / "pw"
    wrong.write_text("wrong\n")
    wrong.chmod(0o600)
    daemon = start_daemon(net_config({"plug": sim}, timeout=2.0, password_file=str(wrong)))
    with daemon.client() as lab:
        (target,) = lab.targets()
        assert not target.available
        assert "authentication failed" in (target.problem or "")


def test_password_from_a_credential(http_sims: MakeSim, start_daemon: Any, tmp_path: Path) -> None:
    sim = http_sims("netio", password="n3tio")
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    (creds / "netio-pw").write_text("n3tio")
    config = net_config({"pdu": sim}, timeout=2.0, password_credential="netio-pw")
    daemon = start_daemon(config, env={"CREDENTIALS_DIRECTORY": str(creds)})
    with daemon.client() as lab:
        assert lab.on("pdu1").verified
    assert "n3tio" not in daemon.stderr()


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labpower.daemon", "--check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_check_config_names_an_inline_secret_others_can_read(tmp_path: Path) -> None:
    config = net_config({})
    config["devices"]["plug"] = {"backend": "shelly", "host": "127.0.0.1:8080"}
    config["devices"]["plug"]["password"] = "inline-pw"
    path = tmp_path / "labpowerd.toml"
    path.write_text(to_toml(config))
    path.chmod(0o644)
    result = _check(path)
    assert result.returncode != 0
    assert f"{path}: devices.plug.password: a secret is written inline" in result.stderr
    assert "readable by everyone (mode 0644)" in result.stderr
    assert "inline-pw" not in result.stderr
    path.chmod(0o640)
    result = _check(path)
    assert result.returncode == 0, result.stderr


def test_check_config_refuses_a_secret_file_others_can_read(tmp_path: Path) -> None:
    secret = tmp_path / "community"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    path = tmp_path / "labpowerd.toml"
    path.write_text(
        to_toml(
            {
                "devices": {
                    "plug": {
                        "backend": "tasmota",
                        "host": "127.0.0.1",
                        "password_file": str(secret),
                    }
                }
            }
        )
    )
    result = _check(path)
    assert result.returncode != 0
    assert "devices.plug.password_file" in result.stderr
    assert f"chmod o-rwx {secret}" in result.stderr
    assert "s3cret" not in result.stderr

"""labpower-web's /metrics against a real labpowerd on the standard mock lab: Prometheus's own
checker (promtool, Debian's prometheus package) accepts it, and it says what the lab did.

Run: ``.venv/bin/pytest tests/web/test_metrics.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest
from labpower.client import Client, DeviceError, DeviceUnavailable, StateMismatch
from labpower.client.wire import Call
from labpower.daemon.testing import DaemonProcess
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import STANDARD, StartDaemon, mock_config
from ..robustness.users import run_as
from .conftest import StartWeb, eventually

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
#: throwaway ids with no passwd entry: the daemon checks numbers
ALICE, BOB = 61201, 61202


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found[name, frozenset(labels.items())]


def promtool(text: bytes) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool is not None, "promtool is missing: ./dev installs Debian's prometheus package"
    return subprocess.run(
        [tool, "check", "metrics"], input=text.decode(), capture_output=True, text=True, timeout=30
    )


def make_history(lab: Client) -> None:
    """Switches of every outcome, a lease, and calls to an absent board."""
    lab.on("dut1")
    lab.off("dut1")
    lab.cycle("dut1", delay=0.0)
    with pytest.raises(StateMismatch):
        lab.on("stuck")
    with pytest.raises(DeviceError):
        lab.on("faulty")
    for _ in range(2):
        with pytest.raises(DeviceUnavailable):
            lab.on("gone")
    lab.acquire("dut2", name="nightly")


@pytest.mark.timing
def test_promtool_accepts_the_metrics_and_they_say_what_happened(
    start_daemon: StartDaemon, start_web: StartWeb
) -> None:
    daemon = start_daemon()
    web = start_web(["--socket", daemon.socket_path, "--read-interval", "0.2"])
    with daemon.client(timeout=10) as lab:
        make_history(lab)
        status, headers, body = web.get("/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        checked = promtool(body)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout == checked.stderr == ""  # not even a lint warning
        found = samples(body.decode())

    host = {"host": "local"}
    assert value(found, "labpower_up", **host) == 1
    assert (
        value(found, "labpower_target_state", **host, target="dut1", device="bench", state="on")
        == 1
    )
    assert (
        value(found, "labpower_target_state", **host, target="dut1", device="bench", state="off")
        == 0
    )
    assert value(found, "labpower_target_verified", **host, target="blind", device="blind") == 0
    assert value(found, "labpower_target_available", **host, target="gone", device="unplugged") == 0
    assert value(found, "labpower_target_lease_held", **host, target="dut2", device="bench") == 1
    assert value(found, "labpower_target_lease_held", **host, target="dut1", device="bench") == 0

    def switches(target: str, op: str, result: str) -> float:
        return value(
            found, "labpower_target_switches_total", **host, target=target, op=op, result=result
        )

    assert switches("dut1", "on", "ok") == 1
    assert switches("dut1", "off", "ok") == 1
    assert switches("dut1", "cycle", "ok") == 2  # its off and its on
    assert switches("stuck", "on", "mismatch") == 1
    assert switches("faulty", "on", "error") == 1
    assert switches("gone", "on", "unavailable") == 2
    latency = "labpower_target_switch_duration_seconds"
    assert value(found, f"{latency}_count", **host, target="dut1") == 4
    assert value(found, f"{latency}_bucket", **host, target="dut1", le="+Inf") == 4
    assert 0 < value(found, f"{latency}_sum", **host, target="dut1") < 4 * 0.5

    assert (
        value(found, "labpower_device_available", **host, device="unplugged", backend="mock") == 0
    )
    assert value(found, "labpower_device_available", **host, device="bench", backend="mock") == 1
    # at start, then at each of the two calls: the board does not open
    assert (
        value(found, "labpower_device_errors_total", **host, device="unplugged", kind="unavailable")
        >= 3
    )
    assert value(found, "labpower_device_errors_total", **host, device="faulty", kind="error") == 1
    assert value(found, "labpower_device_errors_total", **host, device="bench", kind="timeout") == 0

    # the web service's own connections (List/Stats, its log subscription, its reads) and
    # this test's client
    assert value(found, "labpower_daemon_connections", **host) >= 3
    assert value(found, "labpower_daemon_log_subscribers", **host) == 1
    assert value(found, "labpower_daemon_log_entries_dropped_total", **host) == 0
    assert value(found, "labpower_daemon_uptime_seconds", **host) > 0
    versions = [labels for name, labels in found if name == "labpower_daemon_build_info"]
    assert len(versions) == 1
    assert dict(versions[0])["version"]


def test_readings_appear_as_gauges_in_base_units(
    start_daemon: StartDaemon, start_web: StartWeb
) -> None:
    daemon = start_daemon(
        mock_config({"bench": {"channels": 1}}, {"dut": {"device": "bench", "channel": 1}})
    )
    web = start_web(["--socket", daemon.socket_path, "--read-interval", "0.1"])
    with daemon.client(timeout=10) as lab:
        lab.on("dut")
    key = {"host": "local", "target": "dut"}

    def five_volts() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        found = samples(web.get("/metrics")[2].decode())
        voltage = found.get(("labpower_target_voltage_volts", frozenset(key.items())))
        return found if voltage == 5.0 else None

    # the mock reads (0 V, 0 A) first, then (5 V, 2 A)
    found = eventually(five_volts, 5.0, "a reading of 5 V in the metrics")
    assert value(found, "labpower_target_voltage_volts", **key) == 5.0
    assert value(found, "labpower_target_current_amperes", **key) == 2.0
    assert value(found, "labpower_target_apparent_power_voltamperes", **key) == 10.0
    assert value(found, "labpower_target_reading_timestamp_seconds", **key) > 1.7e9


def test_openmetrics_when_the_scraper_asks_for_it(
    start_daemon: StartDaemon, start_web: StartWeb
) -> None:
    daemon = start_daemon()
    web = start_web(["--socket", daemon.socket_path])
    status, headers, body = web.get("/metrics", accept=OPENMETRICS)
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    # the strict parser: raises on any error
    parsed = parse_openmetrics(text)  # type: ignore[no-untyped-call]  # the parser has no annotations
    families = {f.name: f for f in parsed}
    assert families["labpower_target_switches"].type == "counter"
    assert families["labpower_target_switch_duration_seconds"].type == "histogram"


def test_a_daemon_that_is_down_is_up_0_and_the_rest_still_checks(
    start_daemon: StartDaemon, start_web: StartWeb, tmp_path: Any
) -> None:
    daemon = start_daemon()
    inventory = tmp_path / "lab.toml"
    inventory.write_text(
        f'[hosts.bench1]\nsocket = "{daemon.socket_path}"\n'
        f'[hosts.bench2]\nsocket = "{tmp_path / "nobody.sock"}"\n'
    )
    web = start_web(["--lab", str(inventory)])
    body = web.get("/metrics")[2]
    checked = promtool(body)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    found = samples(body.decode())
    assert value(found, "labpower_up", host="bench1") == 1
    assert value(found, "labpower_up", host="bench2") == 0
    assert (
        value(
            found,
            "labpower_target_state",
            host="bench1",
            target="dut1",
            device="bench",
            state="off",
        )
        == 1
    )
    assert not [
        labels for name, labels in found if ("host", "bench2") in labels and name != "labpower_up"
    ]
    # the page has both hosts too: bench1's targets, bench2 with why it cannot be asked
    hosts = json.loads(web.get("/api/state")[2])["hosts"]
    assert [h["name"] for h in hosts] == ["bench1", "bench2"]
    assert {t["name"] for t in hosts[0]["targets"]} == {t for t in STANDARD["targets"]}
    assert hosts[0]["error"] is None
    assert hosts[1]["targets"] == []
    assert "nobody.sock" in hosts[1]["error"]


def test_a_restarted_daemon_is_followed_again(
    start_daemon: StartDaemon, start_web: StartWeb
) -> None:
    daemon = start_daemon(
        mock_config({"bench": {"channels": 1}}, {"dut": {"device": "bench", "channel": 1}})
    )
    web = start_web(["--socket", daemon.socket_path, "--poll", "0.2"])

    def up() -> float:
        return value(samples(web.get("/metrics")[2].decode()), "labpower_up", host="local")

    assert up() == 1
    assert daemon.stop() == 0
    assert up() == 0
    daemon.start()
    eventually(lambda: up() == 1, 10.0, "labpower_up 1 once the daemon is back")
    with daemon.client(timeout=10) as lab:
        lab.on("dut")

    def switched() -> bool:
        state = json.loads(web.get("/api/state")[2])
        return (
            any(e["target"] == "dut" and e["op"] == "on" for e in state["switches"])
            and state["hosts"][0]["targets"][0]["state"] == "on"
        )

    eventually(switched, 10.0, "the new daemon's switch on the page")


def test_stats_shows_only_the_targets_the_caller_may_read_and_their_devices() -> None:
    """The web service is one more client: what it may show is what the daemon's access
    rules give its user. Stats follows the read policy like List."""
    config = mock_config(
        {"bench": {"channels": 2}, "private": {"channels": 1}},
        {
            "open": {"device": "bench", "channel": 1},
            "alices": {"device": "private", "channel": 1, "allow_users": [ALICE]},
        },
    )
    daemon = DaemonProcess(config)  # under /tmp: other users must reach the socket
    try:
        daemon.start()
        os.chmod(daemon.directory, 0o755)
        os.chmod(daemon.socket_path, 0o666)
        path = daemon.socket_path

        def stats() -> dict[str, Any]:
            with Client(path, timeout=10) as lab:
                return lab.call(Call("io.labpower.Power.Stats", {}))

        def names(answer: dict[str, Any]) -> tuple[list[str], list[str]]:
            return [t["name"] for t in answer["targets"]], [d["name"] for d in answer["devices"]]

        assert names(run_as(BOB, stats)) == (["open"], ["bench"])
        assert names(run_as(ALICE, stats)) == (["open", "alices"], ["bench", "private"])
        assert run_as(BOB, stats)["connections"] >= 1
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()

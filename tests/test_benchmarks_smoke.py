"""The benchmark command runs and measures every figure.

Whether a figure meets its target is the benchmark's to report (benchmarks/results.md), not
a test's to assert: this only checks that ``benchmarks/run.py --quick --json`` works end to
end and that each number it prints is a plausible measurement.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

CORE_FIGURES = {
    "start_to_first_call_ms",
    "start_to_ready_ms",
    "start_uncached_ms",
    "round_trip_median_us",
    "round_trip_p99_us",
    "throughput_ops_per_s",
    "throughput_daemon_cpu_pct",
    "throughput_daemon_cpu_us",
    "throughput_client_cpu_us",
    "log_lost_entries",
    "log_dropped_notices",
    "log_latency_p99_ms",
    "log_latency_median_ms",
    "log_latency_max_ms",
    "log_flat_out_per_s",
    "log_flat_out_p99_ms",
    "log_flat_out_median_ms",
    "rss_after_start_mb",
    "rss_after_clients_mb",
    "rss_after_load_mb",
    "rss_peak_mb",
}

CLIENT_FIGURES = {
    f"{kind}_{what}"
    for kind in ("rt_nospin", "rt_client_spin", "rt_both_spin")
    for what in ("median_us", "p99_us", "client_cpu_us", "daemon_cpu_us")
} | {
    "jumpstarter_median_us",
    "jumpstarter_ratio",
    "cli_on_ms",
    "import_client_ms",
    "python_pass_ms",
    "decoder_1mib_cpu_ms",
    "daemon_calls_per_switch",
}


NET_FIGURES = {
    f"net.{key}"
    for key in (
        *(
            f"{kind}_{what}"
            for kind in ("http_gude", "http_shelly", "snmp")
            for what in (
                "bare_median_ms",
                "labpower_median_ms",
                "overhead_median_ms",
                "daemon_cpu_ms",
            )
        ),
        "concurrent_one_s",
        "concurrent_daemon_cpu_s",
        "concurrent_all_s",
        "concurrent_ratio",
        "concurrent_bare_ratio",
        "start_ready_s",
        "start_serving_s",
        "start_rss_mb",
    )
}

#: figures that are one measurement minus another
DIFFERENCES = {
    "serial.own_overhead_median_ms",
    "modbus.own_overhead_median_ms",
    *(f"net.{kind}_overhead_median_ms" for kind in ("http_gude", "http_shelly", "snmp")),
}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        # under 30 s alone; the suite's other xdist workers share the cores meanwhile
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def values(report: dict[str, Any]) -> dict[str, float]:
    return {key: fig["value"] for key, fig in report["figures"].items()}


@pytest.mark.slow
@pytest.mark.timeout(330)
def test_every_figure_is_measured(report: dict[str, Any]) -> None:
    figures = report["figures"]
    missing = (CORE_FIGURES | CLIENT_FIGURES | NET_FIGURES) - set(figures)
    assert not missing, missing
    if (ROOT / "benchmarks" / "serial_bench.py").exists():
        assert any(key.startswith("serial.") for key in figures)
    assert {"modbus.overhead_median_ms", "modbus.rig_floor_median_ms"} <= set(figures)
    for key, fig in figures.items():
        assert isinstance(fig["value"], int | float), key
        assert math.isfinite(fig["value"]), key
        # a difference of two medians measured apart can come out below zero on a busy
        # machine; every other figure is a time, a rate, a size or a count
        assert fig["value"] >= 0 or key in DIFFERENCES, key
        # a figure with a target says whether it met it
        assert (fig["ok"] is None) == (fig["limit"] is None), key
    assert report["quick"] is True


@pytest.mark.slow
@pytest.mark.timeout(330)
def test_figures_are_plausible(report: dict[str, Any]) -> None:
    v = values(report)
    assert 0 < v["round_trip_median_us"] <= v["round_trip_p99_us"] < 1_000_000
    assert 0 < v["throughput_ops_per_s"] < 10_000_000
    # the daemon worked during the run, on no more CPUs than the machine has
    assert 0 < v["throughput_daemon_cpu_pct"] <= 100 * (os.cpu_count() or 1) + 10
    assert v["throughput_daemon_cpu_us"] > 0
    assert v["throughput_client_cpu_us"] > 0
    assert 0 < v["start_to_ready_ms"] <= v["start_to_first_call_ms"] < 30_000
    assert 0 < v["start_uncached_ms"] < 30_000
    assert 1 < v["rss_after_start_mb"] <= v["rss_peak_mb"] < 1000
    assert v["rss_after_clients_mb"] <= v["rss_peak_mb"]
    assert v["rss_after_load_mb"] <= v["rss_peak_mb"]
    for prefix in ("log_latency", "log_flat_out"):
        assert 0 <= v[f"{prefix}_median_ms"] <= v[f"{prefix}_p99_ms"] < 60_000
    assert v["log_latency_p99_ms"] <= v["log_latency_max_ms"]
    assert v["log_flat_out_per_s"] > 0
    for kind in ("rt_nospin", "rt_client_spin", "rt_both_spin"):
        assert 0 < v[f"{kind}_median_us"] <= v[f"{kind}_p99_us"] < 1_000_000
        assert v[f"{kind}_client_cpu_us"] > 0
    assert v["jumpstarter_median_us"] > 0
    # the command does more than the interpreter's start (but skips the interpreter's
    # teardown, which ``python -c "import labpower.client"`` does: no order between those two)
    assert 0 < v["python_pass_ms"] < v["import_client_ms"] < 30_000
    assert v["python_pass_ms"] < v["cli_on_ms"] < 30_000
    # a switch is some hundreds of Python calls in the daemon: parsing, two log entries, reply
    assert 100 < v["daemon_calls_per_switch"] < 5_000
    assert 0 < v["decoder_1mib_cpu_ms"] < 10_000
    for kind in ("http_gude", "http_shelly", "snmp"):
        assert 0 < v[f"net.{kind}_bare_median_ms"] < 1_000
        assert 0 < v[f"net.{kind}_labpower_median_ms"] < 1_000
    # 8 switches of a PDU that answers in 20 ms each take at least 160 ms
    assert 0.16 <= v["net.concurrent_one_s"] < 60
    assert 0.16 <= v["net.concurrent_all_s"] < 60
    assert 0 < v["net.start_ready_s"] <= v["net.start_serving_s"] < 60
    assert 1 < v["net.start_rss_mb"] < 1000


@pytest.mark.slow
@pytest.mark.timeout(330)
def test_log_subscribers_lose_nothing(report: dict[str, Any]) -> None:
    # Losing an entry is a bug whatever the machine's speed, so this one is asserted.
    v = values(report)
    assert v["log_lost_entries"] == 0
    assert v["log_dropped_notices"] == 0

"""Meter benchmark: a target's hwmon meter read at 100 Hz through a ``Read`` stream of a real
``labpowerd`` child process, for 60 s (``--quick``: 5 s).

The host has no hwmon device, so the benchmark runs in a private mount namespace (``unshare
--mount``, needs root) where ``/sys/class/hwmon`` is a directory of this run holding an
``ina226`` device whose attributes change every reading; the daemon reads it through the same
code as the kernel's.

- ``readings_lost``: readings asked for (duration x 100) minus readings received.
- ``late_max_ms`` / ``late_median_ms``: how late each reading reached the client against the
  schedule ``first + n x 10 ms`` (target: never later than one interval, 10 ms).

``python benchmarks/meter_bench.py [--quick]`` prints the figures.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script: make ``benchmarks`` importable as a package (as benchmarks/run.py does).
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks.serial_bench import cli  # noqa: E402 - needs the path set above

INTERVAL = 0.01
NAMESPACE = ["unshare", "--mount", "--propagation", "private"]
LIMITS = {"readings_lost": 0.0, "late_max_ms": INTERVAL * 1e3}


def _inside(class_dir: str, seconds: float) -> None:
    """In the namespace: mount the fake hwmon class, run the daemon, stream, report."""
    subprocess.run(["mount", "-t", "tmpfs", "none", "/sys/class"], check=True)
    Path("/sys/class/hwmon").mkdir()
    subprocess.run(["mount", "--bind", class_dir, "/sys/class/hwmon"], check=True)
    from labpower.daemon.testing import serve

    config = {
        "daemon": {"log_level": "warning"},
        "devices": {"bench": {"backend": "mock", "channels": 1}},
        "targets": {"dut": {"device": "bench", "channel": 1, "meter": "hwmon:ina226"}},
    }
    count = round(seconds / INTERVAL)
    arrivals: list[float] = []
    with serve(config, timeout=10) as lab:
        start = time.perf_counter()
        for _ in lab.target("dut").read(count=count, interval=INTERVAL):
            arrivals.append(time.perf_counter() - start)
    # the schedule starts at the first reading (which waits for the stream to be set up)
    late = [max(0.0, t - arrivals[0] - n * INTERVAL) for n, t in enumerate(arrivals)]
    print(
        json.dumps(
            {
                "readings_lost": float(count - len(arrivals)),
                "late_median_ms": statistics.median(late) * 1e3,
                "late_max_ms": max(late) * 1e3,
            }
        )
    )


def run(quick: bool = False) -> dict[str, float]:
    seconds = 5.0 if quick else 60.0
    with tempfile.TemporaryDirectory(prefix="labpower-meter-bench-") as tmp:
        device = Path(tmp) / "hwmon0"
        device.mkdir()
        (device / "name").write_text("ina226\n")
        (device / "in1_input").write_text("12000\n")
        (device / "curr1_input").write_text("500\n")
        done = subprocess.run(
            [*NAMESPACE, sys.executable, __file__, "--inside", tmp, str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"meter benchmark failed: {done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["--inside"]:
        _inside(args[1], float(args[2]))
        return 0
    return cli(args, run, LIMITS, __doc__)


if __name__ == "__main__":
    sys.exit(main())

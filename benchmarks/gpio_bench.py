"""GPIO benchmark: On and Off of a relay on a GPIO line, through a real ``labpowerd`` and the
sync :class:`Client`, each call a switch plus the line's read-back (two ioctls in the daemon).

- ``switch_readback_median_us`` / ``switch_readback_p90_us``: one call's round trip as the
  client sees it. Target: <= 150 us median.
- With a daemon of its own (``--chip``), or ``--calibrate MOCK_TARGET`` (a ``mock`` target of
  the running daemon), the calibration row measured in the same run, alternating with the
  GPIO calls: ``mock_switch_readback_median_us``, the same On/Off without a
  chip; ``gpio_over_mock_median_us``, GPIO's own cost above it (two ioctls and the line's
  bookkeeping); ``gpio_to_mock_ratio``. On a machine without a chip (this one) that gives an
  estimate for a real host: the host's own mock round trip times the ratio measured in the
  guest (both figures slowed alike by the emulation); benchmarks/README.md shows the sum.

It needs a real GPIO chip, which this development machine (a container without GPIO) does not
have: the lab-host VM test (tests/vm/test_labhost.py) runs it in the guest on a gpio-sim chip,
under software emulation (tens of times slower than the hardware it emulates). Two ways:

    python benchmarks/gpio_bench.py --chip /dev/gpiochip0 --line 17   a daemon of its own
    python benchmarks/gpio_bench.py --socket S --target T              a running daemon's

``benchmarks/run.py --only gpio`` runs the first on ``$LABPOWER_BENCH_GPIO`` (``CHIP:LINE``).
The line is switched: use one with nothing on it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labpower.client import Client

LIMITS = {"switch_readback_median_us": 150.0}
#: where benchmarks/run.py finds the chip and line to use
ENV = "LABPOWER_BENCH_GPIO"


def measure(lab: Client, target: str, calls: int, warmup: int) -> dict[str, float]:
    """Round trips of alternating On and Off calls on ``target``.

    :raises RuntimeError: a call was not verified by the read-back.
    """
    took = _times(lab, target, warmup + calls)[warmup:]
    return {
        "switch_readback_median_us": statistics.median(took) * 1e6,
        "switch_readback_p90_us": statistics.quantiles(took, n=10)[-1] * 1e6,
    }


def calibrated(lab: Client, target: str, mock: str, calls: int, warmup: int) -> dict[str, float]:
    """:func:`measure` on ``target`` and on the mock target ``mock`` of the same daemon, in
    turns of 100 calls so that both see the machine in the same state."""
    gpio: list[float] = []
    plain: list[float] = []
    _times(lab, target, warmup)
    _times(lab, mock, warmup)
    done = 0
    while done < calls:
        turn = min(100, calls - done)
        gpio.extend(_times(lab, target, turn))
        plain.extend(_times(lab, mock, turn))
        done += turn
    figures = {
        "switch_readback_median_us": statistics.median(gpio) * 1e6,
        "switch_readback_p90_us": statistics.quantiles(gpio, n=10)[-1] * 1e6,
        "mock_switch_readback_median_us": statistics.median(plain) * 1e6,
    }
    figures["gpio_over_mock_median_us"] = (
        figures["switch_readback_median_us"] - figures["mock_switch_readback_median_us"]
    )
    figures["gpio_to_mock_ratio"] = (
        figures["switch_readback_median_us"] / figures["mock_switch_readback_median_us"]
    )
    return figures


def _times(lab: Client, target: str, calls: int) -> list[float]:
    took: list[float] = []
    for i in range(calls):
        started = time.perf_counter()
        t = lab.on(target) if i % 2 == 0 else lab.off(target)
        took.append(time.perf_counter() - started)
        if not t.verified or t.state != ("on" if i % 2 == 0 else "off"):
            raise RuntimeError(f"switch not read back: {t}")
    return took


def run(quick: bool = False, chip: str | None = None, line: int | None = None) -> dict[str, float]:
    """The figures on ``chip`` line ``line`` (default: ``$LABPOWER_BENCH_GPIO``), with a
    daemon of its own.

    :raises RuntimeError: no chip given, or the benchmark failed.
    """
    from labpower.daemon.testing import DaemonProcess

    if chip is None or line is None:
        spec = os.environ.get(ENV, "")
        chip, sep, number = spec.rpartition(":")
        if not (sep and chip and number.isdigit()):
            raise RuntimeError(f"no GPIO chip to measure on: set {ENV}=CHIP:LINE")
        line = int(number)
    calls, warmup = (200, 20) if quick else (2000, 100)
    config = {
        "daemon": {"log_level": "warning"},
        "devices": {
            "pins": {"backend": "gpio", "chip": chip, "lines": [line], "channels": 1},
            "calibration": {"backend": "mock"},
        },
        "targets": {
            "relay": {"device": "pins", "channel": 1},
            "mock": {"device": "calibration", "channel": 1},
        },
    }
    with tempfile.TemporaryDirectory(prefix="labpower-gpio-bench-") as tmp:
        daemon = DaemonProcess(config, directory=tmp)
        try:
            daemon.start()
            with daemon.client() as lab:
                return calibrated(lab, "relay", "mock", calls, warmup)
        finally:
            daemon.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--chip", help="a chip (path, name or label) for a daemon of its own")
    ap.add_argument("--line", type=int, help="the line offset on --chip")
    ap.add_argument("--socket", help="a running daemon's socket instead")
    ap.add_argument("--target", help="the target to switch on --socket")
    ap.add_argument("--count", type=int, default=2000, help="calls measured (with --socket)")
    ap.add_argument(
        "--calibrate", metavar="MOCK", help="a mock target on --socket measured alongside"
    )
    args = ap.parse_args(argv)
    if args.socket is not None:
        if args.target is None:
            ap.error("--socket needs --target")
        from labpower.client import Client

        warmup = max(10, args.count // 20)
        with Client(args.socket) as lab:
            if args.calibrate is None:
                figures = measure(lab, args.target, args.count, warmup)
            else:
                figures = calibrated(lab, args.target, args.calibrate, args.count, warmup)
    else:
        try:
            figures = run(args.quick, args.chip, args.line)
        except RuntimeError as exc:
            print(f"gpio_bench: {exc}", file=sys.stderr)
            return 3
    if args.json:
        print(json.dumps(figures))
        return 0
    for key, value in figures.items():
        limit = LIMITS.get(key)
        verdict = "" if limit is None else ("  pass" if value <= limit else "  FAIL")
        print(f"{key:28} {value:9.1f}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

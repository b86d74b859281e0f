"""GPIO benchmark: On and Off of a relay on a GPIO line, through a real ``labpowerd`` and the
sync :class:`Client`, each call a switch plus the line's read-back (two ioctls in the daemon).

- ``switch_readback_median_us`` / ``switch_readback_p90_us``: one call's round trip as the
  client sees it. Target: <= 150 us median.

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
    took: list[float] = []
    for i in range(warmup + calls):
        started = time.perf_counter()
        t = lab.on(target) if i % 2 == 0 else lab.off(target)
        elapsed = time.perf_counter() - started
        if not t.verified or t.state != ("on" if i % 2 == 0 else "off"):
            raise RuntimeError(f"switch not read back: {t}")
        if i >= warmup:
            took.append(elapsed)
    return {
        "switch_readback_median_us": statistics.median(took) * 1e6,
        "switch_readback_p90_us": statistics.quantiles(took, n=10)[-1] * 1e6,
    }


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
        "devices": {"pins": {"backend": "gpio", "chip": chip, "lines": [line], "channels": 1}},
        "targets": {"relay": {"device": "pins", "channel": 1}},
    }
    with tempfile.TemporaryDirectory(prefix="labpower-gpio-bench-") as tmp:
        daemon = DaemonProcess(config, directory=tmp)
        try:
            daemon.start()
            with daemon.client() as lab:
                return measure(lab, "relay", calls, warmup)
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
    args = ap.parse_args(argv)
    if args.socket is not None:
        if args.target is None:
            ap.error("--socket needs --target")
        from labpower.client import Client

        with Client(args.socket) as lab:
            figures = measure(lab, args.target, args.count, max(10, args.count // 20))
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

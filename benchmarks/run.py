"""Run labpower's benchmarks and print their figures: ``./dev bench`` runs this.

    python benchmarks/run.py               every benchmark, full size (about a minute)
    python benchmarks/run.py --quick       smaller counts, under 30 s (the smoke test's mode)
    python benchmarks/run.py --only core   only the core (daemon/client) benchmarks
    python benchmarks/run.py --only client the client's: spin or not, Jumpstarter, start
    python benchmarks/run.py --only pdudaemon   only labpower-pdudaemon's (needs root)
    python benchmarks/run.py --only network     network PDUs: HTTP and SNMP simulators
    python benchmarks/run.py --only modbus      only the Modbus RTU overhead
    python benchmarks/run.py --only gpio   only GPIO, on $LABPOWER_BENCH_GPIO=CHIP:LINE (a
                                           real chip; without one, tests/vm measures it)
    python benchmarks/run.py --json        one JSON document on stdout, for scripts
    python benchmarks/run.py --write       also write benchmarks/results.md
    python benchmarks/run.py --profile F   run the loaded daemon under cProfile (stats in F)

Exit status: 0 when the benchmarks ran (targets met or not; ``--strict`` makes a missed
target exit 1), 2 on bad usage, 3 when a benchmark broke.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import platform
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script (``python benchmarks/run.py``): make ``benchmarks`` importable as a package.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks import client_bench, core, net_bench, pdudaemon_bench  # noqa: E402 - needs the path set above
from benchmarks.harness import Figure  # noqa: E402

SERIAL_MODULE = HERE / "serial_bench.py"
RESULTS = HERE / "results.md"
#: the GPIO chip and line to measure on (this machine has none; see gpio_bench.py)
GPIO_ENV = "LABPOWER_BENCH_GPIO"
UNITS = {"_us": "us", "_ms": "ms", "_s": "s", "_per_s": "/s", "_mb": "MB", "_pct": "%"}


def module_figures(group: str, quick: bool) -> list[Figure]:
    """The figures of ``benchmarks/<group>_bench.py`` (``run() -> dict``, and ``LIMITS``: the
    targets of some of its figures, lower is better), keyed ``<group>.<figure>``."""
    module = importlib.import_module(f"benchmarks.{group}_bench")
    run = module.run
    kwargs = {"quick": quick} if "quick" in inspect.signature(run).parameters else {}
    values: dict[str, float] = run(**kwargs)
    limits: dict[str, float] = getattr(module, "LIMITS", {})
    figures = []
    for key, value in values.items():
        unit = next((u for suffix, u in UNITS.items() if key.endswith(suffix)), "")
        figures.append(
            Figure(f"{group}.{key}", f"{group}: {key}", float(value), unit, limits.get(key))
        )
    return figures


def serial_figures(quick: bool) -> list[Figure]:
    """The serial-relay benchmarks of ``benchmarks/serial_bench.py``."""
    return module_figures("serial", quick)


def fmt(value: float) -> str:
    if value != value or math.isinf(value):
        return str(value)
    if abs(value) >= 100 or value == int(value):
        return f"{round(value):,}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def verdict(figure: Figure) -> str:
    return {None: "", True: "pass", False: "FAIL"}[figure.ok]


def table(figures: Sequence[Figure]) -> str:
    rows = [("figure", "value", "target", "result")]
    rows += [(f.label, f"{fmt(f.value)} {f.unit}".rstrip(), f.target, verdict(f)) for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.rjust(w) if i == 1 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> dict[str, str | int]:
    """What the figures were measured on; ``load``: the 1-minute load average before the
    run (other work on the machine moves the figures)."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return {
        "cpu": model,
        "cpus": os.cpu_count() or 0,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load": f"{load:.2f}",
    }


def markdown(figures: Sequence[Figure], quick: bool, m: dict[str, str | int]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} on {m['cpus']} x {m['cpu']}, "
        f"Python {m['python']}, Linux {m['kernel']} (load average {m['load']} before the "
        "run), with "
        f"`python benchmarks/run.py{' --quick' if quick else ''} --write`. "
        "See README.md for what each figure measures.",
        "",
        "| figure | value | target | result |",
        "|---|---:|---|---|",
    ]
    for f in figures:  # an indented label explains the row above it
        label = f"&nbsp;&nbsp;{f.label.strip()}" if f.label.startswith(" ") else f.label
        value = f"{fmt(f.value)} {f.unit}".rstrip()
        lines.append(f"| {label} | {value} | {f.target} | {verdict(f)} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts (< 30 s)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument(
        "--only",
        choices=("core", "serial", "client", "pdudaemon", "network", "modbus", "gpio"),
        help="run one group only",
    )
    ap.add_argument("--write", action="store_true", help=f"also write {RESULTS.name}")
    ap.add_argument(
        "--profile",
        metavar="FILE",
        type=Path,
        help="run the loaded daemon under cProfile, stats to FILE (slows it)",
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    has_serial = SERIAL_MODULE.exists()
    if args.only == "serial" and not has_serial:
        ap.error(f"no serial benchmarks: {SERIAL_MODULE} does not exist")

    def progress(what: str) -> None:
        print(f"bench: {what}", file=sys.stderr, flush=True)

    figures: list[Figure] = []
    host = machine()  # before the run: its load average is the machine's, not ours
    began = time.monotonic()
    try:
        # The serial latencies run first: for a while after a burst of CPU (the throughput
        # and log benchmarks) this VM's host runs it slower, which moves them by 0.1-0.2 ms.
        serial: list[Figure] = []
        if args.only in (None, "serial") and has_serial:
            progress("serial relays")
            serial = serial_figures(args.quick)
        if args.only in (None, "core"):
            figures += core.run(args.quick, args.profile, progress)
        if args.only in (None, "client"):
            progress("client: round trips with and without spin, Jumpstarter, start, decoder")
            figures += client_bench.figures(args.quick)
        figures += serial
        if args.only in (None, "network"):
            progress("network PDUs: HTTP and SNMP overhead, 32 PDUs at once, 100-device start")
            figures += net_bench.run(args.quick)
        if args.only in (None, "pdudaemon"):
            progress("pdudaemon listener (pduclient processes)")
            figures += pdudaemon_bench.run(args.quick)
        if args.only in (None, "modbus"):
            progress("Modbus RTU switch + read-back at 9600 baud")
            figures += module_figures("modbus", args.quick)
        if args.only == "gpio" or (args.only is None and os.environ.get(GPIO_ENV)):
            progress(f"GPIO switch + read-back on {os.environ.get(GPIO_ENV)}")
            figures += module_figures("gpio", args.quick)
        elif args.only is None:
            progress(f"GPIO: no chip here (set {GPIO_ENV}=CHIP:LINE); tests/vm measures it")
    except RuntimeError as exc:
        print(f"benchmarks/run.py: {exc}", file=sys.stderr)
        return 3
    elapsed = time.monotonic() - began

    if args.json:
        json.dump(
            {
                "quick": args.quick,
                "seconds": round(elapsed, 2),
                "machine": host,
                "figures": {
                    f.key: {
                        "label": f.label,
                        "value": f.value,
                        "unit": f.unit,
                        "limit": f.limit,
                        "better": f.better,
                        "ok": f.ok,
                    }
                    for f in figures
                },
            },
            sys.stdout,
            indent=2,
        )
        print()
    else:
        print(table(figures))
        print(
            f"\n({elapsed:.0f} s{', quick mode' if args.quick else ''}; load average "
            f"{host['load']} before the run)"
        )
    if args.write:
        RESULTS.write_text(markdown(figures, args.quick, host))
    if args.profile is not None:
        print(
            f"\ndaemon profile ({args.profile}), top 25 by own time; the profiler slowed "
            "the daemon, so the figures above are not representative:",
            file=sys.stderr,
        )
        pstats.Stats(str(args.profile), stream=sys.stderr).sort_stats("tottime").print_stats(25)
    missed = [f for f in figures if f.ok is False]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())

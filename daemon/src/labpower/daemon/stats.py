"""Counters for monitoring, and the ``Stats`` reply that hands them out.

labpowerd opens no network port: ``labpower-web`` (a separate service) asks ``Stats`` over
the varlink socket and turns the answer into Prometheus metrics. The counters are plain
integers kept where the events happen (a switch, a device failure, a dropped log entry), so
counting costs nothing worth measuring; the daemon's run at start and each target's and
device's since it was configured (a reload that changes one starts its counters again,
which Prometheus's counter semantics absorb).
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labpower.daemon.connection import Connection
    from labpower.daemon.lab import Lab

#: upper bounds (seconds) of the switch latency histogram's buckets: from a relay on a
#: local USB board (milliseconds) to a PDU that answers at its deadline (seconds)
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: a switch's result, by the name of the error it raised (the interface's short names)
_RESULTS = {
    "Timeout": "timeout",
    "DeviceUnavailable": "unavailable",
    "DeviceError": "error",
    "NotSupported": "not_supported",
    "StateMismatch": "mismatch",
    "StateNotSaved": "not_saved",
}


def result_of(error: str | None) -> str:
    """The result label of a switch: ``ok``, or the kind of error (``error``: the
    interface's name, short or qualified)."""
    if error is None:
        return "ok"
    return _RESULTS.get(error.rpartition(".")[2], "failed")


class Latency:
    """A histogram of how long switches took, in :data:`LATENCY_BOUNDS` buckets."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        #: switches per bucket (not cumulative); the last: longer than every bound
        self.counts = [0] * (len(LATENCY_BOUNDS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.total += seconds

    def to_wire(self) -> dict[str, Any]:
        return {"bounds": list(LATENCY_BOUNDS), "counts": list(self.counts), "sum": self.total}


class SwitchStats:
    """One target's switches: how many by operation and result, and how long they took."""

    __slots__ = ("latency", "switches")

    def __init__(self) -> None:
        self.switches: Counter[tuple[str, str]] = Counter()
        self.latency = Latency()

    def record(self, op: str, error: str | None, seconds: float) -> None:
        """A switch of the board ended (``error``: the interface error it raised, if any)."""
        self.switches[op, result_of(error)] += 1
        self.latency.observe(seconds)

    def to_wire(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "switches": [
                {"op": op, "result": result, "count": count}
                for (op, result), count in sorted(self.switches.items())
            ],
            "latency": self.latency.to_wire(),
        }


def lab_stats(lab: Lab, conn: Connection) -> dict[str, Any]:
    """The targets' and devices' part of the ``Stats`` reply: those ``conn`` may read (a
    device when it may read one of the device's targets)."""
    targets = [t for t in lab.targets.values() if lab.readable(t.config, conn)]
    devices = {t.device.name: t.device for t in targets}
    return {
        "targets": [t.stats.to_wire(t.name) for t in targets],
        "devices": [
            {
                "name": name,
                "backend": lab.config.devices[name].backend,
                "available": device.available,
                "problem": device.problem,
                "errors": dict(device.errors),
                "reconnects": device.reconnects,
            }
            for name, device in sorted(devices.items())
        ],
    }

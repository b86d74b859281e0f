"""``/metrics``: the lab as Prometheus metrics, asked of the daemons at scrape time.

Each scrape asks every host's daemon for ``List`` (state, verified, available, lease) and
``Stats`` (counters, see the daemon's interface) at once; the last readings come from the
watch's own sampling (reading every target at every scrape would load the boards with the
scrape rate). A daemon that cannot be asked gives ``labpower_up 0`` and nothing else.

Names follow Prometheus's conventions: a ``labpower_`` prefix, base units in the name
(``_seconds``, ``_volts``, ``_amperes``, ``_voltamperes``), ``_total`` on counters, a
``host`` label on everything (one labpower-web can show a whole lab of daemons).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
from labpower.client._protocol import power_call
from labpower.client.errors import LabpowerError, MethodNotFound
from labpower.client.types import Target
from labpower.client.web.watch import HostWatch, LabWatch
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

try:
    VERSION = version("labpower-client")
except PackageNotFoundError:  # running from a source tree without metadata
    VERSION = "0+unknown"

_STATES = ("on", "off", "unknown")


@dataclass(frozen=True, slots=True)
class HostScrape:
    """What one daemon answered for a scrape (``error``: why it could not be asked)."""

    watch: HostWatch
    targets: Sequence[Target] = ()
    stats: Mapping[str, Any] | None = None
    error: str | None = None


async def scrape_host(watch: LabWatch, host: HostWatch) -> HostScrape:
    client = watch.clients[host.name]
    try:
        targets = await client.targets()
    except LabpowerError as exc:
        return HostScrape(host, error=str(exc))
    try:
        stats: Mapping[str, Any] | None = await client.call(power_call("Stats"))
    except MethodNotFound:  # a daemon from before Stats: its List is all there is
        stats = None
    except LabpowerError as exc:
        return HostScrape(host, error=str(exc))
    return HostScrape(host, targets, stats)


async def scrape(watch: LabWatch) -> list[HostScrape]:
    """Every host, asked at once."""
    results: dict[str, HostScrape] = {}

    async def one(host: HostWatch) -> None:
        results[host.name] = await scrape_host(watch, host)

    async with anyio.create_task_group() as tg:
        for host in watch.hosts.values():
            tg.start_soon(one, host)
    return [results[name] for name in watch.hosts]


class LabCollector(Collector):
    """The metric families of one scrape's answers."""

    def __init__(self, hosts: Sequence[HostScrape]) -> None:
        self.hosts = hosts

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("labpower_up", "1 if the host's daemon answered", labels=["host"])
        info = GaugeMetricFamily(
            "labpower_web_build_info", "labpower-web's version (always 1)", labels=["version"]
        )
        info.add_metric([VERSION], 1)
        yield info
        for h in self.hosts:
            up.add_metric([h.watch.name], 0 if h.error else 1)
        yield up
        yield from _targets(self.hosts)
        yield from _readings(self.hosts)
        yield from _daemons(self.hosts)
        yield from _devices(self.hosts)
        yield from _switches(self.hosts)


def _targets(hosts: Sequence[HostScrape]) -> Iterator[Metric]:
    labels = ["host", "target", "device"]
    state = GaugeMetricFamily(
        "labpower_target_state",
        "1 for the target's state as the daemon knows it (on, off, unknown), 0 for the others",
        labels=[*labels, "state"],
    )
    verified = GaugeMetricFamily(
        "labpower_target_verified", "1 if the state was read back from the board", labels=labels
    )
    available = GaugeMetricFamily(
        "labpower_target_available",
        "1 if the target's board is present and answering",
        labels=labels,
    )
    leased = GaugeMetricFamily(
        "labpower_target_lease_held", "1 if somebody holds the target's lease", labels=labels
    )
    for h in hosts:
        for t in h.targets:
            key = [h.watch.name, t.name, t.device]
            for s in _STATES:
                state.add_metric([*key, s], 1 if t.state == s else 0)
            verified.add_metric(key, int(t.verified))
            available.add_metric(key, int(t.available))
            leased.add_metric(key, int(t.lease is not None))
    yield from (state, verified, available, leased)


def _readings(hosts: Sequence[HostScrape]) -> Iterator[Metric]:
    labels = ["host", "target"]
    families = (
        GaugeMetricFamily(
            "labpower_target_voltage_volts", "The target's last voltage reading", labels=labels
        ),
        GaugeMetricFamily(
            "labpower_target_current_amperes", "The target's last current reading", labels=labels
        ),
        GaugeMetricFamily(
            "labpower_target_apparent_power_voltamperes",
            "The target's last apparent power reading",
            labels=labels,
        ),
    )
    when = GaugeMetricFamily(
        "labpower_target_reading_timestamp_seconds",
        "When the target's last reading was taken (Unix time)",
        labels=labels,
    )
    for h in hosts:
        for t in h.targets:
            last = h.watch.last_reading(t.name)
            if last is None:
                continue
            key = [h.watch.name, t.name]
            when.add_metric(key, last[0])
            for family, value in zip(families, last[1:], strict=True):
                family.add_metric(key, value)
    yield from (*families, when)


def _daemons(hosts: Sequence[HostScrape]) -> Iterator[Metric]:
    labels = ["host"]
    info = GaugeMetricFamily(
        "labpower_daemon_build_info", "labpowerd's version (always 1)", labels=["host", "version"]
    )
    uptime = GaugeMetricFamily(
        "labpower_daemon_uptime_seconds", "Seconds since labpowerd started", labels=labels
    )
    connections = GaugeMetricFamily(
        "labpower_daemon_connections", "Connections labpowerd serves now", labels=labels
    )
    streams = GaugeMetricFamily(
        "labpower_daemon_streams", "Read and Logs streams open now", labels=labels
    )
    subscribers = GaugeMetricFamily(
        "labpower_daemon_log_subscribers", "Logs subscriptions open now", labels=labels
    )
    dropped = CounterMetricFamily(
        "labpower_daemon_log_entries_dropped",
        "Log entries dropped for subscribers that read too slowly",
        labels=labels,
    )
    for h in hosts:
        if h.stats is None:
            continue
        key = [h.watch.name]
        info.add_metric([*key, str(h.stats.get("version", ""))], 1)
        uptime.add_metric(key, float(h.stats.get("uptime", 0.0)))
        connections.add_metric(key, int(h.stats.get("connections", 0)))
        streams.add_metric(key, int(h.stats.get("streams", 0)))
        subscribers.add_metric(key, int(h.stats.get("subscribers", 0)))
        dropped.add_metric(key, int(h.stats.get("dropped", 0)))
    yield from (info, uptime, connections, streams, subscribers, dropped)


def _devices(hosts: Sequence[HostScrape]) -> Iterator[Metric]:
    labels = ["host", "device"]
    available = GaugeMetricFamily(
        "labpower_device_available",
        "1 if the board is present and answering",
        labels=[*labels, "backend"],
    )
    errors = CounterMetricFamily(
        "labpower_device_errors",
        "The board's failures by kind: timeout, unavailable (absent, cannot be opened), error",
        labels=[*labels, "kind"],
    )
    reconnects = CounterMetricFamily(
        "labpower_device_reconnects",
        "Times the board was opened again after its first open",
        labels=labels,
    )
    for h in hosts:
        for d in (h.stats or {}).get("devices", ()):
            key = [h.watch.name, str(d["name"])]
            available.add_metric([*key, str(d.get("backend", ""))], int(bool(d["available"])))
            counts = d.get("errors") or {}
            for kind in ("timeout", "unavailable", "error"):
                errors.add_metric([*key, kind], int(counts.get(kind, 0)))
            reconnects.add_metric(key, int(d.get("reconnects", 0)))
    yield from (available, errors, reconnects)


def _switches(hosts: Sequence[HostScrape]) -> Iterator[Metric]:
    labels = ["host", "target"]
    switches = CounterMetricFamily(
        "labpower_target_switches",
        "Switches of the target's relay by operation (on, off, cycle, start; a cycle "
        "counts twice) and result (ok, timeout, unavailable, error, mismatch...)",
        labels=[*labels, "op", "result"],
    )
    latency = HistogramMetricFamily(
        "labpower_target_switch_duration_seconds",
        "How long a switch of the target's relay took, with its read-back",
        labels=labels,
    )
    for h in hosts:
        for t in (h.stats or {}).get("targets", ()):
            key = [h.watch.name, str(t["name"])]
            for s in t.get("switches", ()):
                switches.add_metric([*key, str(s["op"]), str(s["result"])], int(s["count"]))
            lat = t["latency"]
            counts = [int(c) for c in lat["counts"]]
            bounds = [*(_bound(b) for b in lat["bounds"]), "+Inf"]
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            latency.add_metric(key, buckets, float(lat["sum"]))
    yield from (switches, latency)


def _bound(value: float) -> str:
    return repr(float(value))


def exposition(hosts: Sequence[HostScrape], accept: str | None) -> tuple[bytes, str]:
    """The scrape's answer in the format the scraper asked for (``Accept``: OpenMetrics or
    Prometheus text), and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LabCollector(hosts))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type

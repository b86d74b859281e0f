"""Network PDU benchmarks: a real ``labpowerd`` child process driving simulated network
devices (the HTTP simulators of ``labpower-sim``, and real snmpsim agents), through the
blocking :class:`Client`.

- ``http_*_overhead_median_ms``, ``snmp_overhead_median_ms``: one On/Off call through
  labpower (switch and read-back), minus the same requests sent by a bare client (raw
  sockets, the exact bytes, no parsing beyond the reply's length) to the same simulator:
  what labpower adds above the device's own reply time. Target: <= 1 ms median (#15).
- ``concurrent_ratio``: 32 simulated PDUs of 8 outlets, each answering after a fixed reply
  time as a real PDU's firmware does; 32 client processes, one per PDU, switch its 8 outlets
  at once, from a barrier. The time from the first start to the last end, over the time one
  client alone takes for one PDU's 8 outlets. Target: <= 1.5.
- ``start_*``: a daemon with 100 network devices of which 5 never answer (an SNMP port that
  reads nothing, an HTTP device that hangs), each with a deadline of ``UNREACHABLE_TIMEOUT``:
  time from spawn to READY=1 and to the first answered call (target: 1 s plus that
  deadline), and its resident memory then (target: <= 45 MB).

The simulators run in processes of their own. ``python benchmarks/net_bench.py [--quick]``
prints the figures.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labpower.backends.sim.http_cli import HTTP_SIMULATORS
from labpower.backends.sim.snmp import SnmpAgent
from labpower.client import Client
from labpower.daemon.testing import to_toml

HERE = Path(__file__).resolve().parent
# Run as a script: make ``benchmarks`` importable as a package (as benchmarks/run.py does).
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import (  # noqa: E402 - needs the path set above
    Figure,
    Labpowerd,
    children,
    collect,
    wait_barrier,
)

LIMITS = {
    "http_gude_overhead_median_ms": 1.0,
    "http_shelly_overhead_median_ms": 1.0,
    "snmp_overhead_median_ms": 1.0,
    "concurrent_ratio": 1.5,
    "start_rss_mb": 45.0,
}
#: the reply time of each simulated PDU in the concurrency run (real PDUs: 10-100 ms)
PDU_LATENCY = 0.02
PDUS, OUTLETS = 32, 8
START_DEVICES, UNREACHABLE = 100, 5
UNREACHABLE_TIMEOUT = 2.0
COMMUNITY = "bench"
#: the outlet the bare clients switch (labpower switches outlet 1 of the same device)
OUTLET = 2

# -- simulators in a process of their own


def _serve_http(conn: Any, specs: list[tuple[str, int, float]]) -> None:
    sims = [HTTP_SIMULATORS[kind](channels=n, latency=latency) for kind, n, latency in specs]
    for sim in sims:
        sim.start()
    try:
        conn.send([sim.address for sim in sims])
        conn.recv()  # "stop"
    finally:
        for sim in sims:
            sim.stop()


@contextmanager
def http_devices(specs: list[tuple[str, int, float]]) -> Iterator[list[str]]:
    """Simulators (kind, channels, latency) in a spawned process; yields their addresses."""
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    proc = context.Process(target=_serve_http, args=(child, specs), daemon=True)
    proc.start()
    try:
        if not conn.poll(60):
            raise RuntimeError("the HTTP simulator process did not start")
        yield conn.recv()
    finally:
        if proc.is_alive():
            conn.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


# -- bare clients: the device's own reply time


class RawHttp:
    """HTTP/1.1 keep-alive with prepared request bytes; reads exactly one reply."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def exchange(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return rest[:length]

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("the simulator closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


def http_get(address: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()


def http_post(address: str, path: str, body: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def http_requests(kind: str, address: str, outlet: int, on: bool) -> list[bytes]:
    """What labpower's backend sends for one switch of ``outlet`` with read-back."""
    if kind == "gude":
        return [http_get(address, f"/status.json?components=1&cmd=1&p={outlet}&s={int(on)}")]
    value = "true" if on else "false"
    return [
        http_post(
            address,
            "/rpc",
            f'{{"id":1,"method":"Switch.Set","params":{{"id":{outlet - 1},"on":{value}}}}}',
        ),
        http_post(
            address,
            "/rpc",
            f'{{"id":2,"method":"Switch.GetStatus","params":{{"id":{outlet - 1}}}}}',
        ),
    ]


def snmp_messages(profile: str, on: bool, request_id: int) -> list[bytes]:
    """SNMPv2c SET of the control OID and GET of the state OID of outlet 2, encoded with
    pysnmp's protocol API (pyasn1) once, before the timing: what any client must send."""
    from labpower.backends.net.snmp_profiles import PROFILES
    from pyasn1.codec.ber import encoder  # type: ignore[import-untyped]  # pyasn1: no stubs
    from pysnmp.proto import api

    v2c = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    p = PROFILES[profile]
    template, value = p.on if on else p.off
    messages = []
    pairs = ((p.oid(template, OUTLET), value), (p.oid(p.state, OUTLET), None))
    for n, (oid, val) in enumerate(pairs):
        pdu = v2c.SetRequestPDU() if val is not None else v2c.GetRequestPDU()
        v2c.apiPDU.set_defaults(pdu)
        v2c.apiPDU.set_request_id(pdu, request_id * 2 + n)
        binding = v2c.Null("") if val is None else v2c.Integer(val)
        v2c.apiPDU.set_varbinds(pdu, [(v2c.ObjectIdentifier(oid), binding)])
        message = v2c.Message()
        v2c.apiMessage.set_defaults(message)
        v2c.apiMessage.set_community(message, COMMUNITY)
        v2c.apiMessage.set_pdu(message, pdu)
        messages.append(encoder.encode(message))
    return messages


# -- the daemon


@contextmanager
def daemon(directory: Path, config: dict[str, Any]) -> Iterator[tuple[Labpowerd, float]]:
    directory.mkdir()
    path = directory / "lab.toml"
    path.write_text(to_toml(config))
    lab = Labpowerd(path, directory)
    ready = lab.start()
    try:
        yield lab, ready
    finally:
        lab.stop()


def community_file(directory: Path) -> str:
    path = directory / "community"
    path.write_text(COMMUNITY + "\n")
    path.chmod(0o600)
    return str(path)


def interleaved(
    calls: int,
    warmup: int,
    bare: Callable[[int, bool], None],
    lab: Callable[[bool], None],
    daemon: Labpowerd,
) -> tuple[list[float], list[float], float]:
    """Seconds per call of ``bare(i, on)`` and of ``lab(on)``, one after the other for each
    ``i`` (on and off in turn), after ``warmup`` of each: a simulator whose speed drifts
    (the machine's load, its own caches) moves both alike. Also the CPU seconds ``daemon``
    used over the timed calls."""
    bare_times, lab_times = [], []
    cpu = 0.0
    for i in range(warmup + calls):
        if i == warmup:
            cpu = daemon.cpu_seconds()
        on = i % 2 == 0
        started = time.perf_counter()
        bare(i, on)
        middle = time.perf_counter()
        lab(on)
        ended = time.perf_counter()
        if i >= warmup:
            bare_times.append(middle - started)
            lab_times.append(ended - middle)
    return bare_times, lab_times, daemon.cpu_seconds() - cpu


def lab_switch(client: Client) -> Callable[[bool], None]:
    """One On or Off of target ``t1`` through the daemon, read back."""

    def switch(on: bool) -> None:
        target = client.on("t1") if on else client.off("t1")
        if not target.verified:
            raise RuntimeError(f"switch not verified: {target}")

    return switch


def overhead_figures(
    key: str, label: str, lab_times: list[float], bare_times: list[float], cpu: float
) -> list[Figure]:
    """The medians, their difference, and the daemon's CPU time per call (``cpu``: seconds
    over all the calls): what a loaded machine moves least."""
    lab_ms, bare_ms = statistics.median(lab_times) * 1e3, statistics.median(bare_times) * 1e3
    name = f"{key}_overhead_median_ms"
    return [
        Figure(
            f"net.{key}_daemon_cpu_ms",
            f"{label}: the daemon's CPU time per call",
            cpu / len(lab_times) * 1e3,
            "ms",
        ),
        Figure(f"net.{key}_bare_median_ms", f"{label}: bare protocol, median", bare_ms, "ms"),
        Figure(f"net.{key}_labpower_median_ms", f"{label}: through labpower", lab_ms, "ms"),
        Figure(
            f"net.{name}", f"{label}: labpower's overhead", lab_ms - bare_ms, "ms", LIMITS[name]
        ),
    ]


def http_overhead(directory: Path, kind: str, calls: int, warmup: int) -> list[Figure]:
    """labpower switches outlet 1, the bare client outlet 2 of the same device."""
    with http_devices([(kind, 2, 0.0)]) as (address,):
        config = {
            "daemon": {"log_level": "warning"},
            "devices": {"d": {"backend": kind, "host": address, "channels": 2}},
            "targets": {"t1": {"device": "d", "channel": 1}},
        }
        raw = RawHttp(address)
        messages = {on: http_requests(kind, address, OUTLET, on) for on in (True, False)}

        def bare(_: int, on: bool) -> None:
            for message in messages[on]:
                raw.exchange(message)

        try:
            with (
                daemon(directory / f"http-{kind}", config) as (lab, _),
                Client(lab.socket, timeout=30) as client,
            ):
                bare_times, lab_times, cpu = interleaved(
                    calls, warmup, bare, lab_switch(client), lab
                )
        finally:
            raw.close()
    label = f"network: {kind} switch + read-back"
    return overhead_figures(f"http_{kind}", label, lab_times, bare_times, cpu)


def snmp_overhead(directory: Path, calls: int, warmup: int) -> list[Figure]:
    """labpower switches outlet 1, the bare client outlet 2 of the same agent."""
    profile = "eaton"
    with (
        SnmpAgent(directory / "snmp-agent", profile, outlets=8, community=COMMUNITY) as agent,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        sock.connect((agent.host, agent.port))
        sock.settimeout(10)
        # each call with request ids of its own, as any client sends them (encoded before
        # the timing starts)
        messages = [snmp_messages(profile, i % 2 == 0, i + 1) for i in range(calls + warmup)]

        def bare(i: int, _: bool) -> None:
            for message in messages[i]:
                sock.send(message)
                sock.recv(65536)

        config = {
            "daemon": {"log_level": "warning"},
            "devices": {
                "pdu": {
                    "backend": "snmp",
                    "host": agent.address,
                    "profile": profile,
                    "community_file": community_file(directory),
                    "channels": 8,
                }
            },
            "targets": {"t1": {"device": "pdu", "channel": 1}},
        }
        with (
            daemon(directory / "snmp", config) as (lab, _),
            Client(lab.socket, timeout=30) as client,
        ):
            bare_times, lab_times, cpu = interleaved(calls, warmup, bare, lab_switch(client), lab)
    label = "network: SNMP (eaton) SET + GET"
    return overhead_figures("snmp", label, lab_times, bare_times, cpu)


# -- 32 PDUs at once


def _switch_pdu(
    index: int, out: Any, path: str, barrier: multiprocessing.synchronize.Barrier
) -> tuple[float, float]:
    with Client(path, timeout=60) as client:
        client.get(f"p{index}o1")  # connected before the start
        wait_barrier(barrier, out)
        started = time.time()
        for outlet in range(1, OUTLETS + 1):
            if not client.on(f"p{index}o{outlet}").verified:
                raise RuntimeError(f"p{index}o{outlet} not verified")
        return started, time.time()


def _bare_pdu(
    index: int, out: Any, addresses: list[str], barrier: multiprocessing.synchronize.Barrier
) -> tuple[float, float]:
    """The same 8 switches as :func:`_switch_pdu`, sent by a bare client to the PDU."""
    address = addresses[index]
    raw = RawHttp(address)
    try:
        wait_barrier(barrier, out)
        started = time.time()
        for outlet in range(1, OUTLETS + 1):
            (request,) = http_requests("gude", address, outlet, False)
            raw.exchange(request)
        return started, time.time()
    finally:
        raw.close()


def at_once(fn: Any, args: tuple[Any, ...]) -> float:
    """Seconds from the first start to the last end of ``fn`` in PDUS processes at once."""
    barrier = multiprocessing.get_context("fork").Barrier(PDUS)
    with children(fn, [(*args, barrier)] * PDUS) as out:
        spans: dict[int, tuple[float, float]] = collect(out, "result", PDUS)
    return max(end for _, end in spans.values()) - min(s for s, _ in spans.values())


def concurrency(directory: Path) -> list[Figure]:
    specs = [("gude", OUTLETS, PDU_LATENCY)] * PDUS
    with http_devices(specs) as addresses:
        devices = {
            f"p{i}": {"backend": "gude", "host": address, "channels": OUTLETS}
            for i, address in enumerate(addresses)
        }
        targets = {
            f"p{i}o{o}": {"device": f"p{i}", "channel": o}
            for i in range(PDUS)
            for o in range(1, OUTLETS + 1)
        }
        config = {"daemon": {"log_level": "warning"}, "devices": devices, "targets": targets}
        with daemon(directory / "concurrency", config) as (lab, _):
            with Client(lab.socket, timeout=60) as client:
                # one PDU alone (its outlets off first, so that every call switches)
                for o in range(1, OUTLETS + 1):
                    client.off(f"p0o{o}")
                started = time.perf_counter()
                for o in range(1, OUTLETS + 1):
                    client.on(f"p0o{o}")
                one = time.perf_counter() - started
                for o in range(1, OUTLETS + 1):
                    client.off(f"p0o{o}")
            cpu = lab.cpu_seconds()
            total = at_once(_switch_pdu, (lab.socket,))
            cpu = lab.cpu_seconds() - cpu
        # the rig alone: the same switches from bare clients, one PDU, then all at once
        raw = RawHttp(addresses[0])
        try:
            started = time.perf_counter()
            for o in range(1, OUTLETS + 1):
                raw.exchange(http_requests("gude", addresses[0], o, True)[0])
            bare_one = time.perf_counter() - started
        finally:
            raw.close()
        bare_total = at_once(_bare_pdu, (addresses,))
    return [
        Figure(
            "net.concurrent_one_s",
            f"network: one PDU's {OUTLETS} outlets, one client ({PDU_LATENCY * 1e3:g} ms replies)",
            one,
            "s",
        ),
        Figure(
            "net.concurrent_all_s",
            f"network: {PDUS} PDUs x {OUTLETS} outlets by {PDUS} clients at once",
            total,
            "s",
        ),
        Figure(
            "net.concurrent_daemon_cpu_s",
            "network: the daemon's CPU time over those switches",
            cpu,
            "s",
        ),
        Figure(
            "net.concurrent_ratio",
            "network: all PDUs at once / one PDU alone",
            total / one,
            "x",
            LIMITS["concurrent_ratio"],
        ),
        Figure(
            "net.concurrent_bare_ratio",
            "network: the same from bare clients (the rig's own share)",
            bare_total / bare_one,
            "x",
        ),
    ]


# -- start with 100 devices


def start(directory: Path) -> list[Figure]:
    reachable = START_DEVICES - UNREACHABLE
    snmp_count = reachable // 2
    http_count = reachable - snmp_count
    devices: dict[str, Any] = {}
    secret = community_file(directory)
    with (
        SnmpAgent(directory / "start-agent", "eaton", outlets=8, community=COMMUNITY) as agent,
        http_devices([("shelly", 1, 0.0), ("gude", 8, 0.0)]) as sims,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_udp,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent_tcp,
    ):
        silent_udp.bind(("127.0.0.1", 0))  # receives, never answers
        silent_tcp.bind(("127.0.0.1", 0))
        silent_tcp.listen(16)  # connections complete, no reply ever comes
        snmp = {"backend": "snmp", "profile": "eaton", "community_file": secret, "channels": 8}
        for i in range(snmp_count):
            devices[f"s{i}"] = {**snmp, "host": agent.address}
        for i in range(http_count):
            kind = ("shelly", "gude")[i % 2]
            devices[f"h{i}"] = {
                "backend": kind,
                "host": sims[i % 2],
                "channels": 1 if kind == "shelly" else 8,
            }
        for i in range(UNREACHABLE):
            if i % 2:
                where = f"127.0.0.1:{silent_tcp.getsockname()[1]}"
                devices[f"u{i}"] = {"backend": "gude", "host": where, "channels": 8}
            else:
                where = f"127.0.0.1:{silent_udp.getsockname()[1]}"
                devices[f"u{i}"] = {**snmp, "host": where, "retries": 0}
            devices[f"u{i}"]["timeout"] = UNREACHABLE_TIMEOUT
        targets = {f"{name}_1": {"device": name, "channel": 1} for name in devices}
        config = {"daemon": {"log_level": "warning"}, "devices": devices, "targets": targets}
        path = directory / "start.toml"
        path.write_text(to_toml(config))
        (directory / "start").mkdir()
        # a first start fills the bytecode cache, as an installed package has it
        first = Labpowerd(path, directory / "start")
        first.start()
        first.stop()
        lab = Labpowerd(path, directory / "start")
        started = time.perf_counter()
        ready = lab.start()
        try:
            with Client(lab.socket, timeout=60) as client:
                state = client.get("s0_1")
                serving = time.perf_counter() - started
                if not state.available:
                    raise RuntimeError(f"a reachable PDU is unavailable after start: {state}")
            rss, _ = lab.memory()
        finally:
            lab.stop()
    limit = 1.0 + UNREACHABLE_TIMEOUT
    return [
        Figure(
            "net.start_ready_s",
            f"network: start, {START_DEVICES} devices ({UNREACHABLE} never answer, "
            f"{UNREACHABLE_TIMEOUT:g} s deadline), to READY=1",
            ready,
            "s",
            limit,
        ),
        Figure(
            "net.start_serving_s",
            "network: the same, to the first answered call",
            serving,
            "s",
            limit,
        ),
        Figure(
            "net.start_rss_mb", "network: RSS after that start", rss, "MB", LIMITS["start_rss_mb"]
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    calls, warmup = (100, 20) if quick else (1000, 100)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="labpower-net-bench-") as tmp:
        directory = Path(tmp)
        figures += http_overhead(directory, "gude", calls, warmup)
        figures += http_overhead(directory, "shelly", calls, warmup)
        figures += snmp_overhead(directory, calls, warmup)
        figures += concurrency(directory)
        figures += start(directory)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    for figure in run(quick):
        target = f"  (target {figure.target})" if figure.limit is not None else ""
        print(f"{figure.label}: {figure.value:.3f} {figure.unit}{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

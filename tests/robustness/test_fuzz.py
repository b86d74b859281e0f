"""Hostile input: hypothesis sends random and mutated varlink messages, more than 18,000 of
them (more than 50,000 under the deep profile: LABPOWER_TEST_DEEP=1), to one live labpowerd.
It never crashes, never leaks file descriptors or memory, and a client that was connected all
along keeps being served.

Messages are sent in batches (one hypothesis example is one batch). A message that breaks the
connection (bad framing, bad JSON, not a call, a Logs subscription) ends the connection it was
sent on, so the batch is split into segments, one connection each: the well-formed calls of a
segment are pipelined, the message that may end the connection comes last, then a sentinel
call whose reply (or the connection's end) says the daemon dealt with everything before it.
Every read has a deadline. Calls that would legitimately run long (a Cycle with a long delay,
an endless Read stream) are never sent: the pools avoid them and a check drops the rare
mutation that produces one.
"""

from __future__ import annotations

import json
import math
import select
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from labpower.client.wire import MAX_MESSAGE_SIZE, Call, Decoder, RemoteProtocolError
from labpower.daemon.testing import DaemonProcess

from ..conftest import StartDaemon, mock_config
from .conftest import POWER, SERVICE, call_bytes, fd_count, rss_bytes, wait_until

#: batches (hypothesis examples) of :data:`BATCH` messages: 1,100 under the deep profile
#: (LABPOWER_TEST_DEEP=1, or --hypothesis-profile=deep), 400 in the everyday run
EXAMPLES = {"deep": 1100}
EVERYDAY_EXAMPLES = 400
BATCH = 50
#: the longest the daemon may take to deal with one segment
SEGMENT_DEADLINE = 10.0
RSS_GROWTH_LIMIT = 20 * 1024 * 1024

TARGETS = ["t1", "t2", "t3", "blind", "gone"]
CONFIG = mock_config(
    {
        "bench": {"channels": 4},
        "blind": {"channels": 1, "readback": False},
        "gone": {"channels": 1, "unavailable": True},
    },
    {
        "t1": {"device": "bench", "channel": 1, "cycle_delay": 0.0},
        "t2": {"device": "bench", "channel": 2, "cycle_delay": 0.0},
        "t3": {"device": "bench", "channel": 3, "cycle_delay": 0.0, "start": "off"},
        "blind": {"device": "blind", "channel": 1, "cycle_delay": 0.0},
        "gone": {"device": "gone", "channel": 1, "cycle_delay": 0.0},
    },
    {"log_level": "info", "history": 200},
)

# -- pools
METHODS = [
    f"{SERVICE}.GetInfo",
    f"{SERVICE}.GetInterfaceDescription",
    *(
        f"{POWER}.{m}"
        for m in (
            "List",
            "Get",
            "On",
            "Off",
            "Cycle",
            "Read",
            "Logs",
            "History",
            "Acquire",
            "Release",
            "Stats",
        )
    ),
]
GARBAGE_METHODS = [
    "",
    ".",
    "io.labpower.Power",
    "io.labpower.Power.",
    ".On",
    "io.labpower.Power.on",
    "io.labpower.Power.Nope",
    "io.labpower.Power.On.Off",
    "org.varlink.service.Nope",
    "org.varlink.service",
    "no.such.Interface.Method",
    "io.labpower.Pöwer.On",
    "io.labpower.Power.On\u0000",
    "x" * 5000 + ".On",
]
#: a value that fills a message almost to the size limit: the daemon's error reply echoes it,
#: which must not make the reply too big to send (rare: it costs a megabyte a message)
NEAR_LIMIT = "z" * (MAX_MESSAGE_SIZE - 200)
KEYS = [
    "target",
    "targets",
    "delay",
    "interval",
    "count",
    "level",
    "lease",
    "name",
    "timeout",
    "token",
    "interface",
    "since",
    "limit",
    "",
    "x",
    "target ",
    "TARGET",
]
STRINGS = [
    *TARGETS,
    "nope",
    "",
    "t1\u0000",
    "ü\u2028\ud7ff",
    "debug",
    "info",
    "critical",
    "bogus",
    "1h",
    "5m",
    "garbage",
    "2024-01-01T00:00:00Z",
    "io.labpower.Power",
    "org.varlink.service",
    "x" * 300,
]
NUMBERS: list[Any] = [
    0,
    1,
    2,
    3,
    -1,
    0.0,
    0.001,
    0.01,
    -0.5,
    1e308,
    -1e308,
    2**31,
    2**31 + 1,
    2**63,
    2**64 + 1,
    -(2**63),
    3600,
    3601,
    86400,
    1e-300,
    math.inf,
    -math.inf,
    math.nan,
]
SPECIAL_RAW = [
    b"\0",
    b" \0",
    b"\0\0\0",
    b"[]\0",
    b"null\0",
    b"true\0",
    b'"x"\0',
    b"{}\0",
    b"{\0",
    b"}\0",
    b"[" * 2000 + b"\0",
    b"1" * 5000 + b"\0",
    b'{"method":"org.varlink.service.GetInfo","parameters":' + b"9" * 5000 + b"}\0",
    b'{"method":"org.varlink.service.GetInfo"',
    b'{"method":"org.varlink.service.GetInfo"}{"method":"x.Y"}\0',
    b'{"method":"org.varlink.service.GetInfo","method":"io.labpower.Power.List"}\0',
    b'\xef\xbb\xbf{"method":"org.varlink.service.GetInfo"}\0',
    b'{"method":"org.varlink.service.GetInfo"}\r\n\0',
    b'{"method":"io.labpower.Power.Get","parameters":{"target":"\\ud800"}}\0',
    b'{"method":"io.labpower.Power.Get","parameters":{"target":"\xff\xfe"}}\0',
    b'{"method":"io.labpower.Power.Get","parameters":{"target":"\xed\xa0\x80"}}\0',
    b'{"method":"io.labpower.Power.Get","parameters":{"target":"\xc3\x28"}}\0',
    b"\xff" * 64 + b"\0",
]
#: big ones, drawn rarely: each costs the daemon (and the fuzzer) real time
BIG_RAW = [
    b"[" * 100_000 + b"\0",
    b'{"a":' * 50_000 + b"\0",
    b"x" * (MAX_MESSAGE_SIZE + 10),
    call_bytes(f"{POWER}.{NEAR_LIMIT[:-40]}"),
    call_bytes(f"{POWER}.Get", {"target": NEAR_LIMIT[:-60]}),
    call_bytes(f"{POWER}.Acquire", {"target": "t1", "name": NEAR_LIMIT[:-100]}),
    call_bytes(f"{POWER}.Get", {"target": "A" * 70_000}),
    call_bytes(f"{POWER}.History", {"since": "9" * 70_000}),
]
#: well-formed calls that return at once: the seeds of mutation
VALID_CALLS = [
    call_bytes(f"{SERVICE}.GetInfo"),
    call_bytes(f"{SERVICE}.GetInterfaceDescription", {"interface": POWER}),
    call_bytes(f"{POWER}.List"),
    call_bytes(f"{POWER}.Get", {"target": "t1"}),
    call_bytes(f"{POWER}.On", {"target": "t2"}),
    call_bytes(f"{POWER}.Off", {"target": "t2"}),
    call_bytes(f"{POWER}.Off", {"target": "blind"}, oneway=True),
    call_bytes(f"{POWER}.Cycle", {"target": "t1", "delay": 0.001}),
    call_bytes(f"{POWER}.Read", {"target": "t1"}),
    call_bytes(f"{POWER}.Read", {"target": "t1", "count": 2, "interval": 0.001}, more=True),
    call_bytes(f"{POWER}.Logs", {"targets": ["t1"], "level": "info"}, more=True),
    call_bytes(f"{POWER}.History", {"limit": 3, "level": "info", "since": "1h"}),
    call_bytes(f"{POWER}.Acquire", {"target": "t3", "name": "fuzz", "timeout": 0.5}),
    call_bytes(f"{POWER}.Release", {"target": "t3", "token": "x"}),
]

# -- strategies
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(NUMBERS)
    | st.sampled_from(STRINGS)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)
param_values = (
    st.sampled_from(STRINGS)
    | st.sampled_from(NUMBERS)
    | st.lists(st.sampled_from(STRINGS), max_size=3)
    | json_values
)
parameters = st.dictionaries(st.sampled_from(KEYS), param_values, max_size=4) | json_values
flag_values: st.SearchStrategy[Any] = st.sampled_from([True, True, False, None, 1, "yes", []])


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@st.composite
def calls(draw: st.DrawFn) -> bytes:
    """A call that looks valid: a real or garbage method, pooled parameters, random flags."""
    msg: dict[str, Any] = {}
    kind = draw(st.integers(0, 19))
    if kind < 15:
        msg["method"] = draw(st.sampled_from(METHODS))
    elif kind < 19:
        msg["method"] = draw(st.sampled_from(GARBAGE_METHODS))
    elif draw(st.booleans()):
        msg["method"] = draw(json_values)
    if draw(st.integers(0, 4)):
        msg["parameters"] = draw(parameters)
    for flag in ("more", "oneway", "upgrade"):
        if draw(st.integers(0, 5 if flag != "upgrade" else 15)) == 0:
            msg[flag] = draw(flag_values)
    if draw(st.integers(0, 15)) == 0:
        msg[draw(st.sampled_from(["error", "continues", "x", ""]))] = draw(json_values)
    return _dumps(msg) + (b"" if draw(st.integers(0, 30)) == 0 else b"\0")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid call with bytes flipped, inserted, deleted, truncated, or made invalid UTF-8."""
    data = bytearray(draw(st.sampled_from(VALID_CALLS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "nul", "utf8", "truncate"]))
        pos = draw(st.integers(0, len(data)))
        byte = draw(st.integers(0, 255))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << (byte % 8)
        elif op == "insert":
            data[pos:pos] = bytes([byte])
        elif op == "delete" and pos < len(data):
            del data[pos]
        elif op == "nul":
            data[pos:pos] = b"\0"
        elif op == "utf8":
            data[pos:pos] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]))
        elif op == "truncate":
            data = data[:pos] + (b"\0" if draw(st.booleans()) else b"")
    return bytes(data)


class Message(bytes):
    """Bytes that print short: a failing batch is reported readably."""

    def __repr__(self) -> str:
        head = bytes(self[:60])
        return f"{head!r}{'...' if len(self) > 60 else ''} ({len(self)} bytes)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@st.composite
def any_message(draw: st.DrawFn) -> Message:
    kind = draw(st.integers(0, 999))
    if kind in (500, 501):  # not at the ends: hypothesis draws those often
        return Message(draw(st.sampled_from(BIG_RAW)))
    if kind < 400:
        return Message(draw(calls()))
    if kind < 750:
        return Message(draw(mutated()))
    if kind < 900:
        return Message(_dumps(draw(json_values)) + b"\0")
    return Message(draw(st.sampled_from(SPECIAL_RAW)))


messages = any_message()


# -- what the daemon makes of a message (it decodes exactly as labpower.client.wire does)
def _frames(data: bytes) -> tuple[list[Call | None], bool]:
    """The calls the daemon sees in ``data`` (None: a frame that breaks the connection), and
    whether bytes are left over without a NUL."""
    decoder = Decoder()
    frames: list[Call | None] = []
    start = 0
    while (end := data.find(b"\0", start)) >= 0:
        try:
            msgs = decoder.feed(data[start : end + 1])
            frames.append(Call.from_wire(msgs[0]))
        except RemoteProtocolError:
            frames.append(None)
            return frames, False
        start = end + 1
    return frames, start < len(data)


def _runs_long(call: Call) -> bool:
    """A call that legitimately takes long: never sent (conservative: any doubt is long)."""
    p = call.parameters
    if call.method == f"{POWER}.Read" and call.more:
        count, interval = p.get("count"), p.get("interval")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 5:
            return True
        return count > 1 and not (
            isinstance(interval, int | float)
            and not isinstance(interval, bool)
            and interval <= 0.01
        )
    if call.method == f"{POWER}.Cycle":
        delay = p.get("delay")
        return isinstance(delay, int | float) and not isinstance(delay, bool) and delay > 0.01
    return False


def classify(message: bytes, sentinel: bytes) -> str:
    """ "skip" (would run long), "last" (may end the connection), or "pipeline"."""
    frames, partial = _frames(message if message.endswith(b"\0") else message + sentinel)
    if any(c is not None and _runs_long(c) for c in frames):
        return "skip"
    if partial or not message.endswith(b"\0"):
        return "last"
    if any(c is None or (c.method == f"{POWER}.Logs" and c.more) for c in frames):
        return "last"
    return "pipeline"


def exchange(path: str, payload: bytes, marker: str) -> str:
    """Send ``payload`` while reading replies, until the sentinel's reply ("answered") or
    the daemon closes the connection ("closed").

    :raises TimeoutError: neither within :data:`SEGMENT_DEADLINE`.
    :raises RemoteProtocolError: the daemon sent something that is not varlink.
    """
    deadline = time.monotonic() + SEGMENT_DEADLINE
    decoder = Decoder()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.setblocking(False)
        view = memoryview(payload)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply to the sentinel within {SEGMENT_DEADLINE} s")
            readable, writable, _ = select.select([sock], [sock] if view else [], [], left)
            if writable:
                try:
                    view = view[sock.send(view[:262144]) :]
                except (BrokenPipeError, ConnectionResetError):
                    view = view[:0]  # it hung up on us: what it sends before EOF still counts
            if readable:
                try:
                    data = sock.recv(262144)
                except ConnectionResetError:
                    data = b""
                if not data:
                    return "closed"
                for reply in decoder.feed(data):
                    params = reply.get("parameters")
                    if isinstance(params, dict) and params.get("interface") == marker:
                        return "answered"


class Fuzzer:
    """Sends batches to one daemon; counts what it sent and how the daemon answered."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.sent = 0
        self.skipped = 0
        self.segments = 0
        self.outcomes = {"answered": 0, "closed": 0}

    def batch(self, batch: Sequence[bytes]) -> None:
        for segment in self._segments(batch):
            marker = f"fuzz.sentinel{self.segments}"
            self.segments += 1
            sentinel = call_bytes(f"{SERVICE}.GetInterfaceDescription", {"interface": marker})
            try:
                outcome = exchange(self.daemon.socket_path, b"".join(segment) + sentinel, marker)
            except TimeoutError as exc:
                raise TimeoutError(
                    f"{exc}; the segment was {[Message(m) for m in segment]}"
                ) from None
            self.outcomes[outcome] += 1
            self.sent += len(segment)

    def _segments(self, batch: Sequence[bytes]) -> Iterator[list[bytes]]:
        current: list[bytes] = []
        probe = call_bytes(f"{SERVICE}.GetInterfaceDescription", {"interface": "fuzz.probe"})
        for message in batch:
            kind = classify(message, probe)
            if kind == "skip":
                self.skipped += 1
                continue
            current.append(message)
            if kind == "last":
                yield current
                current = []
        if current:
            yield current


@pytest.fixture
def fuzz_daemon(start_daemon: StartDaemon) -> DaemonProcess:
    return start_daemon(CONFIG)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fuzzed_messages_never_hurt_the_daemon(fuzz_daemon: DaemonProcess) -> None:
    daemon = fuzz_daemon
    batches = EXAMPLES.get(settings.get_current_profile_name(), EVERYDAY_EXAMPLES)
    fuzzer = Fuzzer(daemon)
    rss: dict[str, int] = {}
    examples = 0
    with daemon.client(timeout=10.0) as bystander:
        expected = [t.name for t in bystander.targets()]
        assert expected == TARGETS
        fds = fd_count(daemon.pid)

        @settings(
            max_examples=batches,
            deadline=None,
            derandomize=True,
            database=None,
            # no shrinking: a failure is about the daemon's state after many batches, and
            # the report names the batch that showed it
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(messages, min_size=BATCH, max_size=BATCH))
        def fuzz(batch: list[Message]) -> None:
            nonlocal examples
            try:
                fuzzer.batch(batch)
            except OSError:
                assert daemon.proc is not None
                if daemon.proc.poll() is not None:  # it died: say how
                    raise AssertionError(f"labpowerd died:\n{daemon.stderr()[-3000:]}") from None
                raise
            # the client that was connected all along is still served, every time
            assert [t.name for t in bystander.targets()] == expected
            examples += 1
            if examples == 100:  # warmed up: every kind of call has run
                rss["warm"] = rss_bytes(daemon.pid)

        fuzz()
        assert daemon.proc is not None
        assert daemon.proc.poll() is None, daemon.stderr()[-3000:]
        # every fuzz connection is closed: the daemon holds no more descriptors than before
        assert wait_until(lambda: fd_count(daemon.pid) <= fds, 10.0), (
            f"{fd_count(daemon.pid)} fds open, {fds} before fuzzing"
        )
        growth = rss_bytes(daemon.pid) - rss["warm"]
        assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MiB"
        assert bystander.get("t1").name == "t1"
    print(
        f"fuzz: {fuzzer.sent} messages in {examples} batches, {fuzzer.segments} connections "
        f"({fuzzer.outcomes}), {fuzzer.skipped} long-running ones dropped, RSS "
        f"{growth / 2**20:+.1f} MiB"
    )
    # at most 1 message in 11 dropped as long-running (50,000 of the deep run's 55,000)
    assert fuzzer.sent >= batches * BATCH * 10 // 11
    # both ways a segment can end happened a lot: the fuzz reached both paths (the deep run:
    # more than 1,000 and 100)
    assert fuzzer.outcomes["closed"] > batches * 10 // 11
    assert fuzzer.outcomes["answered"] > batches // 11
    daemon.signal(signal.SIGTERM)
    assert daemon.proc is not None
    assert daemon.proc.wait(15) == 0, daemon.stderr()[-3000:]


def test_classify() -> None:
    """The fuzzer's own view of messages: long calls are dropped, breakers go last."""
    probe = call_bytes(f"{SERVICE}.GetInfo")
    check: Callable[[bytes], str] = lambda m: classify(m, probe)  # noqa: E731
    assert check(call_bytes(f"{POWER}.List")) == "pipeline"
    assert check(call_bytes(f"{POWER}.Read", {"target": "t1"}, more=True)) == "skip"
    assert check(call_bytes(f"{POWER}.Read", {"target": "t1", "count": 2}, more=True)) == "skip"
    assert check(call_bytes(f"{POWER}.Cycle", {"target": "t1", "delay": 5})) == "skip"
    assert check(call_bytes(f"{POWER}.Logs", more=True)) == "last"
    assert check(b"[]\0") == "last"
    assert check(b'{"method":"x.Y"') == "last"
    # the sentinel completes a message sent without its NUL: checked as the daemon sees it
    partial = b'{"method":"io.labpower.Power.Read","more":true,"parameters":'
    assert classify(partial, _dumps({"target": "t1"}) + b"}\0") == "skip"

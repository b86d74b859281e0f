"""Varlink on the wire, byte for byte, against a live daemon.

Bad input gets the proper ``org.varlink.service`` error, or, when it breaks the framing (bad
JSON, no NUL, over :data:`MAX_MESSAGE_SIZE`), closes that one connection without a reply. After
each, a client that was already connected is still served. Also: oneway, pipelining, and the
``Logs`` subscription and ``History`` as raw messages.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from labpower.client.wire import MAX_MESSAGE_SIZE, Decoder
from labpower.daemon.testing import DaemonProcess

POWER = "io.labpower.Power"
SERVICE = "org.varlink.service"


class Raw:
    """One connection to the daemon, speaking bytes."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5.0)
        self.sock.connect(path)
        self.decoder = Decoder()
        self.pending: list[dict[str, Any]] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, method: str, parameters: dict[str, Any] | None = None, **flags: bool) -> None:
        msg: dict[str, Any] = {"method": method, **flags}
        if parameters is not None:
            msg["parameters"] = parameters
        self.send(json.dumps(msg).encode() + b"\0")

    def receive(self) -> dict[str, Any]:
        while not self.pending:
            data = self.sock.recv(65536)
            assert data, "the daemon closed the connection"
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def ask(self, method: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        self.call(method, parameters)
        return self.receive()

    def closed_without_reply(self) -> bool:
        """True when the daemon closes the connection having sent nothing (more)."""
        received = b""
        try:
            while chunk := self.sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received == b"" and not self.pending

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(daemon: DaemonProcess) -> Iterator[Raw]:
    conn = Raw(daemon.socket_path)
    yield conn
    conn.close()


@pytest.fixture
def bad(shared_daemon: DaemonProcess) -> Iterator[Raw]:
    """A connection for bad input, to a daemon that the whole module shares."""
    conn = Raw(shared_daemon.socket_path)
    yield conn
    conn.close()


@pytest.fixture
def bystander(shared_daemon: DaemonProcess) -> Iterator[Raw]:
    """A client connected before the bad input: it must still be served afterwards."""
    conn = Raw(shared_daemon.socket_path)
    assert "targets" in conn.ask(f"{POWER}.List")["parameters"]
    yield conn
    reply = conn.ask(f"{POWER}.Get", {"target": "dut1"})
    assert reply["parameters"]["target"]["name"] == "dut1", reply
    conn.close()


# -- input that breaks the framing: that connection closes, nobody else notices


@pytest.mark.usefixtures("bystander")
@pytest.mark.parametrize(
    "data",
    [
        b"{not json}\0",
        b"[1, 2, 3]\0",
        b'"just a string"\0',
        b"\xff\xfe\0",
        b'{"parameters": {}}\0',  # an object, but not a call
        b'{"method": 42}\0',
        b'{"method": "io.labpower.Power.List", "more": "yes"}\0',
    ],
    ids=[
        "bad-json",
        "array",
        "string",
        "bad-utf8",
        "no-method",
        "method-not-string",
        "flag-not-bool",
    ],
)
def test_malformed_message_closes_only_that_connection(bad: Raw, data: bytes) -> None:
    bad.send(data)
    assert bad.closed_without_reply()


@pytest.mark.usefixtures("bystander")
def test_garbage_after_a_valid_call_closes_the_connection(bad: Raw) -> None:
    bad.send(json.dumps({"method": f"{POWER}.List"}).encode() + b"\0{oops\0")
    # whether the List is answered first depends on how the bytes were chunked; either way
    # the connection ends, and only this one
    try:
        while bad.sock.recv(65536):
            pass
    except ConnectionResetError:
        pass


@pytest.mark.usefixtures("bystander")
def test_message_without_nul_then_close(bad: Raw) -> None:
    bad.send(json.dumps({"method": f"{POWER}.On", "parameters": {"target": "dut1"}}).encode())
    bad.sock.shutdown(socket.SHUT_WR)
    assert bad.closed_without_reply()


def test_message_without_nul_is_not_executed(daemon: DaemonProcess, raw: Raw) -> None:
    raw.send(json.dumps({"method": f"{POWER}.On", "parameters": {"target": "dut1"}}).encode())
    raw.sock.shutdown(socket.SHUT_WR)
    assert raw.closed_without_reply()
    with daemon.client() as lab:
        assert lab.get("dut1").state == "off"


@pytest.mark.usefixtures("bystander")
@pytest.mark.parametrize("terminated", [True, False], ids=["with-nul", "without-nul"])
def test_message_over_the_size_limit(bad: Raw, terminated: bool) -> None:
    head = b'{"method": "io.labpower.Power.List", "parameters": {"pad": "'
    tail = b'"}}' + (b"\0" if terminated else b"")
    data = head + b"x" * (MAX_MESSAGE_SIZE - len(head)) + tail
    assert len(data) > MAX_MESSAGE_SIZE
    try:
        bad.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon may hang up before it has read everything
    assert bad.closed_without_reply()


def test_message_just_under_the_size_limit_is_served(bad: Raw) -> None:
    head = b'{"method": "io.labpower.Power.List", "parameters": {"pad": "'
    tail = b'"}}'
    data = head + b"x" * (MAX_MESSAGE_SIZE - 1 - len(head) - len(tail)) + tail + b"\0"
    assert len(data) == MAX_MESSAGE_SIZE
    bad.send(data)
    # it is framed fine; the unknown parameter is the daemon's complaint
    assert bad.receive() == {
        "error": f"{SERVICE}.InvalidParameter",
        "parameters": {"parameter": "pad"},
    }


# -- well-framed calls that are wrong: an error reply, and the connection goes on


@pytest.mark.usefixtures("bystander")
@pytest.mark.parametrize(
    ("method", "parameters", "error", "error_parameters"),
    [
        (f"{POWER}.Explode", {}, f"{SERVICE}.MethodNotFound", {"method": f"{POWER}.Explode"}),
        (
            "com.example.Toaster.Toast",
            {},
            f"{SERVICE}.InterfaceNotFound",
            {"interface": "com.example.Toaster"},
        ),
        (f"{POWER}.On", {}, f"{SERVICE}.InvalidParameter", {"parameter": "target"}),
        (f"{POWER}.On", {"target": 1}, f"{SERVICE}.InvalidParameter", {"parameter": "target"}),
        (f"{POWER}.On", {"target": None}, f"{SERVICE}.InvalidParameter", {"parameter": "target"}),
        (
            f"{POWER}.On",
            {"target": "dut1", "force": True},
            f"{SERVICE}.InvalidParameter",
            {"parameter": "force"},
        ),
        (
            f"{POWER}.Cycle",
            {"target": "dut1", "delay": "soon"},
            f"{SERVICE}.InvalidParameter",
            {"parameter": "delay"},
        ),
        (
            f"{POWER}.Cycle",
            {"target": "dut1", "delay": -1},
            f"{SERVICE}.InvalidParameter",
            {"parameter": "delay"},
        ),
        (
            f"{POWER}.Read",
            {"target": "dut1", "interval": True},
            f"{SERVICE}.InvalidParameter",
            {"parameter": "interval"},
        ),
        (
            f"{POWER}.History",
            {"limit": "all"},
            f"{SERVICE}.InvalidParameter",
            {"parameter": "limit"},
        ),
        (
            f"{POWER}.History",
            {"targets": "dut1"},
            f"{SERVICE}.InvalidParameter",
            {"parameter": "targets"},
        ),
        (
            f"{POWER}.History",
            {"level": "loud"},
            f"{SERVICE}.InvalidParameter",
            {"parameter": "level"},
        ),
        (f"{POWER}.List", {"all": True}, f"{SERVICE}.InvalidParameter", {"parameter": "all"}),
        (
            f"{SERVICE}.GetInterfaceDescription",
            {},
            f"{SERVICE}.InvalidParameter",
            {"parameter": "interface"},
        ),
        (
            f"{SERVICE}.GetInterfaceDescription",
            {"interface": "com.example.Toaster"},
            f"{SERVICE}.InterfaceNotFound",
            {"interface": "com.example.Toaster"},
        ),
        (f"{POWER}.On", {"target": "nope"}, f"{POWER}.TargetNotFound", {"target": "nope"}),
        (f"{POWER}.Get", {"target": "nope"}, f"{POWER}.TargetNotFound", {"target": "nope"}),
        (f"{POWER}.Logs", {}, f"{SERVICE}.ExpectedMore", {}),
    ],
    ids=[
        "unknown-method",
        "unknown-interface",
        "missing-parameter",
        "wrong-type",
        "null",
        "unknown-parameter",
        "delay-not-number",
        "delay-negative",
        "interval-bool",
        "limit-not-int",
        "targets-not-list",
        "bad-level",
        "list-takes-nothing",
        "description-needs-interface",
        "description-unknown-interface",
        "unknown-target",
        "get-unknown-target",
        "logs-without-more",
    ],
)
def test_bad_call_gets_a_varlink_error(
    bad: Raw, method: str, parameters: dict[str, Any], error: str, error_parameters: dict[str, Any]
) -> None:
    reply = bad.ask(method, parameters)
    assert reply.get("error") == error, reply
    assert reply.get("parameters", {}) == error_parameters
    assert "continues" not in reply
    # the same connection goes on
    assert "targets" in bad.ask(f"{POWER}.List")["parameters"]


def test_parameters_may_be_left_out_or_null(bad: Raw) -> None:
    assert "targets" in bad.ask(f"{POWER}.List")["parameters"]
    bad.send(b'{"method": "io.labpower.Power.List", "parameters": null}\0')
    assert "targets" in bad.receive()["parameters"]


def test_oneway_call_gets_no_reply_but_takes_effect(raw: Raw) -> None:
    raw.call(f"{POWER}.On", {"target": "dut1"}, oneway=True)
    # the next reply on this connection is the Get's: the oneway call sent nothing back
    reply = raw.ask(f"{POWER}.Get", {"target": "dut1"})
    assert reply["parameters"]["target"]["state"] == "on"


def test_oneway_error_gets_no_reply_either(raw: Raw) -> None:
    raw.call(f"{POWER}.On", {"target": "nope"}, oneway=True)
    assert "targets" in raw.ask(f"{POWER}.List")["parameters"]


def test_pipelined_calls_get_replies_in_order(raw: Raw) -> None:
    calls = [
        {"method": f"{POWER}.Get", "parameters": {"target": "dut1"}},
        {"method": f"{POWER}.On", "parameters": {"target": "dut1"}},
        {"method": f"{POWER}.Get", "parameters": {"target": "nope"}},
        {"method": f"{POWER}.Off", "parameters": {"target": "dut2"}},
        {"method": f"{POWER}.Get", "parameters": {"target": "dut1"}},
        {"method": f"{SERVICE}.GetInfo"},
    ]
    raw.send(b"".join(json.dumps(c).encode() + b"\0" for c in calls))
    replies = [raw.receive() for _ in calls]
    assert replies[0]["parameters"]["target"]["state"] == "off"
    assert replies[1]["parameters"]["target"]["state"] == "on"
    assert replies[2]["error"] == f"{POWER}.TargetNotFound"
    assert replies[3]["parameters"]["target"]["name"] == "dut2"
    assert replies[4]["parameters"]["target"]["state"] == "on"
    assert replies[5]["parameters"]["product"] == "labpowerd"


def test_a_call_split_into_single_bytes(raw: Raw) -> None:
    for byte in json.dumps({"method": f"{POWER}.Get", "parameters": {"target": "dut2"}}).encode():
        raw.send(bytes([byte]))
    raw.send(b"\0")
    assert raw.receive()["parameters"]["target"]["name"] == "dut2"


def test_on_reply_carries_target_and_log_seq(raw: Raw) -> None:
    reply = raw.ask(f"{POWER}.On", {"target": "dut2"})["parameters"]
    assert set(reply) == {"target", "log_seq"}
    assert set(reply["target"]) >= {
        "name",
        "device",
        "channel",
        "state",
        "verified",
        "available",
        "since",
    }
    history = raw.ask(f"{POWER}.History", {"targets": ["dut2"]})["parameters"]["entries"]
    assert history[-1]["seq"] == reply["log_seq"]


def test_read_with_more_streams_count_readings(raw: Raw) -> None:
    raw.call(f"{POWER}.Read", {"target": "router", "interval": 0.001, "count": 2}, more=True)
    first, second = raw.receive(), raw.receive()
    assert first == {
        "parameters": {"reading": {"voltage": 0.0, "current": 0.0, "apparent_power": 0.0}},
        "continues": True,
    }
    assert second == {
        "parameters": {"reading": {"voltage": 5.0, "current": 2.0, "apparent_power": 10.0}}
    }


# -- Logs and History


def _subscribe(daemon: DaemonProcess, **parameters: Any) -> Raw:
    sub = Raw(daemon.socket_path)
    sub.call(f"{POWER}.Logs", parameters, more=True)
    # the first reply has no entry: from here on, the subscription is live
    assert sub.receive() == {"parameters": {}, "continues": True}
    return sub


def test_logs_subscription(daemon: DaemonProcess, raw: Raw) -> None:
    sub = _subscribe(daemon)
    try:
        on = raw.ask(f"{POWER}.On", {"target": "dut1"})["parameters"]
        entries: list[dict[str, Any]] = []
        while not entries or entries[-1]["seq"] < on["log_seq"]:
            reply = sub.receive()
            assert reply["continues"] is True
            entries.append(reply["parameters"]["entry"])
        power = entries[0]
        assert power["message"] == "power on"
        assert (power["target"], power["device"], power["level"]) == ("dut1", "bench", "info")
        assert power["time"].endswith("Z")
        assert [e["seq"] for e in entries] == list(range(power["seq"], on["log_seq"] + 1))
        assert entries[-1]["state"] == "on"
    finally:
        sub.close()


def test_logs_filtered_by_target(daemon: DaemonProcess, raw: Raw) -> None:
    sub = _subscribe(daemon, targets=["dut2"])
    try:
        raw.ask(f"{POWER}.On", {"target": "dut1"})
        raw.ask(f"{POWER}.On", {"target": "dut2"})
        # entries arrive in seq order: had dut1's passed the filter, they would come first
        entry = sub.receive()["parameters"]["entry"]
        assert (entry["target"], entry["message"]) == ("dut2", "power on")
    finally:
        sub.close()


def test_logs_filtered_by_level(daemon: DaemonProcess, raw: Raw) -> None:
    sub = _subscribe(daemon, level="error")
    try:
        raw.ask(f"{POWER}.On", {"target": "dut1"})  # info only
        assert raw.ask(f"{POWER}.On", {"target": "gone"})["error"] == (f"{POWER}.DeviceUnavailable")
        entry = sub.receive()["parameters"]["entry"]
        assert (entry["target"], entry["level"]) == ("gone", "error")
    finally:
        sub.close()


def test_two_subscribers_each_get_every_entry(daemon: DaemonProcess, raw: Raw) -> None:
    subs = [_subscribe(daemon), _subscribe(daemon)]
    try:
        seq = raw.ask(f"{POWER}.Off", {"target": "router"})["parameters"]["log_seq"]
        for sub in subs:
            got: list[int] = []
            while not got or got[-1] < seq:
                got.append(sub.receive()["parameters"]["entry"]["seq"])
            assert got == list(range(got[0], seq + 1))
    finally:
        for sub in subs:
            sub.close()


def test_subscriber_that_talks_is_disconnected(daemon: DaemonProcess) -> None:
    sub = _subscribe(daemon)
    try:
        sub.call(f"{POWER}.List")
        assert sub.closed_without_reply()
    finally:
        sub.close()


def test_history(raw: Raw) -> None:
    for target in ("dut1", "dut2", "dut1"):
        raw.ask(f"{POWER}.On", {"target": target})
    assert raw.ask(f"{POWER}.On", {"target": "gone"})["error"] == f"{POWER}.DeviceUnavailable"

    everything = raw.ask(f"{POWER}.History")["parameters"]["entries"]
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs)
    assert len(everything) >= 7

    last = raw.ask(f"{POWER}.History", {"limit": 3})["parameters"]["entries"]
    assert last == everything[-3:]

    dut2 = raw.ask(f"{POWER}.History", {"targets": ["dut2"]})["parameters"]["entries"]
    assert {e["target"] for e in dut2} == {"dut2"}
    assert dut2[0]["message"] == "power on"

    errors = raw.ask(f"{POWER}.History", {"level": "error"})["parameters"]["entries"]
    assert [e["target"] for e in errors] == ["gone"]
    warnings_up = raw.ask(f"{POWER}.History", {"level": "warning"})["parameters"]["entries"]
    assert {e["level"] for e in warnings_up} <= {"warning", "error", "critical"}
    assert len(warnings_up) >= len(errors)

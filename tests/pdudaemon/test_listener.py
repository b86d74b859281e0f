"""labpower-pdudaemon against a real labpowerd: pdudaemon's TCP and HTTP requests switch the
targets named in labpowerd.toml, answered only once the relay has switched."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from labpower.client import Client
from labpower.daemon.testing import DaemonProcess, to_toml

from .conftest import free_port, listening
from .peers import http_request, send_tcp, wait_for


@pytest.fixture
def lab(pdu_lab: DaemonProcess) -> Iterator[Client]:
    with pdu_lab.client(timeout=30.0) as client:
        for t in client.targets():
            if t.name != "broken":
                client.off(t.name)
        yield client


get = http_request


def test_tcp_message_without_newline_switches_and_acks(listener: int, lab: Client) -> None:
    assert send_tcp(b"pdu01 19 on", listener) == b"ack\n"
    assert lab.get("dut1").state == "on"
    assert send_tcp(b"pdu01 19 off", listener) == b"ack\n"
    assert lab.get("dut1").state == "off"


def test_ports_compare_as_numbers(listener: int, lab: Client) -> None:
    """dut2 is "pdu01:08" in the config: 8, 08 and 008 all name it, over TCP and HTTP."""
    assert send_tcp(b"pdu01 8 on", listener) == b"ack\n"
    assert lab.get("dut2").state == "on"
    assert send_tcp(b"pdu01 008 off", listener) == b"ack\n"
    assert lab.get("dut2").state == "off"
    assert get(listener, "/power/control/on?hostname=pdu01&port=08") == (
        200,
        b"OK - accepted request\n",
    )
    assert lab.get("dut2").state == "on"


def test_http_control_by_address_and_alias(listener: int, lab: Client) -> None:
    ok = (200, b"OK - accepted request\n")
    assert get(listener, "/power/control/on?hostname=pdu01&port=19") == ok
    assert lab.get("dut1").state == "on"
    assert get(listener, "/power/control/off?alias=lava-1") == ok
    assert lab.get("dut1").state == "off"
    assert get(listener, "/power/control/on?alias=only-alias") == ok
    assert lab.get("dut4").state == "on"


def test_status_answers_the_real_state(listener: int, lab: Client) -> None:
    assert get(listener, "/power/status?hostname=pdu01&port=19") == (200, b"off\n")
    lab.on("dut1")
    assert get(listener, "/power/status?alias=lava-1") == (200, b"on\n")
    assert get(listener, "/power/status?hostname=pdu01&port=99") == (500, b"Invalid request\n")


@pytest.mark.parametrize(
    "message",
    [b"pdu01 99 on", b"nopdu 19 on", b"pdu01 19 toggle", b"pdu01 0 on", b"pdu03 1 on"],
)
def test_tcp_requests_that_cannot_be_carried_out_are_nacked(
    listener: int, lab: Client, message: bytes
) -> None:
    assert send_tcp(message, listener) == b"nack\n"
    assert lab.get("dut1").state == "off"


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        (b"pdu01 19", b"Unexpected data"),
        (b"pdu01 19 on 1 2", b"Unexpected data"),
        (b" ", b"Unexpected data"),
        (b"pdu01 x on", b"invalid literal for int() with base 10: 'x'"),
        (b"pdu01 19 reboot soon", b"invalid literal for int() with base 10: 'soon'"),
    ],
)
def test_tcp_messages_pdudaemon_cannot_parse_get_its_error_text(
    listener: int, lab: Client, message: bytes, reply: bytes
) -> None:
    assert send_tcp(message, listener) == reply
    assert lab.get("dut1").state == "off"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/power/control/on?hostname=pdu01&port=99", 500),
        ("/power/control/on?hostname=pdu01", 500),
        ("/power/control/on?alias=lava-1&port=19", 500),
        ("/power/control/on?alias=nobody", 500),
        ("/power/control/reboot?hostname=pdu01&port=19&delay=2.5", 500),
        ("/power/control/on?hostname=pdu03&port=1", 500),
        ("/power/control/on?hostname=pdu01&port=19&delay=100000", 500),
        ("/power/control/toggle?hostname=pdu01&port=19", 404),
        ("/power/control/on/?hostname=pdu01&port=19", 404),
        ("/", 404),
    ],
)
def test_http_requests_refused_switch_nothing(
    listener: int, lab: Client, path: str, status: int
) -> None:
    code, _ = get(listener, path)
    assert code == status
    assert lab.get("dut1").state == "off"


def test_only_targets_with_pdudaemon_names_are_reachable(listener: int, lab: Client) -> None:
    assert get(listener, "/targets/hidden") == (500, b"Invalid request\n")
    assert get(listener, "/targets/hidden", "PUT", b"1") == (500, b"Invalid request\n")
    assert lab.get("hidden").state == "off"


def test_rest_get_and_put(listener: int, lab: Client) -> None:
    """labgrid's NetworkPowerDriver ``rest`` model: PUT 1/0, GET answers 1/0."""
    assert get(listener, "/targets/dut1") == (200, b"0")
    assert get(listener, "/targets/dut1", "PUT", b"1") == (200, b"1")
    assert lab.get("dut1").state == "on"
    assert get(listener, "/targets/lava-1") == (200, b"1")
    # labgrid's index is a number: the pdudaemon address in the path
    assert get(listener, "/power/rest/pdu01/019") == (200, b"1")
    assert get(listener, "/power/rest/pdu01/19", "PUT", b"0") == (200, b"0")
    assert lab.get("dut1").state == "off"
    assert get(listener, "/power/rest/pdu01/19", "PUT", b"1") == (200, b"1")
    assert get(listener, "/targets/dut1", "PUT", b"maybe")[0] == 500
    assert get(listener, "/targets/dut1", "POST", b"0")[0] == 405
    assert lab.get("dut1").state == "on"


def test_answer_comes_after_the_switch(listener: int, lab: Client) -> None:
    """slow1's board takes 0.2 s a call: the ack must not come before the relay moved."""
    assert send_tcp(b"pdu02 1 on", listener) == b"ack\n"
    assert lab.get("slow1").state == "on"
    assert get(listener, "/power/control/off?hostname=pdu02&port=1")[0] == 200
    assert lab.get("slow1").state == "off"


def test_a_failing_board_is_nacked_and_500(listener: int, lab: Client) -> None:
    assert send_tcp(b"pdu03 1 on", listener) == b"nack\n"
    assert get(listener, "/power/control/on?hostname=pdu03&port=1") == (
        500,
        b"Invalid request\n",
    )


def _entries(lab: Client, target: str) -> list[tuple[float, str]]:
    """(time, new state) of the target's power entries, oldest first."""
    out = []
    for e in lab.history([target], limit=1000):
        extra = e.extra or {}
        if extra.get("op") and extra.get("state") in ("on", "off"):
            out.append((datetime.fromisoformat(e.time).timestamp(), str(extra["state"])))
    return out


def test_reboot_waits_pdudaemons_default_5_seconds(listener: int, lab: Client) -> None:
    lab.on("dut1")
    before = len(_entries(lab, "dut1"))
    assert send_tcp(b"pdu01 19 reboot", listener) == b"ack\n"
    (off_time, off), (on_time, on) = _entries(lab, "dut1")[before:]
    assert (off, on) == ("off", "on")
    assert on_time - off_time >= 5.0


def test_reboot_delay_and_on_delay(listener: int, lab: Client) -> None:
    before = len(_entries(lab, "dut1"))
    assert get(listener, "/power/control/reboot?alias=lava-1&delay=1")[0] == 200
    (off_time, _), (on_time, _) = _entries(lab, "dut1")[before:]
    assert on_time - off_time >= 1.0
    # pdudaemon waits the delay before an on or off too
    asked = time.time()
    assert send_tcp(b"pdu01 19 off 1", listener) == b"ack\n"
    ((off_time, off),) = _entries(lab, "dut1")[before + 2 :]
    assert off == "off"
    assert off_time - asked >= 0.9


def _queued(log: Path) -> int:
    return log.read_text().count("queued")


def test_one_targets_requests_run_in_the_order_they_arrived(
    pdu_lab: DaemonProcess, lab: Client, tmp_path: Path
) -> None:
    commands = [b"on", b"off"] * 10 + [b"on"]
    socks = []
    port, log = free_port(), tmp_path / "listener.log"
    with listening(pdu_lab.socket_path, port, log=log, debug=True):
        for command in commands:
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            seen = _queued(log)
            sock.sendall(b"pdu02 1 " + command)
            socks.append(sock)
            # the next request goes once this one has its place in the target's line
            wait_for(lambda: _queued(log) > seen)  # noqa: B023 - called before the next turn
        replies = [s.recv(100) for s in socks]
    for s in socks:
        s.close()
    assert replies == [b"ack\n"] * len(commands)
    states = [state for _, state in _entries(lab, "slow1")[-len(commands) :]]
    assert states == [c.decode() for c in commands]
    assert lab.get("slow1").state == "on"


def test_different_targets_switch_in_parallel() -> None:
    """A board that takes 2 s a call does not hold up another board's target."""
    config = {
        "devices": {
            "sluggish": {"backend": "mock", "channels": 1, "delay": 2.0},
            "quick": {"backend": "mock", "channels": 1},
        },
        "targets": {
            "a": {"device": "sluggish", "channel": 1, "pdudaemon": "pdu:1"},
            "b": {"device": "quick", "channel": 1, "pdudaemon": "pdu:2"},
        },
    }
    with tempfile.TemporaryDirectory() as d:
        daemon = DaemonProcess(config, directory=d)
        daemon.start()
        try:
            port = free_port()
            with listening(daemon.socket_path, port):
                slow = socket.create_connection(("127.0.0.1", port), timeout=60)
                slow.sendall(b"pdu 1 on")
                assert send_tcp(b"pdu 2 on", port) == b"ack\n"
                # b is done while a's answer is still due
                assert select.select([slow], [], [], 0)[0] == []
                assert slow.recv(100) == b"ack\n"
                slow.close()
        finally:
            assert daemon.stop() == 0


def test_curl_f_as_lava_runs_it(listener: int, lab: Client) -> None:
    """LAVA's ``curl -f`` commands: exit 0 on success, 22 on the 500 of a failure."""
    ok = subprocess.run(
        ["curl", "-sf", f"http://127.0.0.1:{listener}/power/control/on?hostname=pdu01&port=19"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (ok.returncode, ok.stdout) == (0, b"OK - accepted request\n")
    assert lab.get("dut1").state == "on"
    bad = subprocess.run(
        ["curl", "-sf", f"http://127.0.0.1:{listener}/power/control/on?hostname=pdu01&port=7"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 22


def test_a_leased_target_is_refused_not_switched(
    listener: int, lab: Client, pdu_lab: DaemonProcess
) -> None:
    """Somebody holds dut1's lease (``labpower lock``): pdudaemon clients cannot cut it."""
    with pdu_lab.client() as holder, holder.lease("dut1", name="nightly"):
        assert send_tcp(b"pdu01 19 on", listener) == b"nack\n"
        assert get(listener, "/power/control/on?alias=lava-1") == (500, b"Invalid request\n")
        assert lab.get("dut1").state == "off"
    assert send_tcp(b"pdu01 19 on", listener) == b"ack\n"


def test_allow_users_keeps_the_listeners_user_out(tmp_path: Path) -> None:
    """The listener runs as a user of its own; a target's allow_users can leave it out."""
    config = {
        "devices": {"b": {"backend": "mock", "channels": 2}},
        "targets": {
            "open": {"device": "b", "channel": 1, "pdudaemon": "pdu:1"},
            "kept": {"device": "b", "channel": 2, "pdudaemon": "pdu:2", "allow_users": ["root"]},
        },
    }
    # the socket is 0660 root:root, in a directory of its own that group root may enter: the
    # listener's user (nobody) gets group root to open it
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o750)
        daemon = DaemonProcess(config, directory=directory)
        daemon.start()
        try:
            port = free_port()
            with listening(
                daemon.socket_path,
                port,
                prefix=("setpriv", "--reuid=nobody", "--regid=nogroup", "--groups=0", "--"),
                log=tmp_path / "listener.log",
            ):
                assert send_tcp(b"pdu 1 on", port) == b"ack\n"
                assert send_tcp(b"pdu 2 on", port) == b"nack\n"
            with daemon.client() as lab:
                assert (lab.get("open").state, lab.get("kept").state) == ("on", "off")
        finally:
            assert daemon.stop() == 0
    # the daemon does not even show the listener's user a target it may not switch
    assert (
        "failed: no target answers to pdudaemon = 'pdu':'2'"
        in (tmp_path / "listener.log").read_text()
    )


@pytest.mark.slow
def test_a_reboot_longer_than_the_read_timeout_is_answered(listener: int, lab: Client) -> None:
    """Only reading the request has a deadline (30 s), not carrying it out."""
    assert send_tcp(b"pdu01 19 reboot 31", listener) == b"ack\n"
    assert lab.get("dut1").state == "on"


@contextlib.contextmanager
def stuck_board_lab(tmp_path: Path, delay: float) -> Iterator[tuple[DaemonProcess, int, Client]]:
    """A daemon with target x on a board whose every read fails after ``delay`` seconds
    (its state stays unknown) and b on a quick board (pdudaemon names pdu:1 and pdu:2),
    a listener on a free port, and a client."""
    config = {
        "devices": {
            "stuck": {"backend": "mock", "channels": 1, "delay": delay, "fail": ["get"]},
            "quick": {"backend": "mock", "channels": 2},
        },
        "targets": {
            "x": {"device": "stuck", "channel": 1, "pdudaemon": "pdu:1"},
            "b": {"device": "quick", "channel": 1, "pdudaemon": "pdu:2"},
        },
    }
    (tmp_path / "lab").mkdir()
    daemon = DaemonProcess(config, directory=str(tmp_path / "lab"))
    daemon.start()
    try:
        port = free_port()
        with listening(daemon.socket_path, port), daemon.client(timeout=60) as lab:
            yield daemon, port, lab
    finally:
        assert daemon.stop() == 0


@pytest.mark.timing
def test_a_board_of_unknown_state_does_not_hold_up_other_targets(tmp_path: Path) -> None:
    """List reads boards whose state the daemon does not know; a known name is checked with
    Get of its own target, so a slow, failing board does not delay it."""
    with stuck_board_lab(tmp_path, 1.0) as (_, port, lab):
        assert send_tcp(b"pdu 2 on", port) == b"ack\n"  # learns the names (a List)
        assert lab.get("x").state == "unknown"
        listing = threading.Thread(target=lab.targets)
        listing.start()  # reads the stuck board: about 3 s
        assert send_tcp(b"pdu 2 off", port) == b"ack\n"
        assert listing.is_alive(), "the request waited for the stuck board"
        listing.join()
        assert lab.get("b").state == "off"


@pytest.mark.timing
def test_the_first_request_and_the_first_after_a_reload_skip_an_unknown_board(
    tmp_path: Path,
) -> None:
    """A name not seen before is looked up with List(known_only), which reads no board: the
    first request of a fresh listener, and the first for a name a reload added, are answered
    while another client's List still waits for the stuck board."""
    with stuck_board_lab(tmp_path, 10.0) as (daemon, port, lab):
        known = {t.name: t.state for t in lab.targets(known_only=True)}
        assert known["x"] == "unknown"  # and that List read no board: it came back
        listing = threading.Thread(target=lab.targets)
        listing.start()  # reads the stuck board: 10 s
        assert send_tcp(b"pdu 2 on", port) == b"ack\n"  # the listener's first request
        assert listing.is_alive(), "the first request waited for the stuck board"
        listing.join()
        # a reload adds a name; its first request looks it up again
        config = tomllib.loads(daemon.config_path.read_text())
        config["targets"]["c"] = {"device": "quick", "channel": 2, "pdudaemon": "pdu:3"}
        daemon.config_path.write_text(to_toml(config))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: any(t.name == "c" for t in lab.targets(known_only=True)))
        listing = threading.Thread(target=lab.targets)
        listing.start()
        assert send_tcp(b"pdu 3 on", port) == b"ack\n"
        assert listing.is_alive(), "the first request after the reload waited"
        listing.join()
        assert (lab.get("b").state, lab.get("c").state) == ("on", "on")
        assert lab.get("x").state == "unknown"

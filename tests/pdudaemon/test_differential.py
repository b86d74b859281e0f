"""The real pdudaemon (PyPI, its ``localcmdline`` driver) against labpower-pdudaemon: the same
requests, byte for byte, to both; the same status, body or reply, and the same switching.

Both listen on pdudaemon's fixed port 16421, each in a network namespace of the test's own:
pdudaemon serves one protocol per process (its ``listener`` setting), so it runs twice (TCP and
HTTP), and labpower's listener serves both on one port. pdudaemon's ``localcmdline`` records
each switch in a file; labpower's are read back from the daemon's log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

from .conftest import listening
from .peers import (
    PDU_PORT,
    PDUDAEMON,
    NetNs,
    http_request,
    peer_venv,
    send_tcp,
    wait_listening,
)

pytestmark = pytest.mark.timeout(900)  # the first run builds pdudaemon's virtualenv

PDUCLIENT = str(Path(__file__).with_name("pduclient.py"))
#: the same lab on both sides: pdu01 ports 19 (alias lava-1) and 8, pdu02 port 1
PORTS = {"dut1": ("pdu01", 19), "dut2": ("pdu01", 8), "dut3": ("pdu02", 1)}
LAB = {
    "devices": {"bench": {"backend": "mock", "channels": 3}},
    "targets": {
        "dut1": {"device": "bench", "channel": 1, "pdudaemon": "pdu01:19", "aliases": ["lava-1"]},
        "dut2": {"device": "bench", "channel": 2, "pdudaemon": "pdu01:8"},
        "dut3": {"device": "bench", "channel": 3, "pdudaemon": "pdu02:1"},
    },
}


@dataclass
class Sides:
    pdu_tcp: NetNs
    pdu_http: NetNs
    lab_ns: NetNs
    switches_file: Path
    lab: Client
    seen: int = 0

    def pdudaemon_switches(self) -> list[str]:
        """pdudaemon's switches since the last call: ``"on pdu01 19"``, port as a number."""
        lines = self.switches_file.read_text().splitlines()
        new, self.seen = lines[self.seen :], len(lines)
        out = []
        for line in new:
            state, pdu, port = line.split()
            out.append(f"{state} {pdu} {int(port)}")
        return out

    def labpower_switches(self, since: int) -> list[str]:
        """labpower's switches after log entry ``since``, in the same form."""
        out = []
        for e in self.lab.history(limit=1000):
            extra = e.extra or {}
            if (
                e.seq > since
                and e.target in PORTS
                and extra.get("op")
                and extra.get("state") in ("on", "off")
            ):
                pdu, port = PORTS[e.target]
                out.append(f"{extra['state']} {pdu} {port}")
        return out

    def last_seq(self) -> int:
        entries = self.lab.history(limit=1)
        return entries[-1].seq if entries else 0


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sides]:
    venv = peer_venv(PDUDAEMON)
    tmp = tmp_path_factory.mktemp("differential")
    switches = tmp / "switches"
    switches.write_text("")
    conf = {
        "daemon": {"hostname": "127.0.0.1", "port": PDU_PORT, "logging_level": "DEBUG"},
        "pdus": {
            pdu: {
                "driver": "localcmdline",
                "cmd_on": f"echo on {pdu} %s >> {switches}",
                "cmd_off": f"echo off {pdu} %s >> {switches}",
            }
            for pdu in ("pdu01", "pdu02")
        },
        "aliases": {"lava-1": {"hostname": "pdu01", "port": 19}},
    }
    (tmp / "pdudaemon.conf").write_text(json.dumps(conf))
    spaces = {"tcp": NetNs(), "http": NetNs()}
    lab_ns = NetNs()
    procs: list[subprocess.Popen[bytes]] = []
    (tmp / "lab").mkdir()
    daemon = DaemonProcess(LAB, directory=str(tmp / "lab"))
    daemon.start()
    try:
        for kind, ns in spaces.items():
            with ns.entered(), open(tmp / f"pdudaemon-{kind}.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        [
                            str(venv / "bin/pdudaemon"),
                            "--conf",
                            str(tmp / "pdudaemon.conf"),
                            "--listener",
                            kind,
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
                wait_listening(PDU_PORT, procs[-1])
        with ExitStack() as stack:
            # started in its namespace; the test's thread leaves it again at once
            with lab_ns.entered():
                stack.enter_context(listening(daemon.socket_path, PDU_PORT))
            lab = stack.enter_context(daemon.client(timeout=60.0))
            yield Sides(spaces["tcp"], spaces["http"], lab_ns, switches, lab)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        assert daemon.stop() == 0
        for ns in (*spaces.values(), lab_ns):
            ns.close()


def http(ns: NetNs, path: str, method: str = "GET") -> tuple[int, bytes]:
    with ns.entered():
        return http_request(PDU_PORT, path, method)


def tcp(ns: NetNs, message: bytes) -> bytes:
    with ns.entered():
        return send_tcp(message)


TCP_CASES = [
    b"pdu01 19 on",
    b"pdu01 19 off",
    b"pdu01 08 on",
    b"pdu01 8 off",
    b"pdu02 1 reboot 1",
    b"pdu01 19 off 0",
    b"nopdu 19 on",
    b"pdu01 19 toggle",
    b"pdu01 0 on",
    b"pdu01 19",
    b"pdu01 19 on 1 2",
    b" ",
    b"pdu01 x on",
    b"pdu01 19 reboot soon",
    b"\xff\xfe on",
    b"pdu01 19 on\n",
    b"pdu01  19 on",
    b"pdu01 +19 on",
]


#: what the good requests switch (on both sides); the others switch nothing
SWITCHED = {
    b"pdu01 19 on": ["on pdu01 19"],
    b"pdu01 19 off": ["off pdu01 19"],
    b"pdu01 08 on": ["on pdu01 8"],
    b"pdu01 8 off": ["off pdu01 8"],
    b"pdu02 1 reboot 1": ["off pdu02 1", "on pdu02 1"],
    b"pdu01 19 off 0": ["off pdu01 19"],
    b"pdu01 19 on\n": ["on pdu01 19"],
    b"pdu01 +19 on": ["on pdu01 19"],  # pdudaemon's int() takes a sign
    "/power/control/on?hostname=pdu01&port=19": ["on pdu01 19"],
    "/power/control/off?hostname=pdu01&port=19": ["off pdu01 19"],
    "/power/control/on?hostname=pdu01&port=08": ["on pdu01 8"],
    "/power/control/off?alias=lava-1": ["off pdu01 19"],
    "/power/control/reboot?hostname=pdu02&port=1&delay=1": ["off pdu02 1", "on pdu02 1"],
    "/power/control/on?alias=lava-1&delay=0": ["on pdu01 19"],
}


@pytest.mark.parametrize("message", TCP_CASES, ids=repr)
def test_tcp_same_reply_same_switching(sides: Sides, message: bytes) -> None:
    since = sides.last_seq()
    reference = tcp(sides.pdu_tcp, message)
    ours = tcp(sides.lab_ns, message)
    assert ours == reference
    switched = sides.pdudaemon_switches()
    assert sides.labpower_switches(since) == switched == SWITCHED.get(message, [])


HTTP_CASES = [
    "/power/control/on?hostname=pdu01&port=19",
    "/power/control/off?hostname=pdu01&port=19",
    "/power/control/on?hostname=pdu01&port=08",
    "/power/control/off?alias=lava-1",
    "/power/control/reboot?hostname=pdu02&port=1&delay=1",
    "/power/control/on?alias=lava-1&delay=0",
    "/power/control/on?hostname=nopdu&port=19",
    "/power/control/on?hostname=pdu01",
    "/power/control/on?port=19",
    "/power/control/on?alias=lava-1&port=19",
    "/power/control/on?alias=nobody",
    "/power/control/on?hostname=nopdu&port=19&delay=soon",
    "/power/control/on?hostname=pdu01&port=&alias=lava-1",
    "/power/control/toggle?hostname=pdu01&port=19",
    "/power/control/on/?hostname=pdu01&port=19",
    "/power/status?hostname=pdu01&port=19&x=",
    "/",
]


@pytest.mark.parametrize("path", HTTP_CASES)
def test_http_same_status_body_and_switching(sides: Sides, path: str) -> None:
    since = sides.last_seq()
    reference = http(sides.pdu_http, path)
    ours = http(sides.lab_ns, path)
    if path.startswith("/power/status"):
        # labpower's addition: pdudaemon has no such path
        assert reference == (404, b"404: Not Found")
        assert ours[0] == 200
    else:
        assert ours == reference
    switched = sides.pdudaemon_switches()
    assert sides.labpower_switches(since) == switched == SWITCHED.get(path, [])


def test_http_head_switches_on_both_and_answers_no_body(sides: Sides) -> None:
    """pdudaemon (aiohttp) runs its GET handler for HEAD too: so does labpower."""
    path = "/power/control/on?hostname=pdu02&port=1"
    since = sides.last_seq()
    reference, ours = http(sides.pdu_http, path, "HEAD"), http(sides.lab_ns, path, "HEAD")
    assert ours == reference == (200, b"")
    switched = sides.pdudaemon_switches()
    assert sides.labpower_switches(since) == switched == ["on pdu02 1"]


def test_http_other_methods_are_405_on_both(sides: Sides) -> None:
    path = "/power/control/on?hostname=pdu01&port=19"
    assert http(sides.lab_ns, path, "POST") == http(sides.pdu_http, path, "POST")
    assert http(sides.lab_ns, path, "POST")[0] == 405


@dataclass(frozen=True)
class Difference:
    """Where labpower answers differently from pdudaemon, on purpose."""

    request: str
    pdudaemon: object
    labpower: object


def test_where_labpower_differs_on_purpose(sides: Sides) -> None:
    """pdudaemon's localcmdline runs its command for any port, so it accepts ports no
    device has; labpower refuses a port no target has. A delay that is not a whole number
    crashes pdudaemon's handler (500, aiohttp's own page) after it switched off for a
    reboot; labpower refuses it first. pdudaemon has no bound on delays; labpower's is 1 h."""
    seen = []
    for path in (
        "/power/control/on?hostname=pdu01&port=99",
        "/power/control/reboot?hostname=pdu01&port=19&delay=2.5",
        "/power/control/on?hostname=pdu01&port=19&delay=100000&x=never-waited",
    ):
        if "100000" in path:
            # pdudaemon would wait 28 hours: only labpower's side is asked
            seen.append(Difference(path, None, http(sides.lab_ns, path)))
            continue
        since = sides.last_seq()
        reference, ours = http(sides.pdu_http, path), http(sides.lab_ns, path)
        seen.append(
            Difference(
                path,
                (reference, sides.pdudaemon_switches()),
                (ours, sides.labpower_switches(since)),
            )
        )
    assert seen == [
        Difference(
            "/power/control/on?hostname=pdu01&port=99",
            ((200, b"OK - accepted request\n"), ["on pdu01 99"]),
            ((500, b"Invalid request\n"), []),
        ),
        Difference(
            "/power/control/reboot?hostname=pdu01&port=19&delay=2.5",
            ((500, b"500 Internal Server Error\n\nServer got itself in trouble"), ["off pdu01 19"]),
            ((500, b"Invalid request\n"), []),
        ),
        Difference(
            "/power/control/on?hostname=pdu01&port=19&delay=100000&x=never-waited",
            None,
            (500, b"Invalid request\n"),
        ),
    ]


def pduclient(ns: NetNs, *args: str) -> subprocess.CompletedProcess[str]:
    with ns.entered():
        return subprocess.run(
            [sys.executable, PDUCLIENT, *args], capture_output=True, text=True, timeout=60
        )


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (("--hostname", "pdu01", "--port", "19", "--command", "reboot", "--delay", "1"), 0),
        (("--hostname", "pdu01", "--port", "19", "--command", "on"), 0),
        (("--hostname", "nopdu", "--port", "19", "--command", "off"), 127),
        (("--hostname", "pdu01", "--port", "x", "--command", "off"), 127),
        (("--hostname", "pdu01", "--command", "off"), 1),
    ],
)
def test_lava_pduclient_command_lines(sides: Sides, args: tuple[str, ...], status: int) -> None:
    """``pduclient --daemon ... --hostname ... --port ... --command ...`` as in LAVA's device
    dictionaries: the same exit status and output from both."""
    since = sides.last_seq()
    reference = pduclient(sides.pdu_tcp, "--daemon", "127.0.0.1", *args)
    ours = pduclient(sides.lab_ns, "--daemon", "127.0.0.1", *args)
    assert (ours.returncode, ours.stdout) == (reference.returncode, reference.stdout)
    assert ours.returncode == status
    assert sides.labpower_switches(since) == sides.pdudaemon_switches()


def test_pduclient_without_a_daemon_exits_1(sides: Sides) -> None:
    empty = NetNs()
    try:
        result = pduclient(
            empty, "--daemon", "127.0.0.1", "--hostname", "pdu01", "--port", "1", "--command", "on"
        )
    finally:
        empty.close()
    assert result.returncode == 1
    assert "wrong daemon hostname" in result.stdout


@pytest.mark.parametrize(
    "path",
    ["/power/control/reboot?hostname=pdu01&port=19&delay=1", "/power/control/on?hostname=x&port=1"],
)
def test_lava_curl_f_command_lines(sides: Sides, path: str) -> None:
    """``curl -f http://...:16421/power/control/...``: the same exit status from both."""

    def curl(ns: NetNs) -> int:
        with ns.entered():
            return subprocess.run(
                ["curl", "-sf", f"http://127.0.0.1:{PDU_PORT}{path}"],
                capture_output=True,
                timeout=60,
                check=False,
            ).returncode

    since = sides.last_seq()
    assert curl(sides.lab_ns) == curl(sides.pdu_http)
    assert sides.labpower_switches(since) == sides.pdudaemon_switches()

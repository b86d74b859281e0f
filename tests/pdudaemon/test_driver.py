"""pdudaemon's driver ``labpower``: the real pdudaemon (PyPI) finds it through its
``pdudaemon.driver`` entry point and switches labpower targets through labpowerd.

pdudaemon runs from its own cached virtualenv; an overlay virtualenv adds the workspace's
labpower-client to it (its entry points and code, and anyio) without changing the cache.
"""

from __future__ import annotations

import json
import site
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

from .conftest import free_port
from .peers import PDUDAEMON, http_request, peer_venv, send_tcp, wait_listening

pytestmark = pytest.mark.timeout(900)  # the first run builds pdudaemon's virtualenv

CLIENT_SRC = Path(__file__).parents[2] / "client/src"
LAB = {
    "devices": {"bench": {"backend": "mock", "channels": 2}},
    "targets": {
        "dut1": {"device": "bench", "channel": 1, "pdudaemon": "pdu01:19"},
        "dut2": {"device": "bench", "channel": 2, "pdudaemon": "bench:2"},
    },
}


def overlay(base: Path, where: Path) -> Path:
    """A venv whose path is ``base``'s packages, then the workspace's (for labpower-client's
    metadata and anyio) and labpower-client's sources. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    (packages,) = where.glob("lib/python*/site-packages")
    (base_packages,) = base.glob("lib/python*/site-packages")
    (packages / "pdudaemon_labpower.pth").write_text(
        "\n".join([str(base_packages), *site.getsitepackages(), str(CLIENT_SRC)]) + "\n"
    )
    return where / "bin/python"


@dataclass
class Running:
    port: int
    lab: Client


@pytest.fixture(scope="module", params=["tcp", "http"])
def pdudaemon(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("driver")
    python = overlay(peer_venv(PDUDAEMON), tmp / "venv")
    (tmp / "lab").mkdir()
    daemon = DaemonProcess(LAB, directory=str(tmp / "lab"))
    daemon.start()
    port = free_port()
    conf = {
        "daemon": {"hostname": "127.0.0.1", "port": port, "listener": request.param},
        "pdus": {
            "pdu01": {
                "driver": "labpower",
                "socket": daemon.socket_path,
                "retries": 1,
                "retrydelay": 0,
            },
            # pdudaemon's name for it differs from labpower's: "pdu" says labpower's
            "relays": {
                "driver": "labpower",
                "socket": daemon.socket_path,
                "pdu": "bench",
                "retries": 1,
                "retrydelay": 0,
            },
        },
    }
    (tmp / "pdudaemon.conf").write_text(json.dumps(conf))
    with open(tmp / "pdudaemon.log", "wb") as log:
        proc = subprocess.Popen(
            [
                str(python),
                "-c",
                "import sys, pdudaemon; sys.exit(pdudaemon.main())",
                "--conf",
                str(tmp / "pdudaemon.conf"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, proc)
        with daemon.client(timeout=60.0) as lab:
            yield Running(port, lab)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert daemon.stop() == 0


def ask(running: Running, kind: str, pdu: str, port: str, command: str) -> bool:
    """Send one request to pdudaemon; whether it said yes."""
    if kind == "tcp":
        return send_tcp(f"{pdu} {port} {command}".encode(), running.port) == b"ack\n"
    path = f"/power/control/{command}?hostname={pdu}&port={port}"
    return http_request(running.port, path)[0] == 200


def switched_since(lab: Client, seq: int) -> list[tuple[str | None, str]]:
    """(target, new state) of every switch after log entry ``seq``."""
    return [
        (e.target, str((e.extra or {})["state"]))
        for e in lab.history(limit=1000)
        if e.seq > seq
        and (e.extra or {}).get("op")
        and (e.extra or {}).get("state") in ("on", "off")
    ]


def test_pdudaemon_switches_labpower_targets(
    pdudaemon: Running, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["pdudaemon"]
    assert ask(pdudaemon, kind, "pdu01", "19", "on")
    assert pdudaemon.lab.get("dut1").state == "on"
    assert ask(pdudaemon, kind, "pdu01", "019", "off")
    assert pdudaemon.lab.get("dut1").state == "off"
    assert ask(pdudaemon, kind, "relays", "2", "on")
    assert pdudaemon.lab.get("dut2").state == "on"


def test_a_reboot_is_off_then_on(pdudaemon: Running, request: pytest.FixtureRequest) -> None:
    kind = request.node.callspec.params["pdudaemon"]
    pdudaemon.lab.on("dut1")
    seq = pdudaemon.lab.history(limit=1)[-1].seq
    if kind == "tcp":
        assert send_tcp(b"pdu01 19 reboot 0", pdudaemon.port) == b"ack\n"
    else:
        path = "/power/control/reboot?hostname=pdu01&port=19&delay=0"
        assert http_request(pdudaemon.port, path)[0] == 200
    assert switched_since(pdudaemon.lab, seq) == [("dut1", "off"), ("dut1", "on")]


def test_a_port_no_target_has_fails_in_pdudaemon(
    pdudaemon: Running, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["pdudaemon"]
    seq = pdudaemon.lab.history(limit=1)[-1].seq
    assert not ask(pdudaemon, kind, "pdu01", "7", "on")
    assert switched_since(pdudaemon.lab, seq) == []

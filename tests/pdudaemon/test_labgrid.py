"""labgrid from PyPI, unmodified, driving labpower through labpower-pdudaemon: its
PDUDaemonDriver and its NetworkPowerDriver (``rest`` model) through labgrid's Target in
labgrid's own pytest plugin; what they switched is read back from labpowerd's log."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from labpower.daemon.testing import DaemonProcess

from .conftest import free_port, listening
from .peers import LABGRID, peer_venv, wait_for, wait_listening

pytestmark = pytest.mark.timeout(900)  # the first run builds labgrid's virtualenv

LAB = {
    "devices": {
        "bench": {"backend": "mock", "channels": 2},
        "blind": {"backend": "mock", "channels": 1, "readback": False},
    },
    "targets": {
        "dut1": {"device": "bench", "channel": 1, "pdudaemon": "pdu01:19"},
        "dut4": {"device": "bench", "channel": 2, "pdudaemon": "pdu02:4"},
        "blind": {"device": "blind", "channel": 1, "pdudaemon": "pdu02:9"},
    },
}

ENV = """\
targets:
  pdu:
    resources:
      PDUDaemonPort:
        host: "127.0.0.1:{port}"
        pdu: pdu01
        index: 19
    drivers:
      PDUDaemonDriver:
        delay: 1.0
  rest:
    resources:
      NetworkPowerPort:
        model: rest
        host: "http://127.0.0.1:{port}/power/rest/pdu02/{{index}}"
        index: 4
    drivers:
      NetworkPowerDriver:
        delay: 0.5
  blind:
    resources:
      NetworkPowerPort:
        model: rest
        host: "http://127.0.0.1:{port}/power/rest/pdu02/{{index}}"
        index: 9
    drivers:
      NetworkPowerDriver: {{}}
"""


def switches(daemon: DaemonProcess, target: str) -> list[tuple[str, str]]:
    """(operation, new state) of each switch of ``target``, oldest first."""
    with daemon.client() as lab:
        return [
            (str((e.extra or {})["op"]), str((e.extra or {})["state"]))
            for e in lab.history([target], limit=1000)
            if (e.extra or {}).get("op") and (e.extra or {}).get("state") in ("on", "off")
        ]


def test_labgrid_drivers_through_target(tmp_path: Path) -> None:
    venv = peer_venv(LABGRID)
    (tmp_path / "lab").mkdir()
    daemon = DaemonProcess(LAB, directory=str(tmp_path / "lab"))
    daemon.start()
    try:
        port = free_port()
        env = tmp_path / "env.yaml"
        env.write_text(ENV.format(port=port))
        # outside the workspace, so that labgrid's pytest loads none of its conftest files
        inner = tmp_path / "test_labgrid_inner.py"
        inner.write_text(Path(__file__).with_name("labgrid_inner.py").read_text())
        with listening(daemon.socket_path, port):
            result = subprocess.run(
                [
                    str(venv / "bin/python"),
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--lg-env={env}",
                    f"--rootdir={tmp_path}",
                    str(inner),
                ],
                capture_output=True,
                text=True,
                timeout=300,
                env={**os.environ, "LISTENER": str(port)},
                cwd=tmp_path,
                check=False,
            )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "3 passed" in result.stdout
        assert switches(daemon, "dut1") == [
            ("on", "on"),
            ("off", "off"),
            ("cycle", "off"),
            ("cycle", "on"),
        ]
        # labgrid's NetworkPowerDriver cycles by itself: off, its delay, on
        assert switches(daemon, "dut4") == [
            ("on", "on"),
            ("off", "off"),
            ("off", "off"),
            ("on", "on"),
        ]
        assert switches(daemon, "blind") == []
    finally:
        assert daemon.stop() == 0


EXPORTER = """\
pdu:
  PDUDaemonPort:
    host: "127.0.0.1:{port}"
    pdu: pdu01
    index: 19
rest:
  NetworkPowerPort:
    model: rest
    host: "http://127.0.0.1:{port}/power/rest/pdu02/{{index}}"
    index: 4
"""


def test_labgrid_client_through_coordinator_and_exporter(tmp_path: Path) -> None:
    """A real labgrid coordinator and exporter, and ``labgrid-client power on/off/cycle/get``
    on places matching the exported PDUDaemonPort and NetworkPowerPort."""
    venv = peer_venv(LABGRID)
    (tmp_path / "lab").mkdir()
    daemon = DaemonProcess(LAB, directory=str(tmp_path / "lab"))
    daemon.start()
    procs: list[subprocess.Popen[bytes]] = []
    coordinator = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "LG_COORDINATOR": coordinator}

    def client(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin/labgrid-client"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
            check=False,
        )

    def start(log: str, *args: str) -> None:
        with open(tmp_path / log, "wb") as out:
            procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path))

    try:
        port = free_port()
        (tmp_path / "exporter.yaml").write_text(EXPORTER.format(port=port))
        with listening(daemon.socket_path, port):
            start("coordinator.log", str(venv / "bin/labgrid-coordinator"), "-l", coordinator)
            wait_listening(int(coordinator.rsplit(":", 1)[1]), procs[0])
            start(
                "exporter.log",
                str(venv / "bin/labgrid-exporter"),
                "-c",
                coordinator,
                "-n",
                "exp1",
                "--hostname",
                "127.0.0.1",
                str(tmp_path / "exporter.yaml"),
            )
            wait_for(
                lambda: (
                    client("resources").stdout.split()
                    == ["exp1/pdu/PDUDaemonPort", "exp1/rest/NetworkPowerPort"]
                ),
                timeout=60,
            )
            for place, match in (("pdu", "exp1/pdu/PDUDaemonPort"), ("rest", "exp1/rest/*")):
                for step in (("create",), ("add-match", match), ("acquire",)):
                    result = client("-p", place, *step)
                    assert result.returncode == 0, result.stderr

            def power(place: str, *args: str) -> str:
                result = client("-p", place, "power", *args)
                assert result.returncode == 0, result.stderr
                return result.stdout.strip()

            power("pdu", "on")
            assert switches(daemon, "dut1") == [("on", "on")]
            power("pdu", "off")
            power("pdu", "cycle", "-t", "1")
            assert switches(daemon, "dut1")[1:] == [
                ("off", "off"),
                ("cycle", "off"),
                ("cycle", "on"),
            ]
            power("rest", "on")
            assert power("rest", "get") == "power for place rest is on"
            power("rest", "off")
            assert power("rest", "get") == "power for place rest is off"
            power("rest", "cycle")
            assert power("rest", "get") == "power for place rest is on"
            assert switches(daemon, "dut4") == [
                ("on", "on"),
                ("off", "off"),
                ("off", "off"),
                ("on", "on"),
            ]
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
        assert daemon.stop() == 0

"""``labpower-discover --probe``: a network device says what it is, its outlets and names,
and the snippet configures it; nothing is switched."""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from labpower.backends.discover import main
from labpower.backends.sim.http_cli import HTTP_SIMULATORS
from labpower.backends.sim.snmp import SnmpAgent

Sims = Callable[..., Any]


@pytest.mark.parametrize("kind", sorted(HTTP_SIMULATORS))
def test_probe_http(kind: str, sims: Sims, capsys: pytest.CaptureFixture[str]) -> None:
    sim = sims(HTTP_SIMULATORS[kind], channels=3)
    sim.relays[2] = True
    assert main(["--probe", f"http://{sim.address}"]) == 0
    out = capsys.readouterr().out
    config = tomllib.loads(out)
    (device,) = config["devices"].values()
    assert device == {"backend": kind, "host": sim.address, "channels": 3}
    assert "#   state: 1 off, 2 on, 3 off" in out
    assert sim.switches == []


def test_probe_http_with_a_password(sims: Sims, capsys: pytest.CaptureFixture[str]) -> None:
    sim = sims(HTTP_SIMULATORS["netio"], channels=2, password="pw")
    assert main(["--probe", f"http://netio:pw@{sim.address}"]) == 0
    out = capsys.readouterr().out
    assert "password_file" in out
    assert "pw@" not in out


def test_probe_snmp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SnmpAgent(tmp_path, "eaton", outlets=3, community="lab", names={1: "web01"}) as pdu:
        assert main(["--probe", f"snmp://lab@{pdu.address}"]) == 0
    out = capsys.readouterr().out
    (device,) = tomllib.loads(out)["devices"].values()
    assert device == {
        "backend": "snmp",
        "host": pdu.address,
        "profile": "eaton",
        "version": "2c",
        "channels": 3,
    }
    assert "#   outlet 1: web01" in out
    assert "#   outlet 2: Outlet 2" in out


def test_probe_bad_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--probe", "ftp://pdu"])
    assert info.value.code == 2
    assert "expected snmp://" in capsys.readouterr().err


def test_probe_nothing_there(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["--probe", f"http://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert f"no known HTTP device answered at 127.0.0.1:{port}" in err
    assert "connection refused" in err

"""labpower-pdudaemon's systemd units (verify, hardening, its own user) and socket activation."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from labpower.daemon.testing import DaemonProcess

from ..system.test_units import analyze
from ..system.test_units import unit_root as system_unit_root
from .conftest import BIN, free_port
from .peers import send_tcp, wait_listening

PACKAGING = Path(__file__).parents[2] / "packaging"
UNITS = ("labpower-pdudaemon.service", "labpower-pdudaemon.socket")


def unit_root(tmp_path: Path) -> Path:
    """The system tests' root for systemd-analyze, with a stub labpower-pdudaemon too."""
    root = system_unit_root(tmp_path)
    stub = root / "usr/bin/labpower-pdudaemon"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    return root


def test_units_verify_without_a_word(tmp_path: Path) -> None:
    result = analyze(unit_root(tmp_path), "verify", "--man=no", *UNITS)
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_service_hardening_scores_2_or_lower(tmp_path: Path) -> None:
    result = analyze(unit_root(tmp_path), "security", "--offline=true", "--no-pager", UNITS[0])
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout


def test_socket_is_loopback_only_and_says_there_is_no_authentication() -> None:
    text = (PACKAGING / "systemd/labpower-pdudaemon.socket").read_text()
    listen = re.findall(r"^ListenStream=(.*)$", text, re.M)
    assert listen == ["127.0.0.1:16421", "[::1]:16421"]
    assert "NO authentication" in text


def test_own_user_in_group_labpower(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(PACKAGING / "sysusers.d/labpower.conf")],
        check=True,
        timeout=30,
        capture_output=True,
    )
    group = dict(
        (line.split(":")[0], line.split(":")[3])
        for line in (tmp_path / "etc/group").read_text().splitlines()
    )
    assert "labpower-pdudaemon" in group["labpower"].split(",")
    text = (PACKAGING / "systemd/labpower-pdudaemon.service").read_text()
    assert "\nUser=labpower-pdudaemon\n" in text


def test_socket_activation_serves_the_passed_socket(tmp_path: Path) -> None:
    daemon = DaemonProcess(
        {
            "devices": {"b": {"backend": "mock", "channels": 1}},
            "targets": {"dut1": {"device": "b", "channel": 1, "pdudaemon": "pdu01:1"}},
        },
        directory=str(tmp_path),
    )
    daemon.start()
    port = free_port()
    proc = subprocess.Popen(
        [
            "systemd-socket-activate",
            "-l",
            f"127.0.0.1:{port}",
            str(BIN / "labpower-pdudaemon"),
            "--socket",
            daemon.socket_path,
            # ignored: the passed socket wins
            "--listen",
            "127.0.0.1:1",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc)
        assert send_tcp(b"pdu01 1 on", port) == b"ack\n"
        with daemon.client() as lab:
            assert lab.get("dut1").state == "on"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert daemon.stop() == 0

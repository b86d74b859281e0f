"""labpower-web's systemd units (verify, hardening, its own user, loopback only) and socket
activation."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from labpower.daemon.testing import DaemonProcess

from ..system.test_units import analyze, sysusers, unit_root
from .conftest import eventually

PACKAGING = Path(__file__).parents[2] / "packaging"
UNITS = ("labpower-web.service", "labpower-web.socket")
#: the exposure score ``systemd-analyze security`` gave the service when it was written
MAX_EXPOSURE = 1.0


def test_units_verify_without_a_word(tmp_path: Path) -> None:
    result = analyze(unit_root(tmp_path), "verify", "--man=no", *UNITS)
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_service_hardening_scores_1_or_lower(tmp_path: Path) -> None:
    result = analyze(unit_root(tmp_path), "security", "--offline=true", "--no-pager", UNITS[0])
    found = re.search(r"exposure level for labpower-web\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


def test_socket_is_loopback_only_and_says_there_is_no_authentication() -> None:
    text = (PACKAGING / "systemd/labpower-web.socket").read_text()
    listen = re.findall(r"^ListenStream=(.*)$", text, re.M)
    assert listen == ["127.0.0.1:16422", "[::1]:16422"]
    assert "NO authentication" in text


def test_own_user_in_group_labpower_and_no_network_of_its_own(tmp_path: Path) -> None:
    _, group = sysusers(tmp_path)
    assert "labpower-web" in group["labpower"][3].split(",")
    text = (PACKAGING / "systemd/labpower-web.service").read_text()
    assert "\nUser=labpower-web\n" in text
    assert "\nPrivateNetwork=yes\n" in text
    assert "\nRestrictAddressFamilies=AF_UNIX\n" in text


def test_socket_activation_serves_the_passed_socket(tmp_path: Path) -> None:
    daemon = DaemonProcess(
        {
            "devices": {"b": {"backend": "mock", "channels": 1}},
            "targets": {"dut1": {"device": "b", "channel": 1}},
        },
        directory=str(tmp_path),
    )
    daemon.start()
    with socket.socket() as probe:  # a free port for systemd-socket-activate to bind
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            "systemd-socket-activate",
            "-l",
            f"127.0.0.1:{port}",
            str(Path(sys.executable).with_name("labpower-web")),
            "--socket",
            daemon.socket_path,
            "--listen",
            "127.0.0.1:1",  # ignored: the passed socket wins
        ],
        stderr=subprocess.DEVNULL,
    )
    try:

        def metrics() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    return str(r.read().decode())
            except OSError:
                return None

        text = eventually(metrics, 15.0, "labpower-web answering on the passed socket")
        assert 'labpower_target_state{device="b",host="local",state="off",target="dut1"} 1.0' in (
            text
        )
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        assert daemon.stop() == 0

"""``labpower import-pdudaemon``: a pdudaemon config becomes labpowerd.toml devices and
targets that keep the names pdudaemon clients use; what labpower cannot take is named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from labpower.daemon.config import load

LABPOWER = (sys.executable, "-m", "labpower.client.cli")
LABPOWERD = str(Path(sys.executable).parent / "labpowerd")

CONF: dict[str, Any] = {
    "daemon": {"hostname": "0.0.0.0", "port": 16421, "listener": "http"},
    "pdus": {
        "numato01": {"driver": "NumatoUSB4", "device": "/dev/serial/by-id/usb-Numato-if00"},
        "rly": {"driver": "devantech_USB-RLY02"},
        "relay-hid": {"driver": "vusbhid", "serial": "ABCDE", "invert": True},
        "ykush-1": {"driver": "YKUSH3", "serial": "YK12345"},
        "apc01": {"driver": "apc7952", "telnetport": 23},
        "local": {"driver": "localcmdline", "cmd_on": "echo %s on"},
    },
    "aliases": {
        "dut-a": {"hostname": "numato01", "port": 2},
        "dut-b": {"hostname": "apc01", "port": 5},
        "dut-c": {"hostname": "ykush-1", "port": "03"},
    },
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LABPOWER, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_writes_a_valid_config_keeping_pdudaemons_names(tmp_path: Path) -> None:
    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(CONF))
    out = tmp_path / "labpowerd.toml"
    (tmp_path / "apc01.community").write_text("private\n")
    (tmp_path / "apc01.community").chmod(0o600)
    result = run("import-pdudaemon", str(conf), "-o", str(out), "--secrets-dir", str(tmp_path))
    check = subprocess.run(
        [LABPOWERD, "--check-config", str(out)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stderr
    cfg = load(out)
    assert {name: (d.backend, d.channels) for name, d in cfg.devices.items()} == {
        "numato01": ("numato", 4),
        "rly": ("devantech", 2),
        "relay-hid": ("usbrelay", 8),
        "ykush-1": ("ykush", 3),
        "apc01": ("snmp", 24),
    }
    assert cfg.devices["numato01"].options.port == "/dev/serial/by-id/usb-Numato-if00"
    assert cfg.devices["rly"].options.port == "/dev/ttyACM0"  # pdudaemon's default
    assert cfg.devices["relay-hid"].options.id == "ABCDE"
    assert cfg.devices["ykush-1"].options.serial == "YK12345"
    names = {t.pdudaemon: (t.name, t.aliases) for t in cfg.targets.values()}
    assert names["numato01:2"] == ("numato01-2", ("dut-a",))
    assert names["ykush-1:3"] == ("ykush-1-3", ("dut-c",))
    assert names["apc01:5"] == ("apc01-5", ("dut-b",))
    assert cfg.targets["relay-hid-1"].invert
    # left out, and said so: exit status 1
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "labpower import-pdudaemon: left out: PDU 'local' (driver 'localcmdline'): "
        "no labpower backend for this driver yet",
    ]


def test_everything_taken_exits_0_and_prints_to_stdout(tmp_path: Path) -> None:
    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps({"pdus": {"y": {"driver": "YKUSHXS", "serial": "S1"}}}))
    result = run("import-pdudaemon", str(conf))
    assert (result.returncode, result.stderr) == (0, "")
    assert 'pdudaemon = "y:1"' in result.stdout


def test_unreadable_input_is_named(tmp_path: Path) -> None:
    missing = run("import-pdudaemon", str(tmp_path / "nope.conf"))
    assert missing.returncode == 1
    assert "nope.conf: cannot read" in missing.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text("{not json")
    result = run("import-pdudaemon", str(bad))
    assert (result.returncode, result.stdout) == (1, "")
    assert "bad.conf: not pdudaemon's JSON config" in result.stderr


def test_an_existing_output_file_is_not_overwritten(tmp_path: Path) -> None:
    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(CONF))
    out = tmp_path / "labpowerd.toml"
    out.write_text("# mine\n")
    result = run("import-pdudaemon", str(conf), "-o", str(out))
    assert result.returncode == 1
    assert "File exists" in result.stderr
    assert out.read_text() == "# mine\n"

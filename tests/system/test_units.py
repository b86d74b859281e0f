"""The packaging: systemd units (verify, security score), sysusers.d, tmpfiles.d, examples."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from labpower.daemon.config import DEFAULT_SOCKET

from .conftest import PACKAGING, labpowerd

UNITS = PACKAGING / "systemd"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def unit_root(tmp_path: Path, extra: str = "") -> Path:
    """A root directory for ``systemd-analyze --root``: the units under test in
    /etc/systemd/system, the distribution's units, and the binaries they run (stubs in
    /usr/bin, so that the host needs no installed labpower)."""
    root = tmp_path / "root"
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in UNITS.iterdir():
        (units / unit.name).write_text(
            unit.read_text() + (extra if unit.suffix == ".service" else "")
        )
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    for name in ("labpowerd", "labpower-pdudaemon", "labpower-web"):
        stub = root / "usr/bin" / name
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2(shutil.which("kill") or "/bin/kill", root / "bin/kill")
    return root


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", f"--root={root}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def unit_settings(name: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> values, in order (keys like DeviceAllow= repeat)."""
    settings: dict[tuple[str, str], list[str]] = {}
    section = ""
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault((section, key), []).append(value)
    return settings


def test_units_verify_without_a_word(tmp_path: Path) -> None:
    result = analyze(
        unit_root(tmp_path), "verify", "--man=no", "labpowerd.service", "labpowerd.socket"
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_verify_does_catch_mistakes(tmp_path: Path) -> None:
    """The check above can fail: a misspelt setting is reported."""
    result = analyze(
        unit_root(tmp_path, "ProtectSistem=strict\n"), "verify", "--man=no", "labpowerd.service"
    )
    assert "ProtectSistem" in result.stderr


def test_service_hardening_scores_2_or_lower(tmp_path: Path) -> None:
    result = analyze(
        unit_root(tmp_path), "security", "--offline=true", "--no-pager", "labpowerd.service"
    )
    assert result.returncode == 0, result.stderr
    found = re.search(
        r"Overall exposure level for labpowerd\.service: (\d+\.\d+)", result.stdout + result.stderr
    )
    assert found, result.stdout
    assert float(found.group(1)) <= 2.0, result.stdout


def test_service_is_a_notify_service_with_watchdog_reload_and_its_own_user() -> None:
    s = unit_settings("labpowerd.service")
    assert s["Service", "Type"] == ["notify"]
    assert s["Service", "ExecStart"] == ["/usr/bin/labpowerd"]
    assert s["Service", "ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Service", "Restart"] == ["on-failure"]
    assert s["Service", "WatchdogSec"]
    assert s["Service", "User"] == ["labpower"]
    assert "dialout" in s["Service", "SupplementaryGroups"][0].split()
    assert s["Service", "DevicePolicy"] == ["closed"]
    assert {v.split()[0] for v in s["Service", "DeviceAllow"]} == {
        "char-ttyUSB",
        "char-ttyACM",
        "char-hidraw",
        "char-usb_device",
        "char-gpiochip",
    }
    assert s["Service", "RestrictAddressFamilies"] == ["AF_UNIX"]
    for key in ("RuntimeDirectory", "StateDirectory", "ConfigurationDirectory"):
        assert s["Service", key] == ["labpower"]


def test_socket_is_the_default_path_0660_group_labpower() -> None:
    s = unit_settings("labpowerd.socket")
    assert s["Socket", "ListenStream"] == [DEFAULT_SOCKET]
    assert s["Socket", "SocketMode"] == ["0660"]
    assert s["Socket", "SocketGroup"] == ["labpower"]


def sysusers(root: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Run the package's sysusers.d file in ``root``: its passwd and group entries by name
    (each split at its colons)."""
    (root / "etc").mkdir()
    subprocess.run(
        ["systemd-sysusers", f"--root={root}", str(PACKAGING / "sysusers.d/labpower.conf")],
        check=True,
        timeout=30,
        capture_output=True,
    )
    passwd, group = (
        {line.split(":")[0]: line.split(":") for line in (root / f).read_text().splitlines()}
        for f in ("etc/passwd", "etc/group")
    )
    return passwd, group


def test_sysusers_and_tmpfiles_make_the_user_and_its_directories(tmp_path: Path) -> None:
    passwd, group = sysusers(tmp_path)
    uid, gid = int(passwd["labpower"][2]), int(group["labpower"][2])
    assert passwd["labpower"][6] == "/usr/sbin/nologin"
    assert uid < 1000, "a system user"
    subprocess.run(
        [
            "systemd-tmpfiles",
            f"--root={tmp_path}",
            "--create",
            str(PACKAGING / "tmpfiles.d/labpower.conf"),
        ],
        check=True,
        timeout=30,
        capture_output=True,
    )
    run = (tmp_path / "run/labpower").stat()
    assert (run.st_uid, run.st_gid) == (uid, gid)
    assert (tmp_path / "var/lib/labpower").stat().st_uid == uid


@pytest.mark.parametrize("example", sorted(p.name for p in (PACKAGING / "examples").glob("*.toml")))
def test_example_configs_are_valid(example: str) -> None:
    result = subprocess.run(
        labpowerd("--check-config", str(PACKAGING / "examples" / example)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr

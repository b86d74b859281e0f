"""A whole lab host in a VM: Debian 12 with systemd and udev, labpower installed from the
wheels, packaging/ and udev/, and a uhid USBRelay2 board plugged while it runs.

The guest runs tests/vm/guest/scenario.py (through boot.sh, from a 9p share) and writes what
it saw to out/result.json; the assertions are here. The image is built once and cached
(tests/vm/build_image.py); a warm run is one boot under software emulation.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
# a script next to this file, not a package: imported by name, untyped for mypy
build_image: Any = importlib.import_module("build_image")

pytestmark = pytest.mark.slow
BOOT_TIMEOUT = 420


@pytest.fixture(scope="module")
def guest_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """Build (or reuse) the image, boot it once, hand over the share's out/ and the status."""
    image = build_image.build()
    share = tmp_path_factory.mktemp("share")
    subprocess.run(
        ["uv", "build", "--quiet", "--all-packages", "--wheel", "-o", str(share / "wheels")],
        cwd=ROOT,
        check=True,
    )
    for d in ("packaging", "udev", "tests/vm/guest"):
        shutil.copytree(ROOT / d, share / d)
    (share / "out").mkdir()
    console = share / "console.log"
    subprocess.run(
        [
            "qemu-system-x86_64",
            "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1024",
            "-nographic", "-no-reboot", "-monitor", "none", "-display", "none",
            "-kernel", str(image / "vmlinuz"),
            "-initrd", str(image / "initrd.img"),
            "-append", "console=ttyS0 root=/dev/vda rw panic=-1 quiet systemd.show_status=0",
            "-drive", f"file={image / 'root.img'},format=raw,if=virtio,snapshot=on",
            "-virtfs", f"local,path={share},mount_tag=share,security_model=none",
            "-serial", f"file:{console}",
        ],
        check=True,
        timeout=BOOT_TIMEOUT,
        capture_output=True,
    )  # fmt: skip
    status_file = share / "out" / "status"
    status = int(status_file.read_text()) if status_file.exists() else -1
    return share / "out", status


def result(out: Path) -> dict[str, Any]:
    path = out / "result.json"
    assert path.exists(), (out / "boot.log").read_text() if (out / "boot.log").exists() else ""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_the_lab_host(guest_run: tuple[Path, int]) -> None:
    out, status = guest_run
    r = result(out)
    boot_log = (out / "boot.log").read_text()
    assert status == 0, boot_log[-4000:]
    # nothing started labpowerd before a board was there
    assert r["before"]["daemon"] == "inactive"
    # udev: group labpower, 0660, the link under /dev/labpower
    assert r["plugged"]["node"]["path"].startswith("/dev/hidraw")
    assert r["plugged"]["node"]["group"] == "labpower"
    assert r["plugged"]["node"]["mode"] == "0o660"
    assert "usbrelay-SIM01" in r["plugged"]["links"]
    # plugging the board started labpowerd through systemd; Type=notify: active = READY
    assert (r["daemon"]["active"], r["daemon"]["sub"]) == ("active", "running")
    assert r["daemon"]["user"] == "labpower"
    # alice (group labpower) switches with the command and the library, read back
    assert r["cli_on"]["rc"] == 0, r["cli_on"]["out"]
    assert r["cli_on"]["relays"] == {"1": True, "2": False}
    assert r["client_on"]["rc"] == 0, r["client_on"]["out"]
    assert json.loads(r["client_on"]["out"]) == {"state": "on", "verified": True, "available": True}
    assert r["client_on"]["relays"] == {"1": True, "2": True}
    # unplugged: DeviceUnavailable; plugged back (a new hidraw node): works, same daemon
    assert r["unplugged"]["rc"] != 0
    assert "DeviceUnavailable" in r["unplugged"]["out"] or "unavailable" in r["unplugged"]["out"]
    assert r["replugged"]["rc"] == 0, r["replugged"]["out"]
    assert r["replugged"]["same_pid"]
    assert r["replugged"]["relays"] == {"1": True, "2": False}  # power lost, then switch on
    # restart and SIGKILL switched nothing: the board saw only what a client sent
    assert r["restarts"]["rc"] == 0, r["restarts"]["out"]
    assert r["restarts"]["switches"] == [[1, True], [2, True], [1, True]]
    assert r["restarts"]["relays"] == {"1": True, "2": False}
    # the journal has labpowerd's entries with their fields
    entries = r["journal"]["labpower_entries"]
    assert any(e.get("LABPOWER_TARGET") == "switch" for e in entries), r["journal"]["messages"]

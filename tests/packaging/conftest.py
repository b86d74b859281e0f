"""Helpers for the packaging tests: build the Debian package, and a fresh Debian 12 root to
install it in (mmdebstrap, cached under ~/.cache/labpower/deb-root/)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from ..cache_lock import cache_lock

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD_DEB = REPO / "packaging" / "build-deb.sh"

#: What a lab host has before labpower: a booting Debian 12 with systemd and udev, and the
#: package's dependencies (the container has no network: apt must find them installed).
ROOT_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "udev",
    "python3",
    "libusb-1.0-0",
    "libudev1",
    "libsystemd0",
    "passwd",
    "apt",
)
#: The unit the container boots into: the checker, then poweroff.
CHECK_UNITS = {
    "labpower-deb-check.service": (
        "[Unit]\nDescription=labpower package test\n"
        "SuccessAction=poweroff-force\nFailureAction=poweroff-force\n"
        "[Service]\nType=oneshot\nTimeoutStartSec=300\n"
        "ExecStart=/usr/bin/python3 /test/deb_check.py /debs /out\n"
        "StandardOutput=journal+console\nStandardError=journal+console\n"
    ),
    "labpower-deb-check.target": (
        "[Unit]\nDescription=labpower package test\n"
        "Requires=labpower-deb-check.service\nAfter=labpower-deb-check.service\n"
    ),
}
ROOT_VERSION = "1"


def build_deb(repo: Path, outdir: Path) -> Path:
    """Build the package from ``repo`` (a work tree with packaging/build-deb.sh) into
    ``outdir``. :returns: the .deb. :raises AssertionError: the build failed."""
    run = subprocess.run(
        [str(repo / "packaging" / "build-deb.sh"), "-o", str(outdir)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, f"build-deb.sh failed:\n{run.stdout}\n{run.stderr}"
    (deb,) = (Path(line) for line in run.stdout.split() if line.endswith(".deb"))
    return deb


def deb_field(deb: Path, field: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True
    ).stdout.strip()


def version_gt(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b], check=False).returncode == 0


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "labpower" / "deb-root"


def debian_root() -> Path:
    """A Debian 12 root that boots under systemd-nspawn, made once by mmdebstrap and cached
    by its inputs. Boot it with --volatile=overlay: it is never written to."""
    key = hashlib.sha256(
        repr((ROOT_VERSION, ROOT_PACKAGES, sorted(CHECK_UNITS.items()))).encode()
    ).hexdigest()[:16]
    root = cache_dir() / key
    with cache_lock(root):
        if not (root / "etc" / "os-release").exists():
            _build_root(root)
    return root


def _build_root(root: Path) -> None:
    """mmdebstrap the root into a temporary directory, then move it to ``root``."""
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            f"--include={','.join(ROOT_PACKAGES)}",
            "bookworm",
            str(tmp),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, f"mmdebstrap failed:\n{run.stdout}\n{run.stderr}"
    units = tmp / "etc" / "systemd" / "system"
    for name, text in CHECK_UNITS.items():
        (units / name).write_text(text)
    # no root password prompt, no first-boot questions
    (tmp / "etc" / "machine-id").write_text("")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)

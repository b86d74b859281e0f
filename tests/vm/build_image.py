"""Build (once) and cache the Debian 12 lab host image the VM tests boot.

``python3 tests/vm/build_image.py`` prints the cache directory, which holds:

- ``vmlinuz``: the Debian 12 kernel (linux-image-6.1.0-*-amd64, unpacked, not installed);
- ``initrd.img``: busybox and the modules to reach the root fs (virtio, ext4, 9p), then
  switch_root;
- ``root.img``: an ext4 image of a mmdebstrap bookworm minbase with systemd, udev, python3,
  pyserial, hidapi (hidraw), python3-systemd, pyusb and usbutils, and a venv at /opt/labpower
  that has labpower's pure-Python dependencies (anyio...) but not labpower itself: the wheels
  of the code under test come in through 9p at each boot (tests/vm/guest/boot.sh), so a code
  change never rebuilds the image.

The cache key is a hash of the inputs (packages, modules, init, test unit, kernel package
name, :data:`BUILD_VERSION`), under ``~/.cache/labpower/vm/``. Building an image prunes
the others that no run used within a day (so two branches or clones with different inputs
keep one each), and holds the cache to a few images (:func:`prune`). Needs root and mmdebstrap,
busybox-static, cpio, kmod, e2fsprogs.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "udev",
    "kmod",
    "python3",
    "python3-venv",
    "python3-pip",
    "python3-serial",
    "python3-hid",
    "libhidapi-hidraw0",
    "python3-systemd",
    "procps",
    # the usbhub backend's pyusb (and libusb) and lsusb, for the hub behind QEMU's usb-hub
    "python3-usb",
    "usbutils",
]
#: pure-Python dependencies of the wheels, from PyPI, into the guest venv at build time
PYPI = ["anyio>=4.11,<5", "sniffio", "idna", "typing_extensions", "httpx>=0.28", "pysnmp>=7.1"]
#: the interpreter whose pip fetches :data:`PYPI` (Debian's python3 and python3-pip)
DEBIAN_PYTHON = "/usr/bin/python3"
# crc32c_generic: ext4 needs the crc32c hash, a dependency modprobe does not list
MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "9p", "9pnet_virtio"]
INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do modprobe "$m" || echo "initrd: cannot load $m"; done
mkdir -p /newroot
mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: no root fs"; poweroff -f; }
umount /proc /sys
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /sbin/init
"""
TEST_UNIT = """[Unit]
Description=labpower lab host test (tests/vm)
# basic.target (journald, udevd, coldplug done), not multi-user.target: the test needs no
# more, and waiting for the rest costs seconds under software emulation
After=basic.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
StandardOutput=journal+console
StandardError=journal+console
ExecStartPre=/bin/mkdir -p /mnt/share
ExecStartPre=/bin/mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /mnt/share
ExecStart=/bin/sh /mnt/share/tests/vm/guest/boot.sh
TimeoutStartSec=600

[Install]
WantedBy=multi-user.target
"""


def run(*cmd: str | Path, **kw: object) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kw)  # type: ignore[call-overload]  # kw passes through


def kernel_package() -> str:
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=True
    ).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends: linux-image-"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError("no linux-image-6.1.0-*-amd64 package known to apt")


#: bump when a build step changes what ends up in the image
BUILD_VERSION = 3


def cache_key(kernel: str) -> str:
    """A hash of everything that goes into the image."""
    h = hashlib.sha256()
    inputs = [BUILD_VERSION, kernel, PACKAGES, PYPI, MODULES, INIT, TEST_UNIT]
    h.update(repr(inputs).encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "labpower" / "vm"


def build_kernel(work: Path, kernel: str, out: Path) -> tuple[Path, str]:
    """Unpack the kernel package; returns (its root, the kernel version)."""
    run("apt-get", "download", "-q", kernel, cwd=work)
    (deb,) = work.glob(f"{kernel}_*.deb")
    kroot = work / "kernel"
    run("dpkg-deb", "-x", deb, kroot)
    (vmlinuz,) = (kroot / "boot").glob("vmlinuz-*")
    version = vmlinuz.name.removeprefix("vmlinuz-")
    run("depmod", "-b", kroot, version)
    shutil.copy(vmlinuz, out / "vmlinuz")
    return kroot, version


def build_initrd(work: Path, kroot: Path, version: str, out: Path) -> None:
    ird = work / "initrd"
    for d in ("bin", "proc", "sys", "dev", "newroot"):
        (ird / d).mkdir(parents=True)
    shutil.copy("/bin/busybox", ird / "bin" / "busybox")
    (ird / "init").write_text(INIT)
    (ird / "init").chmod(0o755)
    mods: list[str] = []
    for name in MODULES:
        deps = subprocess.run(
            ["modprobe", "-d", str(kroot), "-S", version, "--show-depends", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in deps.splitlines():
            if line.startswith("insmod "):
                path = Path(line.split()[1])
                rel = path.relative_to(kroot)
                (ird / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, ird / rel)
        mods.append(name)
    (ird / "modules.list").write_text("\n".join(mods) + "\n")
    for f in (
        "modules.dep",
        "modules.alias",
        "modules.symbols",
        "modules.builtin",
        "modules.order",
    ):
        src = kroot / "lib" / "modules" / version / f
        if src.exists():
            shutil.copy(src, ird / "lib" / "modules" / version / f)
    files = subprocess.run(["find", "."], cwd=ird, capture_output=True, check=True).stdout
    cpio = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"],
        cwd=ird,
        input=files,
        capture_output=True,
        check=True,
    ).stdout
    (out / "initrd.img").write_bytes(cpio)


def fetch_wheels(dest: Path) -> None:
    """Download the wheels of :data:`PYPI` into ``dest``.

    With Debian's own python3 and pip (apt: python3-pip, installed by ./dev), by absolute
    path: under `uv run` the python3 first on PATH is the test venv's, which has no pip, and
    the machine's pip configuration (index, proxy, CA certificates) is what reaches PyPI.

    :raises subprocess.CalledProcessError: pip could not fetch them.
    """
    run(DEBIAN_PYTHON, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", dest, *PYPI)


def build_rootfs(work: Path, kroot: Path, version: str, out: Path) -> None:
    wheels = work / "pypi"
    fetch_wheels(wheels)
    rootfs = work / "rootfs"
    unit = work / "labpower-vmtest.service"
    unit.write_text(TEST_UNIT)
    hooks = [
        f'--customize-hook=cp -a {kroot}/lib/modules "$1/lib/"',
        f'--customize-hook=cp {unit} "$1/etc/systemd/system/"',
        "--customize-hook=ln -s /etc/systemd/system/labpower-vmtest.service "
        '"$1/etc/systemd/system/multi-user.target.wants/labpower-vmtest.service"',
        '--customize-hook=echo labhost > "$1/etc/hostname"',
        # the guest needs no network, login prompt, time sync, timers or the early-boot extras
        # (binfmt, fuse, debugfs...): under emulation each only slows the boot
        '--customize-hook=rm -f "$1/etc/systemd/system/getty.target.wants/"*',
        '--customize-hook=systemctl --root="$1" mask systemd-networkd-wait-online.service '
        "systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer man-db.timer "
        "e2scrub_all.timer e2scrub_reap.service fstrim.timer dpkg-db-backup.timer "
        "systemd-tmpfiles-clean.timer getty-static.service getty@tty1.service "
        "serial-getty@ttyS0.service systemd-update-utmp.service "
        "systemd-update-utmp-runlevel.service modprobe@loop.service modprobe@dm_mod.service "
        "modprobe@fuse.service modprobe@efi_pstore.service modprobe@drm.service "
        "systemd-binfmt.service proc-sys-fs-binfmt_misc.automount sys-kernel-debug.mount "
        "sys-kernel-tracing.mount dev-hugepages.mount sys-fs-fuse-connections.mount",
        # a volatile journal: no flush to /var/log at boot (the run reads it back before the end)
        '--customize-hook=mkdir -p "$1/etc/systemd/journald.conf.d" && printf '
        "'[Journal]\\nStorage=volatile\\n' > \"$1/etc/systemd/journald.conf.d/volatile.conf\"",
        f'--customize-hook=mkdir -p "$1/tmp/pypi" && cp {wheels}/*.whl "$1/tmp/pypi/"',
        '--customize-hook=chroot "$1" python3 -m venv --system-site-packages /opt/labpower',
        '--customize-hook=chroot "$1" /opt/labpower/bin/pip install -q --no-index '
        "--find-links /tmp/pypi " + " ".join(f"'{p}'" for p in PYPI),
        '--customize-hook=rm -rf "$1/tmp/pypi"',
    ]
    run(
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        "--include=" + ",".join(PACKAGES),
        *hooks,
        "bookworm",
        rootfs,
        "http://deb.debian.org/debian",
    )
    img = out / "root.img"
    run("mkfs.ext4", "-q", "-L", "root", "-d", rootfs, img, "2G")


#: an image used this recently is kept when another is built: two branches or clones whose
#: inputs differ each keep theirs, instead of rebuilding at every run one after the other
KEEP_USED_WITHIN = 24 * 3600.0
#: however recently used, no more images than this stay (each takes ~800 MB on disk)...
MAX_IMAGES = 3
#: ...except one used this recently, which a run may be booting right now
IN_USE_WITHIN = 600.0


def build(cache: Path | None = None) -> Path:
    """The cache directory of the current image, building it first if needed.

    Each call marks the image used (the mtime of its ``done`` file), and building one prunes
    the others (:func:`prune`).

    :raises subprocess.CalledProcessError: a build step failed.
    """
    kernel = kernel_package()
    out = (cache or cache_root()) / cache_key(kernel)
    out.parent.mkdir(parents=True, exist_ok=True)
    # one builder at a time (several pytest-xdist workers, or two suites): the others wait,
    # then find the image done; an flock goes away with its process
    with open(_lock_path(out), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "done").exists():
            os.utime(out / "done")
            return out
        _build(out, kernel)
    prune(out.parent, keep=out)
    return out


def _lock_path(image: Path) -> Path:
    return image.with_name(image.name + ".lock")


def prune(cache: Path, keep: Path, now: float | None = None) -> list[Path]:
    """Remove the images in ``cache`` other than ``keep`` that are no longer worth their space.

    An image goes when nobody used it for :data:`KEEP_USED_WITHIN`, or when more than
    :data:`MAX_IMAGES` are left, least recently used first, unless it was used within
    :data:`IN_USE_WITHIN`. What a killed build left (a directory without ``done``) goes too.
    Nothing is touched while its lock is held elsewhere (being checked or built). Returns the
    directories removed.
    """
    now = time.time() if now is None else now

    def last_used(d: Path) -> float:
        done = d / "done"
        return done.stat().st_mtime if done.is_file() else -math.inf

    others = sorted(
        (d for d in cache.iterdir() if d.is_dir() and d != keep), key=last_used, reverse=True
    )
    removed: list[Path] = []
    for rank, d in enumerate(others, start=2):  # rank 1 is ``keep``
        # a build in progress is <key>.<random> beside <key>, under <key>.lock
        with open(_lock_path(cache / d.name.split(".")[0]), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            idle = now - last_used(d)  # read again under the lock
            if idle > KEEP_USED_WITHIN or (rank > MAX_IMAGES and idle > IN_USE_WITHIN):
                # "done" first: a half-removed image is never taken for a built one
                (d / "done").unlink(missing_ok=True)
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    return removed


def _build(out: Path, kernel: str) -> None:
    """Build the image into a temporary directory beside ``out``, then move it there."""
    tmp_out = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="labpower-vm-") as tmp:
            work = Path(tmp)
            kroot, version = build_kernel(work, kernel, tmp_out)
            build_initrd(work, kroot, version, tmp_out)
            build_rootfs(work, kroot, version, tmp_out)
    except BaseException:
        shutil.rmtree(tmp_out, ignore_errors=True)
        raise
    (tmp_out / "done").write_text(kernel + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp_out.rename(out)


if __name__ == "__main__":
    print(build())

"""Build (once) and cache the kernel module the guest lacks: ``gpio-sim``, a real gpiochip.

Debian's kernels do not build gpio-sim (nor gpio-mockup), and the guest has no other GPIO
chip. It is built here from Debian's own ``linux-source-6.1`` of the guest kernel's exact
version, against that kernel's ``linux-headers`` and ``linux-kbuild`` packages (unpacked, not
installed), so the guest loads it like one of its own modules (same vermagic and symbol
versions; the kernel loads unsigned modules). Two details of the Debian config:

- ``CONFIG_IRQ_SIM`` is off, and gpio-sim needs it: ``kernel/irq/irq_sim.c`` is linked into
  the module. It calls ``irq_to_desc``, which is not exported to modules; the same handler runs
  through the exported ``generic_handle_irq`` instead (one line, patched with sed).
- gpio-sim includes the private ``drivers/gpio/gpiolib.h``, taken from the same source.

``python3 tests/vm/kernel_modules.py`` prints the cache directory, which holds
``gpio-sim.ko`` and the ``gpiod`` wheel the guest's Python needs (Debian 12 has only
libgpiod v1). The key is the kernel package's name and version; needs apt-get, dpkg-deb, tar,
gcc and make.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# a script next to this file, not a package: imported by name
build_image: Any = importlib.import_module("build_image")  # untyped for mypy
DEBIAN_PYTHON, kernel_package, run = (
    build_image.DEBIAN_PYTHON,
    build_image.kernel_package,
    build_image.run,
)

#: bump when a step changes what is built
BUILD_VERSION = 1
#: the gpiod release for the guest's Python 3.11 (the one uv.lock pins on the host)
GPIOD = "gpiod==2.5.0"
SOURCES = ["drivers/gpio/gpio-sim.c", "drivers/gpio/gpiolib.h", "kernel/irq/irq_sim.c"]
KBUILD = "obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-core.o irq_sim.o\n"


def package_version(package: str) -> str:
    out = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", package],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"apt knows no version of {package}")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "labpower" / "vm-modules"


def build_gpio_sim(work: Path, kernel: str, version: str, out: Path) -> None:
    abi = kernel.removeprefix("linux-image-").removesuffix("-amd64")
    series = ".".join(version.split(".")[:2])  # 6.1
    packages = [
        f"linux-headers-{abi}-amd64={version}",
        f"linux-headers-{abi}-common={version}",
        f"linux-kbuild-{series}={version}",
        f"linux-source-{series}={version}",
    ]
    run("apt-get", "download", "-q", *packages, cwd=work)
    root = work / "root"
    for deb in work.glob("*.deb"):
        run("dpkg-deb", "-x", deb, root)
    src = root / "usr" / "src"
    headers = src / f"linux-headers-{abi}-amd64"
    # the headers' Makefile includes the common part by its installed path
    makefile = headers / "Makefile"
    makefile.write_text(makefile.read_text().replace("/usr/src/", f"{src}/"))
    top = f"linux-source-{series}"
    run("tar", "-xJf", src / f"{top}.tar.xz", "-C", work, *(f"{top}/{s}" for s in SOURCES))
    mod = work / "mod"
    mod.mkdir()
    shutil.copy(work / top / "drivers/gpio/gpio-sim.c", mod / "gpio-sim-core.c")
    shutil.copy(work / top / "drivers/gpio/gpiolib.h", mod / "gpiolib.h")
    irq_sim = (work / top / "kernel/irq/irq_sim.c").read_text()
    call = "handle_simple_irq(irq_to_desc(irqnum));"
    if call not in irq_sim:
        raise RuntimeError("irq_sim.c changed: the irq_to_desc call to replace is not there")
    (mod / "irq_sim.c").write_text(irq_sim.replace(call, "generic_handle_irq(irqnum);"))
    (mod / "Kbuild").write_text(KBUILD)
    run("make", "-s", "-C", headers, f"M={mod}", "modules", stdout=subprocess.DEVNULL)
    shutil.copy(mod / "gpio-sim.ko", out / "gpio-sim.ko")


def build(cache: Path | None = None) -> Path:
    """The cache directory holding ``gpio-sim.ko`` and the gpiod wheel, built if needed.

    :raises subprocess.CalledProcessError: a build step failed.
    """
    kernel = kernel_package()
    version = package_version(kernel)
    key = hashlib.sha256(repr([BUILD_VERSION, kernel, version, GPIOD, KBUILD]).encode())
    out = (cache or cache_root()) / key.hexdigest()[:16]
    if (out / "done").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="labpower-kmod-") as tmp:
            build_gpio_sim(Path(tmp), kernel, version, tmp_out)
        wheels = tmp_out / "wheels"
        run(
            DEBIAN_PYTHON, "-m", "pip", "download", "-q", "--only-binary=:all:", "--no-deps",
            "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "-d", wheels,
            GPIOD,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(tmp_out, ignore_errors=True)
        raise
    (tmp_out / "done").write_text(f"{kernel} {version}\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp_out.rename(out)
    return out


if __name__ == "__main__":
    print(build())

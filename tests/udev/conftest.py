"""udevadm 254 (it has ``verify``; Debian 12's 252 does not), fetched once and cached.

The .deb comes from bookworm-backports through a private apt sources list and state
directory, and is unpacked, not installed: the host's udev stays what it is. It is kept in
``~/.cache/labpower/udev-254`` (or ``$XDG_CACHE_HOME``), so only a fresh machine downloads.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ..cache_lock import cache_lock

SOURCES = "deb http://deb.debian.org/debian bookworm-backports main\n"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "labpower" / "udev-254"


def fetch_udevadm(cache: Path) -> Path:
    """The cached udevadm 254, downloading it first if needed.

    :raises subprocess.CalledProcessError: apt could not fetch or dpkg-deb unpack it.
    """
    udevadm = cache / "root" / "bin" / "udevadm"
    if udevadm.exists():
        return udevadm
    apt = cache / "apt"
    for d in ("lists/partial", "archives/partial", "etc"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    (apt / "etc" / "sources.list").write_text(SOURCES)
    opts = [
        f"-oDir::Etc::SourceList={apt}/etc/sources.list",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={apt}/lists",
        f"-oDir::Cache={apt}",
        "-oDebug::NoLocking=1",
        # the files are written by us, not by apt's unprivileged _apt user
        "-oAPT::Sandbox::User=root",
    ]
    subprocess.run(["apt-get", *opts, "-qq", "update"], check=True)
    subprocess.run(
        ["apt-get", *opts, "-qq", "download", "udev/bookworm-backports"], check=True, cwd=apt
    )
    (deb,) = apt.glob("udev_254*.deb")
    tmp = cache / "root.tmp"
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    tmp.rename(cache / "root")
    return udevadm


@pytest.fixture(scope="session")
def udevadm254() -> Path:
    with cache_lock(cache_dir()):
        return fetch_udevadm(cache_dir())

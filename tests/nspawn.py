"""systemd-nspawn containers that may boot side by side (pytest-xdist workers).

Each container gets a machine name of its own: without ``--machine`` nspawn derives it from
the root directory, so two containers of the same root would share their state under
/run/systemd/nspawn. After the container, only what nspawn left there under that name is
removed, never another container's.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

_count = itertools.count()


@contextmanager
def machine_name() -> Iterator[str]:
    """A machine name no other container of this machine uses now (``--machine=``); what
    nspawn leaves under its name in /run/systemd/nspawn* is removed after the block."""
    name = f"labpower-test-{os.getpid()}-{next(_count)}"
    try:
        yield name
    finally:
        for path in glob.glob(f"/run/systemd/nspawn*/**/{name}*", recursive=True):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

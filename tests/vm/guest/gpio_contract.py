"""The backend contract suite (``labpower.backends.contract``) for ``gpio``, on a real
gpiochip (gpio-sim) watched from the kernel's side (gpio_rig.py). It runs in the lab-host
VM's guest, as root, under pytest (no ``test_`` in the name: the host's pytest must not
collect it): localbus.py runs it with ``--junitxml`` into the run's output, and
tests/vm/test_labhost.py fails the host's suite on any failure there."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from labpower.backends.contract import BackendContract, Rig

if TYPE_CHECKING:
    from tests.vm.guest.gpio_rig import GpioRig
else:  # run in the guest: gpio_rig.py is next to this file (pytest's rootdir on sys.path)
    from gpio_rig import GpioRig

#: the 9p share holding gpio-sim.ko (set by localbus.py)
SHARE = Path(os.environ.get("LABPOWER_VM_SHARE", "/mnt/share"))


class TestGpio(BackendContract):
    @pytest.fixture
    def rig(self) -> Iterator[Rig]:
        with GpioRig(SHARE) as made:
            yield made

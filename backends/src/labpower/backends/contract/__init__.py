"""The backend contract suite, for labpower's own backends and for anyone else's.

Every backend keeps the rules of :mod:`labpower.backends.base`; this package checks them
against a board of the backend's kind that a :class:`Rig` provides (a simulator, a fake at the
library boundary, a local server) and watches: nothing is switched by opening, reading,
closing or re-opening; a switch reaches the board and is read back where the backend says it
reads back; ``get`` reports the board and never a guess; an absent board is
:class:`~labpower.backends.errors.DeviceUnavailableError`, nonsense from it
:class:`~labpower.backends.errors.OperationError`; a hung board fails at the deadline; a board
that vanishes works again once it is back.

A third-party backend runs the same suite in its own tests::

    import pytest
    from labpower.backends.contract import BackendContract, Rig

    class TestMyBoard(BackendContract):
        @pytest.fixture
        def rig(self, tmp_path):
            with MyBoardRig(tmp_path) as rig:   # a Rig subclass with kind = "myboard"
                yield rig

The pytest plugin (:mod:`labpower.backends.contract.plugin`, loaded through the ``pytest11``
entry point of labpower-backends) registers the markers the suite uses. The manual's
"Writing a backend" section says more.
"""

from __future__ import annotations

from collections.abc import Iterable

from labpower.backends.contract.rig import Rig, Switch
from labpower.backends.contract.suite import BackendContract, make_device, settle

__all__ = ["BackendContract", "Rig", "Switch", "make_device", "missing_rigs", "settle"]


def missing_rigs(kinds: Iterable[str]) -> list[str]:
    """The installed backends (entry points) that no rig in ``kinds`` (names of backend
    kinds, e.g. the ``kind`` of every rig a suite has) covers, sorted."""
    from labpower.backends import registry

    covered = set(kinds)
    return [name for name in registry.names() if name not in covered]

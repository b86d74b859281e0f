"""Byte-accurate simulators of the serial relay boards: each board's model
(:mod:`labpower.backends.models`, written from docs/hardware.md) on a pty."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labpower.backends.models import (
    DIALECTS,
    DevantechModel,
    KmtronicModel,
    LcusModel,
    NumatoModel,
    SimDialect,
)
from labpower.backends.sim.base import PtySimulator

__all__ = [
    "DIALECTS",
    "SIMULATORS",
    "Boards",
    "DevantechSimulator",
    "KmtronicSimulator",
    "LcusSimulator",
    "NumatoSimulator",
    "SimDialect",
]


class LcusSimulator(PtySimulator, LcusModel):
    """An LCUS board (:class:`~labpower.backends.models.LcusModel`) on a pty:
    ``LcusSimulator(link, channels=4, dialect="ascii", wire_baud=None)``."""


class NumatoSimulator(PtySimulator, NumatoModel):
    """A Numato USB relay module (:class:`~labpower.backends.models.NumatoModel`) on a pty:
    ``NumatoSimulator(link, channels=8, version=..., board_id=..., wire_baud=None)``."""


class KmtronicSimulator(PtySimulator, KmtronicModel):
    """A KMTronic USB relay board (:class:`~labpower.backends.models.KmtronicModel`) on a
    pty: ``KmtronicSimulator(link, channels=4, wire_baud=None)``."""


class DevantechSimulator(PtySimulator, DevantechModel):
    """A Devantech USB-RLY board (:class:`~labpower.backends.models.DevantechModel`) on a
    pty: ``DevantechSimulator(link, channels=8, software_version=1, wire_baud=None)``."""


SIMULATORS: dict[str, type[PtySimulator]] = {
    cls.kind: cls for cls in (LcusSimulator, NumatoSimulator, KmtronicSimulator, DevantechSimulator)
}


class Boards:
    """Several simulated boards linked in one directory, all stopped together::

    with Boards(tmpdir) as boards:
        lcus = boards("lcus", "lcus0", channels=2)   # started, linked at tmpdir/lcus0
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.started: list[PtySimulator] = []

    def __call__(self, kind: str, name: str = "board", **options: Any) -> PtySimulator:
        """Start a ``kind`` board (see :data:`SIMULATORS`) linked at ``directory/name``."""
        sim = SIMULATORS[kind](self.directory / name, **options)
        self.started.append(sim)
        sim.start()
        return sim

    def __enter__(self) -> Boards:
        return self

    def __exit__(self, *exc: object) -> None:
        for sim in self.started:
            sim.stop()

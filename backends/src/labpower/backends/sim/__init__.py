"""Byte-accurate simulators of the serial relay boards, on real ptys.

Each simulator creates a pty, links it at a path of your choice, and answers on it exactly
like the board: the LCUS status dialects, the Numato echo and prompt, KMTronic status frames,
Devantech state bytes. labpower's serial backends open the link like any serial port, so
everything from the port handling up is the real code.

Trying labpower without hardware
--------------------------------
Start a simulated 4-relay LCUS board (it runs until Ctrl-C and prints every switch)::

    labpower-sim lcus --link /tmp/lcus0 --channels 4

In a second terminal, write a config that points a device at the link and start the daemon::

    cat > /tmp/labpowerd.toml <<'TOML'
    [daemon]
    socket = "/tmp/labpower.sock"

    [devices.bench]
    backend = "lcus"
    port = "/tmp/lcus0"
    channels = 4

    [targets.dut1]
    device = "bench"
    channel = 1
    TOML
    labpowerd --config /tmp/labpowerd.toml

and switch from a third::

    labpower --socket /tmp/labpower.sock on dut1
    labpower --socket /tmp/labpower.sock list

The simulator prints ``channel 1 on``; ``list`` shows dut1 ``on``, verified (read back from
the board). The other kinds work the same way: ``labpower-sim numato|kmtronic|devantech``,
with ``backend = "numato"`` etc. ``--dialect silent`` makes an LCUS board that cannot report
its state (labpower then says ``not verified``); ``--wire-baud 9600`` makes every byte take
as long as on a real 9600-baud wire.

In tests
--------
::

    from labpower.backends.sim import LcusSimulator

    with LcusSimulator(tmp_path / "lcus0", channels=4, dialect="raw") as board:
        ...                   # point a config's ``port`` at tmp_path / "lcus0"
        board.relays          # {1: True, 2: False, ...}: the real relay states
        board.switches        # every switching command received: [Switch(1, True), ...]
        board.received        # every byte received
        board.hang()          # stop answering (a hung board); board.heal() ends it
        board.garble()        # answer garbage
        board.ignore_next_switch()  # the next switch changes nothing (read-back disagrees)
        board.drop(); board.come_back()  # unplugged (EIO, link removed), then back
"""

from __future__ import annotations

from labpower.backends.models import Switch
from labpower.backends.sim.base import PtySimulator
from labpower.backends.sim.boards import (
    DIALECTS,
    SIMULATORS,
    Boards,
    DevantechSimulator,
    KmtronicSimulator,
    LcusSimulator,
    NumatoSimulator,
)

__all__ = [
    "DIALECTS",
    "SIMULATORS",
    "Boards",
    "DevantechSimulator",
    "KmtronicSimulator",
    "LcusSimulator",
    "NumatoSimulator",
    "PtySimulator",
    "Switch",
]

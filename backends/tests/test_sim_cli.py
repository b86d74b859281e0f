"""``labpower-sim``: the serial kinds and the uhid usbrelay board share one command."""

from __future__ import annotations

import pytest
from labpower.backends.sim.cli import main


def test_usbrelay_goes_to_the_uhid_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["usbrelay", "--help"])
    assert exc.value.code == 0
    assert "/dev/uhid" in capsys.readouterr().out


def test_serial_kinds_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for kind in ("lcus", "numato", "kmtronic", "devantech", "usbrelay --uhid"):
        assert kind in out

"""The ``gpio`` backend where no GPIO chip is needed: its options as the daemon's config
loader checks them, ``--check-config``'s note, and the errors for a chip that is not there or
is not a chip (gpiod's own check, on real files). Switching, read-back, active-low and what a
daemon's death does to a line run on a real gpiochip in the lab-host VM
(tests/vm/test_labhost.py): this machine has none.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from labpower.backends import registry
from labpower.backends.errors import DeviceUnavailableError
from labpower.backends.gpio import GpioBackend, GpioOptions
from labpower.daemon.config import Config, ConfigError, parse

pytestmark = pytest.mark.anyio


def config(device: dict[str, Any]) -> dict[str, Any]:
    return {
        "devices": {"pins": {"backend": "gpio", **device}},
        "targets": {"t": {"device": "pins", "channel": 1}},
    }


def load_text(data: dict[str, Any]) -> Config:
    return parse(data, "labpowerd.toml")


def test_entry_point_names_the_backend() -> None:
    assert registry.load("gpio") is GpioBackend


def test_lines_by_offset_and_by_name() -> None:
    cfg = load_text(config({"chip": "gpiochip0", "lines": [17, "RELAY2"], "channels": 2}))
    options = cfg.devices["pins"].options
    assert options == GpioOptions(chip="gpiochip0", lines=[17, "RELAY2"], active_low=False)


@pytest.mark.parametrize(
    ("device", "key", "reason"),
    [
        ({"chip": "gpiochip0", "lines": [1, 2], "channels": 1}, "lines", "2 lines for 1"),
        ({"chip": "gpiochip0", "lines": [3, 3], "channels": 2}, "lines[1]", "listed twice"),
        ({"chip": "gpiochip0", "lines": [-1], "channels": 1}, "lines[0]", "0..65535"),
        ({"chip": "gpiochip0", "lines": [1.5], "channels": 1}, "lines[0]", "an integer or"),
        ({"chip": "gpiochip0", "lines": ["x" * 33], "channels": 1}, "lines[0]", "1..32 bytes"),
        ({"chip": "gpiochip0", "channels": 1}, "lines", "one line"),
        ({"lines": [1], "channels": 1}, "chip", "required option missing"),
        ({"chip": "gpiochip0", "lines": [1], "active_low": "yes"}, "active_low", "a boolean"),
    ],
)
def test_bad_options_name_the_key(device: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(config(device))
    assert info.value.key == f"devices.pins.{key}"
    assert reason in info.value.reason


@pytest.mark.parametrize(("active_low", "pull"), [("false", "pull-down"), ("true", "pull-up")])
def test_check_config_says_what_the_kernel_may_do_to_a_line(
    tmp_path: Path, active_low: str, pull: str
) -> None:
    path = tmp_path / "labpowerd.toml"
    path.write_text(
        '[devices.pins]\nbackend = "gpio"\nchip = "gpiochip0"\nlines = [17]\n'
        f"active_low = {active_low}\n"
        '[targets.t]\ndevice = "pins"\nchannel = 1\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "labpower.daemon", "--check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    note = [line for line in done.stdout.splitlines() if "devices.pins: note:" in line]
    assert len(note) == 1, done.stdout
    # what stop, restart, a crash and a reload do, and the wiring for this device's polarity
    assert "a reload keeps the lines driven" in note[0]
    assert "a restart or a crash keeps them too" in note[0]
    assert "a release of one close and one request" in note[0]
    assert "A stop, or a daemon without systemd exiting, releases the lines" in note[0]
    assert f"wire a {pull} resistor on each line" in note[0]


def test_importing_the_backend_does_not_import_gpiod() -> None:
    # the library is an extra: only a configured gpio device needs it
    code = "import sys, labpower.backends.gpio; print('gpiod' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"


async def test_a_chip_that_is_not_there_is_unavailable(tmp_path: Path) -> None:
    for chip, reason in (
        (str(tmp_path / "gpiochip9"), "no such GPIO chip"),
        ("/dev/null", "not a GPIO chip"),
        ("no-such-label", "no GPIO chip named or labelled 'no-such-label'"),
    ):
        backend = GpioBackend("pins", 1, GpioOptions(chip=chip, lines=[0]))
        with pytest.raises(DeviceUnavailableError, match=reason):
            await backend.open()
        await backend.close()

"""Meters from hwmon: parsing of ``meter = "hwmon:..."`` and of the attributes, against a
directory shaped like /sys/class/hwmon (this host has no hwmon device; the kernel's own is in
the lab-host VM test), and Read through the real daemon for a target whose switch is a mock."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from labpower.backends import DeviceUnavailableError, OperationError
from labpower.backends.hwmon import HwmonMeter
from labpower.daemon.config import ConfigError, parse


def hwmon(class_dir: Path, index: int, name: str, **attrs: int) -> Path:
    """An hwmon device ``hwmon<index>`` with ``name`` and integer attributes."""
    directory = class_dir / f"hwmon{index}"
    directory.mkdir(parents=True)
    (directory / "name").write_text(name + "\n")
    for attr, value in attrs.items():
        (directory / attr).write_text(f"{value}\n")
    return directory


def meter(text: str, class_dir: Path) -> HwmonMeter:
    parsed = HwmonMeter.parse(text)
    return HwmonMeter(parsed.device, parsed.channel, str(class_dir))


@pytest.mark.parametrize(
    ("text", "device", "channel"),
    [
        ("hwmon:ina226", "ina226", 1),
        ("hwmon:ina3221:2", "ina3221", 2),
        ("hwmon:/sys/bus/i2c/devices/1-0040", "/sys/bus/i2c/devices/1-0040", 1),
        ("hwmon:/sys/class/hwmon/hwmon3:3", "/sys/class/hwmon/hwmon3", 3),
    ],
)
def test_parse(text: str, device: str, channel: int) -> None:
    parsed = HwmonMeter.parse(text)
    assert (parsed.device, parsed.channel) == (device, channel)
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ina226", "must be hwmon:NAME"),
        ("hwmon:", "must be hwmon:NAME"),
        ("hwmon:ina226:0", "channel must be 1..64"),
        ("hwmon:/etc/passwd", "under /sys/"),
        ("hwmon:/sys/../etc", "under /sys/"),
        ("hwmon:ina 226", "must be hwmon:NAME"),
    ],
)
def test_bad_meter_names_the_target_key(text: str, reason: str) -> None:
    data = {
        "devices": {"bench": {"backend": "mock", "channels": 2}},
        "targets": {"dut": {"device": "bench", "channel": 1, "meter": text}},
    }
    with pytest.raises(ConfigError, match=reason) as caught:
        parse(data, "lab.toml")
    assert str(caught.value).startswith("lab.toml: targets.dut.meter: ")


def test_reads_volts_and_amperes_by_name_and_channel(tmp_path: Path) -> None:
    hwmon(tmp_path, 0, "acpitz", temp1_input=40000)
    hwmon(tmp_path, 1, "ina226", in0_input=2, in1_input=12004, curr1_input=1503)
    hwmon(tmp_path, 2, "ina3221", in1_input=5000, in2_input=3300, curr2_input=250)
    one = meter("hwmon:ina226", tmp_path).read()
    assert (one.voltage, one.current) == pytest.approx((12.004, 1.503))
    two = meter("hwmon:ina3221:2", tmp_path).read()
    assert (two.voltage, two.current) == pytest.approx((3.3, 0.25))


def test_power_when_there_is_no_current(tmp_path: Path) -> None:
    hwmon(tmp_path, 0, "ina219x", in1_input=5000, power1_input=2_500_000)
    m = meter("hwmon:ina219x", tmp_path).read()
    assert (m.voltage, m.current, m.apparent_power) == pytest.approx((5.0, 0.5, 2.5))


def test_by_device_path(tmp_path: Path) -> None:
    device = tmp_path / "1-006f"
    hwmon(device / "hwmon", 7, "ltc4151", in1_input=11980, curr1_input=420)
    m = HwmonMeter(str(device), 1).read()
    assert (m.voltage, m.current) == pytest.approx((11.98, 0.42))


def test_missing_ambiguous_and_garbled(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailableError, match="no hwmon device named 'ina226'"):
        meter("hwmon:ina226", tmp_path).read()
    hwmon(tmp_path, 0, "ina226", in1_input=1)
    hwmon(tmp_path, 1, "ina226", in1_input=2)
    with pytest.raises(OperationError, match="2 hwmon devices are named 'ina226'"):
        meter("hwmon:ina226", tmp_path).read()
    hwmon(tmp_path, 2, "odd", in1_input=5000)
    (tmp_path / "hwmon2" / "curr1_input").write_text("lots\n")
    with pytest.raises(OperationError, match="is not a number"):
        meter("hwmon:odd", tmp_path).read()
    with pytest.raises(OperationError, match="no in3_input"):
        meter("hwmon:odd:3", tmp_path).read()


def test_unbound_device_is_unavailable_then_found_again(tmp_path: Path) -> None:
    m = meter("hwmon:ltc4151", tmp_path)
    first = hwmon(tmp_path, 3, "ltc4151", in1_input=12000, curr1_input=100)
    assert m.read().voltage == pytest.approx(12.0)
    shutil.rmtree(first)  # the driver unbound: its hwmon directory is gone
    with pytest.raises(DeviceUnavailableError):
        m.read()
    hwmon(tmp_path, 4, "ltc4151", in1_input=11000, curr1_input=100)  # bound again, new N
    assert m.read().voltage == pytest.approx(11.0)


#: Runs in a private mount namespace where /sys/class is a tmpfs whose hwmon directory is the
#: test's: a real labpowerd child process reads its meter where the kernel's hwmon devices are.
DAEMON_SCRIPT = """
import json, shutil, subprocess, sys
subprocess.run(["mount", "-t", "tmpfs", "none", "/sys/class"], check=True)
subprocess.run(["mkdir", "/sys/class/hwmon"], check=True)
subprocess.run(["mount", "--bind", sys.argv[1], "/sys/class/hwmon"], check=True)
from labpower.client.errors import DeviceUnavailable
from labpower.daemon.testing import serve
config = {
    "devices": {"bench": {"backend": "mock", "channels": 2}},
    "targets": {
        "metered": {"device": "bench", "channel": 1, "meter": "hwmon:ina226"},
        "plain": {"device": "bench", "channel": 2},
    },
}
out = {}
with serve(config, timeout=10) as lab:
    (r,) = lab.target("metered").read(count=1)
    out["metered"] = [r.voltage, r.current]
    (r,) = lab.target("plain").read(count=1)
    out["plain"] = [r.voltage, r.current]
    shutil.rmtree(sys.argv[1] + "/hwmon0")
    try:
        out["after"] = [r.voltage for r in lab.target("metered").read(count=1)]
    except DeviceUnavailable as exc:
        out["gone"] = str(exc)
    out["on"] = lab.on("metered").state
print(json.dumps(out))
"""


def test_read_through_the_daemon_uses_the_meter(tmp_path: Path) -> None:
    """Read of a target with a meter gives the meter's figures, the mock's for the target
    beside it, DeviceUnavailable once the meter's driver is unbound; switching is unaffected."""
    hwmon(tmp_path, 0, "ina226", in1_input=12000, curr1_input=750)
    namespace = ["unshare", "--mount", "--propagation", "private"]
    done = subprocess.run(
        [*namespace, sys.executable, "-c", DAEMON_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["metered"] == pytest.approx([12.0, 0.75])
    assert out["plain"] == [0.0, 0.0]  # the mock's first reading
    assert "no hwmon device named 'ina226'" in out["gone"]
    assert out["on"] == "on"

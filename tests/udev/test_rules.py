"""labpower's udev rules: made from the backends' USB declarations and saying the same, valid
for udev 254's checker, complete, never world-writable, and harmless to the devices they are
not for.

``python -m labpower.backends.udev_rules --check udev/70-labpower.rules`` is what fails when a
backend's declaration changes and the rules were not made again (or were edited by hand).

Where the rules are applied to real boards (group, mode, /dev/labpower links, labpowerd
started on plug): tests/vm/test_labhost.py, in a guest with a uhid relay board and a QEMU FTDI
port. This machine has no USB and no uhid, and udev refuses to read a fake sysfs tree (it
checks the filesystem type), so ``udevadm test`` here runs on the host's real ttys only.
"""

from __future__ import annotations

import grp
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from labpower.backends import registry, udev_rules
from labpower.backends.usbmatch import CH340, UsbId, UsbMatch

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "udev").glob("*.rules"))
NS_RUNNER = Path(__file__).with_name("udevtest_ns.py")
TEST_GID = 4242

#: every supported board family: the match the rules must contain for it (written from the
#: boards' USB IDs, not from the backends' declarations the rules are generated from)
FAMILIES = {
    "ch340": ('ATTRS{idVendor}=="1a86"', 'ATTRS{idProduct}=="7523"'),
    "numato": ('ATTRS{idVendor}=="2a19"',),
    "ft232r": ('ATTRS{idVendor}=="0403"', 'ATTRS{idProduct}=="6001"'),
    "kmtronic": ('ATTRS{product}=="*KMTronic*"',),
    "devantech": ('ATTRS{idVendor}=="04d8"', 'ATTRS{idProduct}=="ffee"'),
    "usbrelay": ('KERNELS=="0003:16C0:05DF.*"',),
    "lcus-hid": ('KERNELS=="0003:5131:2007.*"',),
    "ykush": ("0003:04D8:F2F7.*", "0003:04D8:F11B.*", "0003:04D8:F0CD.*"),
    "usbhub": ('SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device"', 'ATTR{bDeviceClass}!="09"'),
}
#: the shared serial chips and the backends each may be: one rule each, never one per backend
SHARED = {"ch340": {"lcus", "modbus"}, "ft232r": {"kmtronic", "modbus"}}


def rules_text() -> str:
    return "\n".join(p.read_text() for p in RULES)


def verify(udevadm: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(udevadm), "verify", "--no-summary", "-N", "never", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_there_are_rules() -> None:
    assert [p.name for p in RULES] == ["70-labpower.rules", "71-labpower-gpio.rules"]


def test_gpio_chips_are_group_labpower_through_their_node_only() -> None:
    # the character device (it has a DEVNAME); the old sysfs class's gpiochipN has none
    text = (ROOT / "udev" / "71-labpower-gpio.rules").read_text()
    rule = 'SUBSYSTEM=="gpio", KERNEL=="gpiochip[0-9]*", ENV{DEVNAME}=="?*", GROUP="labpower"'
    assert rule in text


def test_udevadm_verify_accepts_the_rules(udevadm254: Path) -> None:
    result = verify(udevadm254, *RULES)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_udevadm_verify_rejects_a_broken_copy(udevadm254: Path, tmp_path: Path) -> None:
    # the checker really checks: a typo in one operator fails it, naming the line
    broken = tmp_path / "70-labpower.rules"
    text = RULES[0].read_text()
    rule = '\nGROUP="labpower", MODE="0660"'
    broken.write_text(text.replace(rule, rule.replace("=", "==", 1)))
    result = verify(udevadm254, broken)
    assert result.returncode == 1
    line = text[: text.index(rule)].count("\n") + 2
    assert f"{broken}:{line}" in result.stdout + result.stderr


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_board_family_is_matched(family: str) -> None:
    text = rules_text()
    for match in FAMILIES[family]:
        assert match in text
    assert f'ENV{{LABPOWER_FAMILY}}="{family}"' in text


def test_a_shared_chip_is_claimed_once_and_names_its_candidates() -> None:
    text = rules_text()
    for family, backends in SHARED.items():
        (rule,) = [line for line in text.splitlines() if f'LABPOWER_FAMILY}}="{family}"' in line]
        (candidates,) = re.findall(r'LABPOWER_CANDIDATES\}="([^"]*)"', rule)
        assert set(candidates.split()) == backends
        vid_pid = FAMILIES[family]
        # no other rule gives the same VID:PID to a backend without a product string to go by
        others = [
            line for line in text.splitlines() if all(m in line for m in vid_pid) and line != rule
        ]
        assert all("ATTRS{product}" in line for line in others), others


def test_access_is_group_labpower_and_never_world_writable() -> None:
    assignments = re.findall(r'\b(MODE|GROUP|OWNER)\s*:?=\s*"([^"]*)"', rules_text())
    assert ("GROUP", "labpower") in assignments
    assert ("MODE", "0660") in assignments
    for key, value in assignments:
        if key == "MODE":
            assert int(value, 8) & 0o007 == 0, f'MODE="{value}" gives access to everybody'
        if key == "GROUP":
            assert value == "labpower"
        assert key != "OWNER"


def test_plugging_a_board_starts_the_daemon() -> None:
    text = rules_text()
    assert 'TAG+="systemd"' in text
    wanted = re.findall(r'ENV\{SYSTEMD_WANTS\}\+="([^"]+)"', text)
    assert wanted == ["labpowerd.service"]
    assert (ROOT / "packaging" / "systemd" / wanted[0]).is_file()


def test_root_hubs_are_left_to_the_host_controller() -> None:
    # hubs are matched by class; the controller's root hubs (usb1, usb2...) must not get group
    # labpower or start labpowerd at every boot: they are skipped before anything is applied
    lines = [line.strip() for line in rules_text().splitlines()]
    hub_class = lines.index('ATTR{bDeviceClass}!="09", GOTO="labpower_end"')
    root_hub = lines.index('KERNEL=="usb[0-9]*", GOTO="labpower_end"')
    family = lines.index('ENV{LABPOWER_FAMILY}="usbhub"')
    assert hub_class < root_hub < family


def test_links_go_under_dev_labpower() -> None:
    links = re.findall(r'SYMLINK\+="([^"]+)"', rules_text())
    assert links
    assert all(link.startswith("labpower/") for link in links)


# --- udevadm test, in a private mount namespace ------------------------------------------
def udevadm_test(tmp_path: Path, rules: list[Path], syspaths: list[str]) -> list[dict[str, Any]]:
    """Apply the rules (and the system's) to host devices, in a private mount namespace."""
    group = tmp_path / "group"
    group.write_text(Path("/etc/group").read_text() + f"labpower:x:{TEST_GID}:\n")
    nodes = []
    for syspath in syspaths:
        major, minor = Path(syspath, "dev").read_text().strip().split(":")
        nodes.append(
            {
                "syspath": syspath,
                "devname": Path(syspath).name,
                "major": int(major),
                "minor": int(minor),
            }
        )
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "host_mount_ns": os.readlink("/proc/self/ns/mnt"),
                "rules": [str(r) for r in rules],
                "group": str(group),
                "udevadm": "/usr/bin/udevadm",
                "nodes": nodes,
            }
        )
    )
    run = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, str(NS_RUNNER), spec],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    result: list[dict[str, Any]] = json.loads(run.stdout)
    return result


def rule_problems(output: str, rules: Path) -> list[str]:
    """udevadm test exits 0 even for broken rules: its complaints name the file."""
    return [
        line
        for line in output.splitlines()
        if str(rules) in line and not line.startswith("Reading rules file")
    ]


HOST_TTYS = [p for p in ("/sys/class/tty/ttyS0", "/sys/class/tty/tty1") if Path(p).exists()]


def test_udevadm_test_loads_the_rules_and_leaves_other_devices_alone(tmp_path: Path) -> None:
    assert HOST_TTYS, "no tty on this host to apply the rules to"
    results = udevadm_test(tmp_path, RULES, HOST_TTYS)
    for r in results:
        installed = Path("/etc/udev/rules.d") / RULES[0].name
        assert f"Reading rules file: {installed}" in r["output"]
        assert rule_problems(r["output"], installed) == []
        assert r["links"] == {}
        assert r["gid"] != TEST_GID
        # the system's own rules did run: the node is no longer the 0600 we created
        assert (r["gid"], r["mode"]) != (0, 0o600)
    assert grp.getgrgid(results[0]["gid"]).gr_name in ("tty", "dialout")


def test_udevadm_test_output_shows_broken_rules(tmp_path: Path) -> None:
    # rule_problems() is what the test above relies on to see a broken file: it must see one
    broken = tmp_path / "rules" / RULES[0].name
    broken.parent.mkdir()
    broken.write_text(RULES[0].read_text() + 'KERNEL=="tty1", FROBNICATE="yes"\n')
    (result,) = udevadm_test(tmp_path, [broken], HOST_TTYS[:1])
    assert rule_problems(result["output"], Path("/etc/udev/rules.d") / broken.name)


# --- made from the backends' declarations ---------------------------------------------
def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labpower.backends.udev_rules", "--check", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def own() -> list[tuple[str, UsbMatch]]:
    return [(name, usb) for name, _, usb in registry.declared(own_only=True)]


def test_the_shipped_rules_are_what_the_backends_declare() -> None:
    result = check(RULES[0])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_rules_file_that_disagrees_fails_the_check(tmp_path: Path) -> None:
    # a hand edit: Numato's rule dropped
    edited = tmp_path / "70-labpower.rules"
    lines = RULES[0].read_text().splitlines(keepends=True)
    numato = next(line for line in lines if 'LABPOWER_FAMILY}="numato"' in line)
    edited.write_text("".join(line for line in lines if line != numato))
    result = check(edited)
    assert result.returncode == 1
    assert f"+{numato}" in result.stdout


def test_every_declared_backend_is_in_the_rules() -> None:
    text = RULES[0].read_text()
    names = [name for name, _ in own()]
    assert {"lcus", "kmtronic", "modbus", "numato", "devantech"} <= set(names)
    assert {"usbrelay", "lcus-hid", "ykush", "usbhub"} <= set(names)
    for name in names:
        assert any(
            name in line.partition('LABPOWER_CANDIDATES}="')[2].partition('"')[0].split()
            for line in text.splitlines()
        ), name


def test_a_new_board_changes_the_rules_and_they_stay_valid(
    udevadm254: Path, tmp_path: Path
) -> None:
    # a backend with its own IDs gets its own rule; one on a shared chip joins the chip's
    # candidates and adds no second rule for the chip
    new = UsbMatch("tty", "Example relay", ids=(UsbId(0x1234, 0xABCD),), identity="usb")
    rs485 = UsbMatch("tty", "Another RS-485 board", chips=(CH340,))
    text = udev_rules.render([*own(), ("example", new), ("other485", rs485)])
    assert text != udev_rules.shipped()
    assert (
        'ATTRS{idVendor}=="1234", ATTRS{idProduct}=="abcd", ENV{LABPOWER_FAMILY}="example"' in text
    )
    ch340 = [line for line in text.splitlines() if 'ENV{LABPOWER_FAMILY}="ch340"' in line]
    assert len(ch340) == 1
    assert 'ENV{LABPOWER_CANDIDATES}="lcus modbus other485"' in ch340[0]
    rules = tmp_path / "70-labpower.rules"
    rules.write_text(text)
    result = verify(udevadm254, rules)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_a_declaration_the_rules_cannot_express_is_refused() -> None:
    odd = UsbMatch("usb", "A USB gadget", ids=(UsbId(0x1234, 0x0001),))
    with pytest.raises(ValueError, match="gadget"):
        udev_rules.render([*own(), ("gadget", odd)])

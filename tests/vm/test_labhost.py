"""A whole lab host in a VM: Debian 12 with systemd and udev, labpower installed from the
wheels, packaging/ and udev/, and two boards plugged while it runs: a uhid USBRelay2 board
(made in the guest) and a KMTronic board on QEMU's usb-serial FTDI port, simulated here on
the host (usb_serial.py) and plugged, unplugged and replugged on the guest's request.

The guest runs tests/vm/guest/scenario.py (through boot.sh, from a 9p share) and writes what
it saw to out/result.json; it talks to the host over a virtio-serial control channel
(:class:`Control`). The assertions are here. The image is built once and cached
(tests/vm/build_image.py); a warm run is one boot under software emulation.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pytest
from labpower.backends.net.snmp_community import decode_response, encode_request
from labpower.backends.net.snmp_profiles import PROFILES
from labpower.backends.sim import KmtronicSimulator, Switch
from labpower.backends.sim.http_devices import GudeSimulator
from labpower.backends.sim.snmp import READINGS, SnmpAgent

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
# scripts next to this file, not a package: imported by name
build_image: Any = importlib.import_module("build_image")  # untyped for mypy
kernel_modules: Any = importlib.import_module("kernel_modules")
if TYPE_CHECKING:
    from tests.vm.usb_serial import UsbSerialBoard
else:
    from usb_serial import UsbSerialBoard

pytestmark = pytest.mark.slow
BOOT_TIMEOUT = 420
#: the serial board's USB serial number. udev names the FT232R chip, not the board behind it
#: (a shared chip): /dev/labpower/ft232r-KMT01; the config says it is a KMTronic
SERIAL_NUMBER = "KMT01"
#: what the scenario switches, in order, on each board (the off while unplugged never
#: reaches a board): channel 1 on, channel 2 on, (unplug, replug) channel 1 on
SENT = [[1, True], [2, True], [1, True]]
#: the Eaton PDU's outlet 1 state OID (on: 1)
EATON_STATE_1 = PROFILES["eaton"].oid(PROFILES["eaton"].state, 1)
#: drivers udev would load at boot for the emulated machine's other hardware: each costs
#: CPU time under emulation while the test sets up
UNWANTED_MODULES = [
    "floppy", "ata_piix", "pata_acpi", "ata_generic", "sr_mod", "pcspkr", "psmouse",
    "serio_raw", "i2c_piix4", "joydev", "bochs", "kvm", "kvm_amd", "kvm_intel", "powernow_k8",
    "acpi_cpufreq", "aesni_intel", "ghash_clmulni_intel", "sha512_ssse3", "sha256_ssse3",
    "sha1_ssse3", "crc32_pclmul", "crct10dif_pclmul", "polyval_clmulni", "button",
]  # fmt: skip


class Control:
    """The host's end of the guest's control channel: QEMU connects to this Unix socket at
    start (``-chardev socket,path=...``) and the guest's virtio-serial port ``labpower.ctl``
    carries one JSON request a line, answered with one JSON line: ``plug``, ``unplug``,
    ``board`` (the serial board's relays and switching commands)."""

    def __init__(self, path: Path, board: UsbSerialBoard) -> None:
        self.board = board
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        #: every request, in order
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self._serve, name="vm-control", daemon=True)

    def __enter__(self) -> Control:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept() if QEMU never came
        except OSError:
            pass
        self.listener.close()
        self._thread.join(timeout=10)
        self.board.close()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            for line in lines:  # ends when QEMU exits
                request = json.loads(line)
                conn.sendall(json.dumps(self.answer(request.get("op", ""))).encode() + b"\n")

    def answer(self, op: str) -> dict[str, Any]:
        self.requests.append(op)
        try:
            if op == "plug":
                self.board.plug()
            elif op == "unplug":
                self.board.unplug()
            elif op == "board":
                return {
                    "relays": {str(ch): on for ch, on in self.board.relays.items()},
                    "switches": [[s.channel, s.on] for s in self.board.switches],
                }
            else:
                return {"error": f"unknown request {op!r}"}
        except (OSError, RuntimeError) as exc:
            return {"error": str(exc)}
        return {"ok": True}


@dataclass(frozen=True, slots=True)
class GuestRun:
    out: Path
    status: int
    #: every switching command the host's serial board received during the whole run
    serial_switches: list[Switch]
    serial_relays: dict[int, bool]
    requests: list[str]
    #: the network PDUs as the guest left them: the Gude's relays, the Eaton's outlet 1
    gude_relays: dict[int, bool]
    eaton_outlet1: int | None


def qemu_command(image: Path, share: Path, serial_sock: Path, control_sock: Path) -> list[str]:
    """The VM. Its NIC is QEMU's user networking, through which the guest reaches this
    host's loopback as 10.0.2.2 (the network PDUs' simulators listen there); no option ROM."""
    return [
        "qemu-system-x86_64",
        # -nodefaults: no NIC (and its option ROM), CD-ROM, floppy or VGA to probe at boot
        "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1024", "-nodefaults",
        "-no-reboot", "-monitor", "none", "-display", "none",
        "-kernel", str(image / "vmlinuz"),
        "-initrd", str(image / "initrd.img"),
        "-append", "console=ttyS0 root=/dev/vda rw panic=-1 quiet systemd.show_status=0 "
        f"mitigations=off modprobe.blacklist={','.join(UNWANTED_MODULES)}",
        "-drive", f"file={image / 'root.img'},format=raw,if=virtio,snapshot=on",
        "-virtfs", f"local,path={share},mount_tag=share,security_model=none",
        "-serial", f"file:{share / 'console.log'}",
        # the serial board: an FTDI port, plugged while the host is connected to its socket
        "-device", "qemu-xhci,id=xhci",
        "-chardev", f"socket,id=kmt,path={serial_sock},server=on,wait=off",
        "-device", f"usb-serial,bus=xhci.0,port=1,chardev=kmt,serial={SERIAL_NUMBER}",
        # a hub with per-port power switching at 1-2, a keyboard behind its port 1
        "-device", "usb-hub,bus=xhci.0,port=2,port-power=on",
        "-device", "usb-kbd,bus=xhci.0,port=2.1",
        # the control channel: QEMU connects to the host's socket at start
        "-device", "virtio-serial-pci,id=vser",
        "-chardev", f"socket,id=ctl,path={control_sock}",
        "-device", "virtserialport,bus=vser.0,chardev=ctl,name=labpower.ctl",
        "-netdev", "user,id=lab",
        "-device", "virtio-net-pci,netdev=lab,romfile=",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def guest_run(tmp_path_factory: pytest.TempPathFactory) -> GuestRun:
    """Build (or reuse) the image, boot it once with both boards, hand over what it saw."""
    share = tmp_path_factory.mktemp("share")
    # the wheels build while the image is checked (or built)
    wheels = subprocess.Popen(
        ["uv", "build", "--quiet", "--all-packages", "--wheel", "-o", str(share / "wheels")],
        cwd=ROOT,
    )
    try:
        image = build_image.build()
        modules = kernel_modules.build()
    finally:
        assert wheels.wait(timeout=300) == 0, "uv build failed"
    for d in ("packaging", "udev", "tests/vm/guest", "benchmarks"):
        shutil.copytree(ROOT / d, share / d, ignore=shutil.ignore_patterns("__pycache__"))
    # gpio-sim for the guest's kernel, and the gpiod wheel (installed with labpower's)
    (share / "modules").mkdir()
    shutil.copy(modules / "gpio-sim.ko", share / "modules")
    for wheel in (modules / "wheels").glob("*.whl"):
        shutil.copy(wheel, share / "wheels")
    copy_pytest(share / "pylib")
    (share / "out").mkdir()
    sockets = tmp_path_factory.mktemp("qemu")
    board = UsbSerialBoard(KmtronicSimulator(channels=2), sockets / "kmtronic.sock")
    gude = GudeSimulator(channels=2)
    with (
        gude,
        SnmpAgent(sockets / "eaton", "eaton", outlets=2, community="lab") as eaton,
        Control(sockets / "control.sock", board) as control,
    ):
        (share / "network.json").write_text(
            json.dumps({"http": f"10.0.2.2:{gude.port}", "snmp": f"10.0.2.2:{eaton.port}"})
        )
        qemu = subprocess.Popen(
            qemu_command(image, share, board.socket_path, control.path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            qemu_out, _ = qemu.communicate(timeout=BOOT_TIMEOUT)
        finally:
            qemu.kill()
            qemu.wait()
        assert qemu.returncode == 0, qemu_out
        # the board as the guest left it (closing it below cuts its power)
        switches, relays = board.switches, board.relays
        gude_relays, eaton_outlet1 = dict(gude.relays), snmp_get(eaton, EATON_STATE_1)
    status_file = share / "out" / "status"
    status = int(status_file.read_text()) if status_file.exists() else -1
    return GuestRun(
        out=share / "out",
        status=status,
        serial_switches=switches,
        serial_relays=relays,
        requests=control.requests,
        gude_relays=gude_relays,
        eaton_outlet1=eaton_outlet1,
    )


#: pytest and what it imports, all pure Python: the guest runs the backend contract suite
#: (tests/vm/guest/gpio_contract.py) with this machine's pytest, from the share
PYTEST_PACKAGES = ("pytest", "_pytest", "py.py", "pluggy", "iniconfig", "packaging", "pygments")


def copy_pytest(dest: Path) -> None:
    """This venv's pytest and its dependencies (with their .dist-info, where pytest finds
    plugins' entry points) into ``dest``, for the guest's PYTHONPATH."""
    site = Path(pytest.__file__).resolve().parents[1]
    dest.mkdir()
    for entry in sorted(site.iterdir()):
        name = entry.name.split("-", 1)[0] if entry.name.endswith(".dist-info") else entry.name
        if name not in PYTEST_PACKAGES or name.endswith(".pth"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, ignore=shutil.ignore_patterns("*.pyc"))
        else:
            shutil.copy(entry, dest / entry.name)


def snmp_get(agent: SnmpAgent, oid: str) -> int | None:
    """One SNMPv2c GET from the agent, as any manager sends it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.connect((agent.host, agent.port))
        sock.send(encode_request("2c", agent.community.encode(), 7, "get", [(oid, None)]))
        (value,) = decode_response(sock.recv(65536), "2c", agent.community.encode()).values
    return value if isinstance(value, int) else None


def result(out: Path) -> dict[str, Any]:
    path = out / "result.json"
    assert path.exists(), (out / "boot.log").read_text() if (out / "boot.log").exists() else ""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def targets(cli_json: str) -> dict[str, dict[str, Any]]:
    """``labpower --json`` output by target name."""
    return {t["name"]: t for t in json.loads(cli_json)}


def assert_node(node: dict[str, Any], prefix: str) -> None:
    assert node["path"].startswith(prefix), node
    assert (node["group"], node["mode"]) == ("labpower", "0o660"), node


@pytest.mark.timeout(900)  # a cold run builds the image first
def test_the_lab_host(guest_run: GuestRun) -> None:
    r = result(guest_run.out)
    boot_log = (guest_run.out / "boot.log").read_text()
    assert guest_run.status == 0, boot_log[-4000:]
    # nothing started labpowerd before a board was there
    assert r["before"]["daemon"] == "inactive"
    # udev: group labpower, 0660, the links under /dev/labpower
    plugged = r["plugged"]
    assert_node(plugged["hid"], "/dev/hidraw")
    assert_node(plugged["serial"], "/dev/ttyUSB")
    assert {"usbrelay-SIM01", "ft232r-KMT01"} <= set(plugged["links"])
    assert any(SERIAL_NUMBER in link for link in plugged["by_id"]), plugged["by_id"]
    # plugging a board started labpowerd through systemd; Type=notify: active = READY
    assert (r["daemon"]["active"], r["daemon"]["sub"]) == ("active", "running")
    assert r["daemon"]["user"] == "labpower"

    # alice (group labpower) switches both boards with the command, read back
    cli_on = r["cli_on"]
    assert cli_on["rc"] == 0, cli_on["out"]
    for name in ("switch", "lamp"):
        t = targets(cli_on["out"])[name]
        assert (t["state"], t["verified"], t["available"]) == ("on", True, True), t
    assert cli_on["hid"] == {"1": True, "2": False}
    assert cli_on["serial"] == {"1": True, "2": False}
    # ... and with the library
    lib_on = r["client_on"]
    assert lib_on["rc"] == 0, lib_on["out"]
    on = {"state": "on", "verified": True, "available": True}
    assert json.loads(lib_on["out"]) == {"fan": on, "pump": on}
    assert lib_on["hid"] == {"1": True, "2": True}
    assert lib_on["serial"] == {"1": True, "2": True}

    # unplugged: DeviceUnavailable for both boards, from the command and the library
    unplugged = r["unplugged"]
    assert unplugged["rc"] != 0
    lines = unplugged["out"].splitlines()
    for name in ("switch", "lamp"):
        assert any(f"off {name}:" in line and "unavailable" in line for line in lines), lines
    lib_off = json.loads(unplugged["client"]["out"])
    assert {name: e.get("error") for name, e in lib_off.items()} == {
        "fan": "DeviceUnavailable",
        "pump": "DeviceUnavailable",
    }, lib_off
    # plugged back (new nodes, set up by udev again): works, same daemon; power was lost
    replugged = r["replugged"]
    assert replugged["rc"] == 0, replugged["out"]
    assert replugged["same_pid"]
    assert_node(replugged["hid_node"], "/dev/hidraw")
    assert_node(replugged["serial_node"], "/dev/ttyUSB")
    for name in ("switch", "lamp"):
        assert targets(replugged["out"])[name]["verified"], replugged["out"]
    assert replugged["serial"] == {"1": True, "2": False}
    assert replugged["hid"] == {"1": True, "2": False}
    assert [op for op in guest_run.requests if op != "board"] == ["plug", "unplug", "plug"]

    # restart and SIGKILL switched nothing: each board saw only what a client sent
    restarts = r["restarts"]
    assert restarts["restarted"] == "active"
    assert restarts["rc"] == 0, restarts["out"]
    assert restarts["hid_switches"] == SENT
    assert restarts["serial_switches"] == SENT
    # ... and nothing else reached the serial board until the guest powered off
    assert [[s.channel, s.on] for s in guest_run.serial_switches] == SENT
    assert restarts["hid"] == restarts["serial"] == {"1": True, "2": False}
    assert guest_run.serial_relays == {1: True, 2: False}
    after = targets(restarts["out"])
    assert {n: (t["state"], t["verified"]) for n, t in after.items() if n != "dongle"} == {
        "switch": ("on", True),
        "fan": ("off", True),
        "lamp": ("on", True),
        "pump": ("off", True),
    }

    # the journal has labpowerd's entries with their fields, for both boards
    entries = r["journal"]["labpower_entries"]
    for target, device in (("switch", "rack"), ("lamp", "kmt")):
        assert any(
            e.get("LABPOWER_TARGET") == target
            and e.get("LABPOWER_DEVICE") == device
            and e.get("LABPOWER_OP") == "on"
            and e.get("LABPOWER_STATE") == "on"
            for e in entries
        ), r["journal"]["messages"]


def test_usb_hub_port_power(guest_run: GuestRun) -> None:
    """QEMU's usb-hub with port power switching, a keyboard behind port 1, switched by the
    usbhub backend (tests/vm/guest/usbhub.py): what the guest's kernel shows of it."""
    status = (guest_run.out / "usbhub-status").read_text().strip()
    assert status == "0", (guest_run.out / "boot.log").read_text()[-4000:]
    r = json.loads((guest_run.out / "usbhub.json").read_text())
    assert r["steps"] == ["start", "rules", "off", "held", "on", "raw"], r["steps"]
    start = r["start"]
    assert (start["hub_class"], start["device"], start["disable"]) == ("09", True, "0"), start
    # udev (after `udevadm trigger`) gave the port's power switch to group labpower
    rules = r["rules"]
    assert (rules["rc"], rules["group"], rules["mode"]) == (0, "labpower", "0o664"), rules
    # labpower-discover lists the hub on the real kernel, with its 8 ports
    assert rules["discover"]["rc"] == 0, rules["discover"]["out"]
    found = json.loads(rules["discover"]["out"])
    hubs = [(b["options"], b["channels"]) for b in found if b["backend"] == "usbhub"]
    assert hubs == [({"hub": "1-2"}, 8)], found

    # off: read back off, the keyboard left the bus, the hub reports the port unpowered
    off = r["off"]
    assert off["rc"] == 0, off["out"]
    dongle = targets(off["out"])["dongle"]
    assert (dongle["state"], dongle["verified"]) == ("off", True), dongle
    assert (off["device"], off["disable"], off["powered"]) == (False, "1", False), off
    assert not any("0627:0001" in line for line in off["lsusb"]), off["lsusb"]
    # ... and it stays off: the hub driver leaves the port alone (it suspends and resumes the
    # idle hub meanwhile, and finds nothing to do: tests/vm/guest/usbhub.py logs its debug)
    assert any("USB disconnect" in line for line in off["kernel"]), off["kernel"]
    assert not any("new full-speed" in line for line in off["kernel"]), off["kernel"]
    held = r["held"]
    assert held["bus"] == [[0.0, False]], held
    assert (held["device"], held["disable"], held["powered"]) == (False, "1", False), held
    dongle = targets(held["status"]["out"])["dongle"]
    assert (dongle["state"], dongle["verified"]) == ("off", True), dongle

    # on: the keyboard enumerates again, read back on
    on = r["on"]
    assert on["rc"] == 0, on["out"]
    dongle = targets(on["out"])["dongle"]
    assert (dongle["state"], dongle["verified"]) == ("on", True), dongle
    assert (on["device"], on["disable"], on["powered"]) == (True, "0", True), on
    assert any("0627:0001" in line for line in on["lsusb"]), on["lsusb"]

    # the status polls resumed the idle hub again and again: the driver left the port off
    assert all(not int(status, 16) & 0x100 for _, status, _ in off["trace"]), off["trace"]
    # a raw ClearPortFeature(PORT_POWER) behind the driver's back does not hold: the hub cuts
    # the power (status without bit 8); at its next resume of the hub the driver finds the
    # port unpowered, drops the keyboard, powers the port again and the keyboard enumerates
    # under a new number (why the backend uses `disable`)
    raw = r["raw"]
    statuses = [int(status, 16) for _, status, _ in raw["trace"]]
    assert any(not s & 0x100 for s in statuses), raw["trace"]
    assert statuses[-1] & 0x100, raw["trace"]
    assert raw["back"] is not None, raw
    assert raw["devnum_after"] != raw["devnum_before"], raw
    assert any("USB disconnect" in line for line in raw["kernel"]), raw["kernel"]
    assert (raw["device"], raw["disable"], raw["powered"]) == (True, "0", True), raw
    dongle = targets(raw["status"]["out"])["dongle"]
    assert (dongle["state"], dongle["verified"]) == ("on", True), dongle


@pytest.mark.timeout(900)
def test_network_pdus_on_the_host(guest_run: GuestRun) -> None:
    """labpowerd under systemd in the guest, with its real unit and the shipped network
    drop-in, switches and reads a Gude PDU (HTTP) and an Eaton PDU (SNMP) simulated on the
    host."""
    r = result(guest_run.out)
    assert guest_run.status == 0, (guest_run.out / "boot.log").read_text()[-4000:]
    network = r["network"]
    assert network["rc"] == 0, network["out"]
    assert set(network["families"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "10.0.2.2" in network["allowed"], network["allowed"]
    for name in ("outlet", "socket"):
        t = targets(network["out"])[name]
        assert (t["state"], t["verified"], t["available"]) == ("on", True, True), t
    read = network["read"]
    assert read["rc"] == 0, read["out"]
    (reading,) = [json.loads(line) for line in read["out"].splitlines() if line.startswith("{")]
    volts, amps = READINGS["eaton"]
    assert (reading["voltage"], reading["current"]) == (volts, amps)
    # the devices on the host say the same
    assert guest_run.gude_relays == {1: False, 2: True}
    assert guest_run.eaton_outlet1 == PROFILES["eaton"].state_on


# --- GPIO relays and an hwmon meter (tests/vm/guest/localbus.py) --------------------------
#: line levels from the chip's side (sim_gpioN/value), lines 0-7; the relays: a = line 0,
#: b = line 3 (by its name RELAY3), c = line 5 (active low)
PULLS_AT_START = [0, 0, 0, 1, 0, 0, 0, 0]


def localbus(run: GuestRun) -> dict[str, Any]:
    path = run.out / "localbus.json"
    boot_log = (run.out / "boot.log").read_text() if (run.out / "boot.log").exists() else ""
    assert path.exists(), boot_log[-4000:]
    data: dict[str, Any] = json.loads(path.read_text())
    status = (run.out / "localbus.status").read_text().strip()
    assert status == "0", (data.get("log"), boot_log[-4000:])
    return data


def states(reply: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {name: (t.get("state", t.get("error")), t.get("verified")) for name, t in reply.items()}


@pytest.mark.timeout(900)
def test_gpio_chip_is_group_labpower_and_check_config_warns(guest_run: GuestRun) -> None:
    r = localbus(guest_run)
    # 71-labpower-gpio.rules on a real gpiochip; the daemon (user labpower) opens it below
    assert r["setup"]["node"] == {"group": "labpower", "mode": "0o660"}
    check = r["setup"]["check_config"]
    assert check["rc"] == 0, check["out"]
    assert check["out"].count("note: chip") == 2, check["out"]


@pytest.mark.timeout(900)
def test_gpio_start_drives_nothing_and_switching_reads_the_chip(guest_run: GuestRun) -> None:
    r = localbus(guest_run)
    assert r["setup"]["levels"] == PULLS_AT_START
    # started as user labpower: lines requested, none driven, states are the lines' levels
    started = r["started"]
    assert started["levels"] == PULLS_AT_START
    for line in ("0", "3", "5"):
        assert started["info"][line] == {"direction": "INPUT", "consumer": "labpowerd"}
    assert states(started["state"]) == {
        "a": ("off", True),
        "b": ("on", True),  # line 3 pulled up
        "c": ("on", True),  # active low, pulled down
    }
    # On: outputs now, at the asked levels (c low: active low), read back
    on = r["on"]
    assert states(on["result"]) == {"a": ("on", True), "b": ("on", True), "c": ("on", True)}
    assert on["levels"] == [1, 0, 0, 1, 0, 0, 0, 0]
    assert {on["info"][n]["direction"] for n in ("0", "3", "5")} == {"OUTPUT"}
    assert states(r["off_b"]["result"]) == {"b": ("off", True)}
    assert r["off_b"]["levels"] == [1, 0, 0, 0, 0, 0, 0, 0]
    # a reload keeps the lines as they are
    assert r["reloaded"]["levels"] == [1, 0, 0, 0, 0, 0, 0, 0]
    assert states(r["reloaded"]["state"]) == {
        "a": ("on", True),
        "b": ("off", True),
        "c": ("on", True),
    }


@pytest.mark.timeout(900)
def test_gpio_daemon_death_releases_lines_to_their_pull_and_restart_changes_nothing(
    guest_run: GuestRun,
) -> None:
    """What the real kernel does (gpiolib + gpio-sim's free hook, as the manual says): a
    released line goes to its pull. Where the pull matches the driven level (a, c) the relay
    keeps its state through SIGKILL; b (driven low, pulled up) does not. The restarted daemon
    then drives nothing: the levels stay, and the states read back are theirs."""
    r = localbus(guest_run)
    killed = r["killed"]
    assert killed["rc"] == -9
    assert killed["before"] == [1, 0, 0, 0, 0, 0, 0, 0]
    assert killed["after"] == [1, 0, 0, 1, 0, 0, 0, 0]
    assert {killed["info"][n]["consumer"] for n in ("0", "3", "5")} == {None}
    restarted = r["restarted"]
    assert restarted["levels"] == killed["after"]
    assert states(restarted["state"]) == {
        "a": ("on", True),
        "b": ("on", True),
        "c": ("on", True),
    }
    stopped = r["stopped"]
    assert stopped["rc"] == 0
    assert stopped["after"] == stopped["before"] == [1, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.timeout(900)
def test_gpio_chip_removed_is_unavailable_and_found_again_when_back(
    guest_run: GuestRun,
) -> None:
    r = localbus(guest_run)
    replugged = r["replugged"]
    for target in ("a", "c"):  # by label, by path
        gone = replugged["gone"][target]
        assert gone["error"] == "DeviceUnavailable", gone
        assert "No such device" in gone["message"], gone
    # a new chip (its lines at their default pull-down): requested as they are, nothing
    # driven, each state read from it
    assert replugged["levels"] == [0] * 8
    assert {replugged["info"][n]["direction"] for n in ("0", "3", "5")} == {"INPUT"}
    got = states(replugged["state"])
    # by label: found again, whatever number the new chip got
    assert (got["a"], got["b"]) == (("off", True), ("off", True))
    if replugged["chip"] == r["setup"]["chip"]:
        assert got["c"] == ("on", True)  # active low
    else:
        # by path, and the chip came back under another number (the kernel frees a chip's
        # number only once nothing holds the old one): unavailable, saying why
        c = replugged["state"]["c"]
        assert (c["available"], c["state"]) == (False, "unknown"), c
        assert c["problem"] == f"/dev/{r['setup']['chip']}: no such GPIO chip", c


#: the systemd phase's wiring: each line pulled to its relay's off level (a: line 0, b: line 3
#: pulled down; c: line 5, active low, pulled up)
SAFE = [0, 0, 0, 0, 0, 1, 0, 0]
#: a and c on, b off, all driven by the daemon
DRIVEN = [1, 0, 0, 0, 0, 0, 0, 0]
#: the daemon's log line when it takes over a line kept in systemd's store
RELEASED_FOR = re.compile(r"kept across the restart, driven \w+ \(released for ([0-9.]+) us\)")


@pytest.mark.timeout(900)
def test_gpio_lines_across_systemd_reload_restart_crash_and_stop(guest_run: GuestRun) -> None:
    """labpowerd as a service of the shipped unit, watched from the chip's side (gpio-sim's
    sim_gpioN/value, where a released line falls to its pull). A reload keeps every line as
    it is, still driven. A SIGKILL keeps them too: the unit's file descriptor store holds each
    output line's request while no daemon runs (the relays stay as switched for the whole
    RestartSec= after the kill), and the daemon Restart= starts requests the lines again at
    the stored levels and reads them back as they were; `systemctl restart` the same (the
    daemon leaves its stored requests to systemd when it stops). `systemctl stop` flushes the
    store: the lines fall to their pulls, the relays to off with the manual's wiring."""
    u = localbus(guest_run)["systemd"]
    assert u["pulls"] == SAFE
    started = u["started"]
    assert started["rc"] == 0, started["err"]
    assert started["levels"] == SAFE
    assert states(started["state"]) == {n: ("off", True) for n in "abc"}
    assert u["switched"] == DRIVEN
    as_switched = {"a": ("on", True), "b": ("off", True), "c": ("on", True)}
    # reload: nothing released, nothing changed, the same process
    assert u["reload_rc"] == 0
    reloaded = u["reloaded"]
    assert reloaded["levels"] == DRIVEN
    assert reloaded["pid"] == started["pid"]
    for line in ("0", "3", "5"):
        assert reloaded["info"][line] == {"direction": "OUTPUT", "consumer": "labpowerd"}
    assert states(reloaded["state"]) == as_switched
    # systemctl restart: a new process, every line still at its level, driven by it
    assert u["restart_rc"] == 0, u["journal"]
    restarted = u["restarted"]
    assert restarted["pid"] != started["pid"]
    assert restarted["levels"] == DRIVEN, u["journal"]
    for line in ("0", "3", "5"):
        assert restarted["info"][line] == {"direction": "OUTPUT", "consumer": "labpowerd"}
    assert states(restarted["state"]) == as_switched
    # SIGKILL: systemd holds the requests while the daemon is dead, Restart= brings it back
    # and the new daemon takes the lines over at their levels
    assert u["before_kill"] == DRIVEN
    assert u["after_kill"] == DRIVEN
    killed = u["killed"]
    assert killed["pid"] not in (0, killed["old_pid"])
    assert int(killed["restarts"]) >= 1
    assert killed["levels"] == DRIVEN
    assert states(killed["state"]) == as_switched
    for line in ("0", "3", "5"):
        assert killed["info"][line] == {"direction": "OUTPUT", "consumer": "labpowerd"}
    # each of the 3 lines taken over twice (restart, SIGKILL), each released only between
    # the old descriptor's close and the new request, as the daemon timed it (TCG: slow)
    gaps = [float(m[1]) for m in map(RELEASED_FOR.search, u["kept"]) if m]
    assert len(gaps) == 6, u["kept"]
    assert max(gaps) < 100_000, u["kept"]
    print(f"gpio line released at take-over, us: {sorted(gaps)}")
    # stop: the store is flushed, the lines fall to their pulls
    assert u["before_stop"] == DRIVEN
    assert u["stop_rc"] == 0
    assert u["stopped"] == SAFE


@pytest.mark.timeout(900)
def test_gpio_keeps_the_backend_contract_on_a_real_chip(guest_run: GuestRun) -> None:
    """The backend contract suite (labpower.backends.contract, as every backend runs it:
    tests/contract) for gpio, run in the guest under pytest on gpio-sim chips watched from the
    kernel's side (tests/vm/guest/gpio_rig.py). Any failure there fails here."""
    run = localbus(guest_run)["contract"]
    report = guest_run.out / "gpio-contract.xml"
    assert report.exists(), run["out"]
    cases = ET.parse(report).getroot().iter("testcase")
    outcome = {
        case.get("name", "?"): [child.tag for child in case if child.tag != "system-out"]
        for case in cases
    }
    from labpower.backends.contract import BackendContract

    suite = {name for name in dir(BackendContract) if name.startswith("test_")}
    ran = {name.split("[", 1)[0] for name in outcome}
    assert ran == suite, run["out"]
    assert {name: tags for name, tags in outcome.items() if tags} == {}, run["out"]
    assert run["rc"] == 0, run["out"]


@pytest.mark.timeout(900)
def test_hwmon_meter_on_a_real_ltc4151_through_the_daemon(guest_run: GuestRun) -> None:
    """ltc4151 (the kernel's driver) on i2c-stub: registers in, volts and amps out of Read."""
    r = localbus(guest_run)
    assert r["meter"]["first"] == {"voltage": 12.0, "current": 1.5}
    assert r["meter"]["second"] == {"voltage": 5.0, "current": 0.5}
    unbound = r["meter_unbound"]
    # the stream ran, then the driver was unbound under it: it ends with DeviceUnavailable
    assert unbound["readings_before_unbind"] >= 1
    assert unbound["ended"]
    assert unbound["got"][-1]["error"] == "DeviceUnavailable", unbound["got"]
    assert unbound["after"]["error"] == "DeviceUnavailable"
    # bound again (a new hwmonN): found again
    assert r["meter_rebound"]["reading"] == {"voltage": 5.0, "current": 0.5}


@pytest.mark.timeout(900)
def test_gpio_switch_round_trip_is_measured_in_the_guest(guest_run: GuestRun) -> None:
    """benchmarks/gpio_bench.py in the guest, with a daemon of its own, on a line of the real
    gpiochip, and its calibration row: a mock target's On/Off through the same daemon, in
    turns with the GPIO calls. The guest runs under software emulation, so the figures are
    only reported, not held to the target (benchmarks/README.md turns them into an
    estimate for a real host)."""
    r = localbus(guest_run)
    bench = r["bench"]
    assert bench["rc"] == 0, bench["err"]
    figures = json.loads(bench["out"])
    assert figures["switch_readback_median_us"] > 0
    # the calibration row of the same run: a mock target through the same daemon
    assert figures["mock_switch_readback_median_us"] > 0
    assert figures["gpio_to_mock_ratio"] == pytest.approx(
        figures["switch_readback_median_us"] / figures["mock_switch_readback_median_us"]
    )
    print(f"GPIO switch + read-back in the emulated guest: {figures}")

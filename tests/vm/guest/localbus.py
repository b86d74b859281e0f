"""GPIO relays and an hwmon meter on the guest's real kernel, run by boot.sh as root after
the lab host scenario: ``localbus.py SHARE OUTDIR``; it writes OUTDIR/localbus.json and
tests/vm/test_labhost.py makes the assertions on the host.

Why these parts: Debian's kernel builds no GPIO simulator and no INA hwmon driver.

- GPIO: ``gpio-sim`` (built for this kernel from Debian's linux-source by
  tests/vm/kernel_modules.py) makes a real gpiochip through configfs, and shows each line's
  level from the chip's side (``sim_gpioN/value``) and lets a test set its pull (the wiring).
- hwmon: the kernel's own ``ltc4151`` driver bound on ``i2c-stub``, whose registers this
  script writes through /dev/i2c-N; the driver turns them into in1_input and curr1_input.

A labpowerd of its own (its own config and socket) runs as user labpower, so the udev rule
for gpiochips is what lets it open the chip.
"""

from __future__ import annotations

import ctypes
import fcntl
import glob
import grp
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.vm.guest.scenario import wait_for
else:  # run as a script in the guest: scenario.py is next to it, on sys.path
    from scenario import wait_for

CONFIGFS = Path("/sys/kernel/config")
SIM = CONFIGFS / "gpio-sim" / "lab"
LABEL = "lab-relays"
LINES = 8
WORK = Path("/run/labpower-localbus")
STUB_ADDR = 0x6F
I2C_SLAVE_FORCE, I2C_SMBUS, I2C_SMBUS_WRITE, I2C_SMBUS_BYTE_DATA = 0x0706, 0x0720, 0, 2
CONFIG = """
[daemon]
log_level = "debug"
state_directory = "{work}/state"

[devices.pins]
backend = "gpio"
chip = "{label}"
lines = [0, "RELAY3"]
channels = 2

[devices.inverted]
backend = "gpio"
chip = "{path}"
lines = [5]
active_low = true

[targets.a]
device = "pins"
channel = 1
meter = "hwmon:ltc4151"

[targets.b]
device = "pins"
channel = 2

[targets.c]
device = "inverted"
channel = 1
"""
UNIT = "labpowerd-gpio.service"
UNIT_SOCKET = "/run/labpower-gpio/labpower.sock"
#: ``python -c CLIENT SOCKET OP TARGET...``: switch or read state, one JSON line
CLIENT = """
import json, sys
from labpower.client import Client, LabpowerError
out = {}
with Client(sys.argv[1]) as lab:
    for name in sys.argv[3:]:
        t = lab.target(name)
        try:
            # state: read from the chip now (refresh), not what the daemon last knew
            s = getattr(t, sys.argv[2])() if sys.argv[2] != "state" else t.state(refresh=True)
        except LabpowerError as exc:
            out[name] = {"error": type(exc).__name__, "message": str(exc)}
            continue
        out[name] = {"state": s.state, "verified": s.verified, "available": s.available}
        if s.problem:
            out[name]["problem"] = s.problem
print(json.dumps(out))
"""
READ = """
import json, sys
from labpower.client import Client, LabpowerError
with Client(sys.argv[1]) as lab:
    try:
        r = next(iter(lab.target(sys.argv[2]).read(count=1)))
        print(json.dumps({"voltage": r.voltage, "current": r.current}))
    except LabpowerError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""
PYTHON = "/opt/labpower/bin/python"


def sh(*cmd: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)


class SimChip:
    """A gpio-sim chip made through configfs: eight lines, line 3 named RELAY3."""

    def __init__(self, share: Path) -> None:
        sh("modprobe", "configfs", check=True)
        if not os.path.ismount(CONFIGFS):
            sh("mount", "-t", "configfs", "none", str(CONFIGFS), check=True)
        sh("insmod", str(share / "modules" / "gpio-sim.ko"), check=True)
        bank = SIM / "bank0"
        bank.mkdir(parents=True)
        (bank / "num_lines").write_text(f"{LINES}\n")
        (bank / "label").write_text(LABEL + "\n")
        (bank / "line3").mkdir()
        (bank / "line3" / "name").write_text("RELAY3\n")
        (SIM / "live").write_text("1\n")
        self.name = (bank / "chip_name").read_text().strip()
        self.path = f"/dev/{self.name}"
        self.sysfs = Path("/sys/devices/platform") / (SIM / "dev_name").read_text().strip()

    def unplug(self) -> None:
        (SIM / "live").write_text("0\n")

    def replug(self) -> None:
        (SIM / "live").write_text("1\n")
        self.name = (SIM / "bank0" / "chip_name").read_text().strip()
        self.path = f"/dev/{self.name}"
        sh("udevadm", "settle")

    def level(self, line: int) -> int:
        """The line's level as the chip sees it (what a relay's input would get)."""
        return int((self.sysfs / self.name / f"sim_gpio{line}" / "value").read_text())

    def levels(self) -> list[int]:
        return [self.level(n) for n in range(LINES)]

    def pull(self, line: int, up: bool) -> None:
        """The wiring's pull resistor on the line: the level it has while nobody drives it."""
        (self.sysfs / self.name / f"sim_gpio{line}" / "pull").write_text(
            "pull-up\n" if up else "pull-down\n"
        )

    def info(self) -> dict[str, Any]:
        """Each line's direction and consumer, from the kernel's side (gpiod as root)."""
        import gpiod

        with gpiod.Chip(self.path) as chip:
            lines = [chip.get_line_info(n) for n in range(LINES)]
        return {
            str(i.offset): {"direction": i.direction.name, "consumer": i.consumer} for i in lines
        }


class I2cData(ctypes.Union):
    _fields_ = (("byte", ctypes.c_uint8), ("block", ctypes.c_uint8 * 34))


class I2cIoctl(ctypes.Structure):
    _fields_ = (
        ("read_write", ctypes.c_uint8),
        ("command", ctypes.c_uint8),
        ("size", ctypes.c_uint32),
        ("data", ctypes.POINTER(I2cData)),
    )


class Ltc4151:
    """An LTC4151 on i2c-stub: its registers, written over SMBus as a real chip's ADC would
    update them, and the kernel's ltc4151 driver bound to it."""

    def __init__(self) -> None:
        sh("modprobe", "i2c-dev", check=True)
        sh("modprobe", "i2c-stub", f"chip_addr={STUB_ADDR:#x}", check=True)
        adapters = glob.glob("/sys/bus/i2c/devices/i2c-*")
        self.bus = next(
            int(a.rsplit("-", 1)[1])
            for a in adapters
            if Path(a, "name").read_text().startswith("SMBus stub")
        )
        self.client = f"{self.bus}-{STUB_ADDR:04x}"
        wait_for("/dev/i2c node", lambda: os.path.exists(f"/dev/i2c-{self.bus}"))
        self.fd = os.open(f"/dev/i2c-{self.bus}", os.O_RDWR)
        fcntl.ioctl(self.fd, I2C_SLAVE_FORCE, STUB_ADDR)

    def write(self, register: int, value: int) -> None:
        data = I2cData()
        data.byte = value
        args = I2cIoctl(I2C_SMBUS_WRITE, register, I2C_SMBUS_BYTE_DATA, ctypes.pointer(data))
        fcntl.ioctl(self.fd, I2C_SMBUS, args)

    def measure(self, volts: float, amps: float) -> None:
        """VIN at 25 mV a step, SENSE at 20 uV a step (20 mA across the default 1 mOhm
        shunt), 12 bits each, left-aligned in two registers."""
        for register, value in ((0, round(amps / 0.020)), (2, round(volts / 0.025))):
            self.write(register, value >> 4)
            self.write(register + 1, (value & 0xF) << 4)

    def bind(self) -> None:
        Path(f"/sys/bus/i2c/devices/i2c-{self.bus}/new_device").write_text(
            f"ltc4151 {STUB_ADDR:#x}\n"
        )

    def unbind(self) -> None:
        Path("/sys/bus/i2c/drivers/ltc4151/unbind").write_text(self.client + "\n")

    def rebind(self) -> None:
        Path("/sys/bus/i2c/drivers/ltc4151/bind").write_text(self.client + "\n")

    def hwmon(self) -> list[str]:
        return glob.glob(f"/sys/bus/i2c/devices/{self.client}/hwmon/hwmon*")


class Daemon:
    """labpowerd as user labpower, with this scenario's config and socket."""

    def __init__(self) -> None:
        self.socket = str(WORK / "labpower.sock")
        self.log = open(WORK / "labpowerd.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.proc = subprocess.Popen(
            [
                "setpriv", "--reuid=labpower", "--regid=labpower", "--init-groups",
                "labpowerd", "--config", str(WORK / "labpowerd.toml"), "--socket", self.socket,
                "--log-target", "stderr",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        proc = self.proc
        wait_for(
            "labpowerd's socket",
            lambda: os.path.exists(self.socket) or proc.poll() is not None,
            timeout=120,
        )
        if proc.poll() is not None:
            raise RuntimeError(f"labpowerd exited with {proc.returncode}")

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def client(self, op: str, *targets: str) -> dict[str, Any]:
        out = sh(PYTHON, "-c", CLIENT, self.socket, op, *targets)
        if out.returncode != 0:
            return {"rc": out.returncode, "out": out.stdout + out.stderr}
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def read(self, target: str) -> dict[str, Any]:
        out = sh(PYTHON, "-c", READ, self.socket, target)
        if out.returncode != 0:
            return {"rc": out.returncode, "out": out.stdout + out.stderr}
        result: dict[str, Any] = json.loads(out.stdout)
        return result


def node_info(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"group": grp.getgrgid(st.st_gid).gr_name, "mode": oct(stat.S_IMODE(st.st_mode))}


def stream_through_unbind(daemon: Daemon, meter: Ltc4151) -> dict[str, Any]:
    """A Read stream at 20 Hz while the driver is unbound: what the client gets."""
    from labpower.client import Client, LabpowerError

    got: list[Any] = []
    started = threading.Event()

    def stream() -> None:
        with Client(daemon.socket) as lab:
            try:
                for r in lab.target("a").read(count=None, interval=0.05):
                    got.append([r.voltage, r.current])
                    started.set()
            except LabpowerError as exc:
                got.append({"error": type(exc).__name__, "message": str(exc)})
            finally:
                started.set()

    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    started.wait(timeout=60)
    before = len(got)
    meter.unbind()
    reader.join(timeout=60)
    return {"readings_before_unbind": before, "got": got[-3:], "ended": not reader.is_alive()}


def unit_file(share: Path) -> str:
    """The shipped labpowerd.service, as a second service on this host: its own runtime and
    state directories and config, started directly rather than by the socket; everything
    else (Type=notify, Restart=, ExecReload=, the user, the device policy and hardening) as
    shipped."""
    text = (share / "packaging" / "systemd" / "labpowerd.service").read_text()
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0]
        if key in ("Requires", "After", "Also", "WantedBy"):
            continue  # the socket unit is the main scenario's
        if key == "ExecStart":
            line = f"ExecStart=/usr/bin/labpowerd --config {WORK}/unit.toml --socket {UNIT_SOCKET}"
        elif key in ("RuntimeDirectory", "StateDirectory"):
            line = f"{key}=labpower-gpio"
        lines.append(line)
    return "\n".join(lines) + "\n"


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    return sh("systemctl", *args, UNIT)


def main_pid() -> int:
    return int(sh("systemctl", "show", "-P", "MainPID", UNIT).stdout.strip() or 0)


def under_systemd(share: Path, chip: SimChip) -> dict[str, Any]:
    """labpowerd as a service of the shipped unit, through systemctl restart, a SIGKILL and
    Restart=, systemctl reload and stop, each watched from the chip's side. The wiring is
    the manual's: each line pulled to its relay's off level (a, b: pull-down; c, active low:
    pull-up)."""
    # the scenario's GPIO devices and targets, without its [daemon] table (the unit's
    # StateDirectory instead) and the meter
    config = CONFIG.format(work=WORK, label=LABEL, path=chip.path)
    _, _, rest = config.partition("[devices.pins]")
    kept = [line for line in rest.splitlines() if not line.startswith("meter = ")]
    (WORK / "unit.toml").write_text("\n".join(["[devices.pins]", *kept]) + "\n")
    Path("/run/systemd/system").mkdir(parents=True, exist_ok=True)
    Path("/run/systemd/system", UNIT).write_text(unit_file(share))
    sh("systemctl", "daemon-reload", check=True)
    for line, up in ((0, False), (3, False), (5, True)):
        chip.pull(line, up)
    daemon = Daemon()
    daemon.socket = UNIT_SOCKET
    seen: dict[str, Any] = {"pulls": chip.levels()}

    def look() -> dict[str, Any]:
        return {
            "levels": chip.levels(),
            "info": chip.info(),
            "state": daemon.client("state", "a", "b", "c"),
            "pid": main_pid(),
        }

    def switch_on() -> list[int]:
        daemon.client("on", "a", "c")
        daemon.client("off", "b")
        return chip.levels()

    started = systemctl("start")  # Type=notify: returns once READY=1
    seen["started"] = {"rc": started.returncode, "err": started.stderr, **look()}
    seen["switched"] = switch_on()

    # reload: SIGHUP through ExecReload; the daemon logs when it is done
    def reloads() -> int:
        return sh("journalctl", "-u", UNIT, "-o", "cat").stdout.count("reloaded ")

    before = reloads()
    seen["reload_rc"] = systemctl("reload").returncode
    wait_for("reload done", lambda: reloads() > before, timeout=120)
    seen["reloaded"] = look()
    seen["restart_rc"] = systemctl("restart").returncode
    seen["restarted"] = look()
    seen["before_kill"] = switch_on()
    killed = main_pid()
    sh("kill", "-KILL", str(killed))
    wait_for("the daemon dead", lambda: main_pid() != killed, timeout=60)
    seen["after_kill"] = chip.levels()
    # Restart=on-failure brings it back after RestartSec
    wait_for(
        "restarted by systemd",
        lambda: sh("systemctl", "is-active", UNIT).stdout.strip() == "active" and main_pid() > 0,
        timeout=120,
    )
    seen["killed"] = {
        "old_pid": killed,
        "restarts": sh("systemctl", "show", "-P", "NRestarts", UNIT).stdout.strip(),
        **look(),
    }
    seen["before_stop"] = switch_on()
    seen["stop_rc"] = systemctl("stop").returncode
    seen["stopped"] = chip.levels()
    journal = sh("journalctl", "-u", UNIT, "-o", "cat").stdout
    seen["kept"] = [line for line in journal.splitlines() if "kept across the restart" in line]
    seen["journal"] = journal[-3000:]
    return seen


def contract_suite(share: Path, out: Path) -> dict[str, Any]:
    """The backend contract suite on gpio-sim chips of its own (gpio_contract.py), under
    the host's pytest (its pure-Python packages are in the share's pylib)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(share / "pylib"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LABPOWER_VM_SHARE": str(share),
    }
    done = subprocess.run(
        [
            PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "error",
            str(share / "tests" / "vm" / "guest" / "gpio_contract.py"),
            f"--junitxml={out / 'gpio-contract.xml'}",
        ],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    return {"rc": done.returncode, "out": (done.stdout + done.stderr)[-6000:]}


def main(share: Path, out: Path) -> int:
    result: dict[str, Any] = {"steps": []}

    def step(name: str, **data: Any) -> None:
        result["steps"].append(name)
        result[name] = data
        (out / "localbus.json").write_text(json.dumps(result, indent=1))

    WORK.mkdir(parents=True, exist_ok=True)
    shutil.chown(WORK, "labpower", "labpower")  # the daemon's socket and state go here
    chip = SimChip(share)
    sh("udevadm", "settle")
    # before labpowerd runs: line 3 (RELAY3) is pulled up, so its relay input is high
    chip.pull(3, True)
    (WORK / "labpowerd.toml").write_text(CONFIG.format(work=WORK, label=LABEL, path=chip.path))
    check = sh("labpowerd", "--check-config", str(WORK / "labpowerd.toml"))
    step(
        "setup",
        node=node_info(chip.path),
        chip=chip.name,
        check_config={"rc": check.returncode, "out": check.stdout + check.stderr},
        levels=chip.levels(),
        info=chip.info(),
    )

    meter = Ltc4151()
    meter.measure(12.0, 1.5)
    meter.bind()
    wait_for("ltc4151's hwmon device", lambda: bool(meter.hwmon()))

    daemon = Daemon()

    def lines_and_states() -> dict[str, Any]:
        """The lines from the chip's side, and the targets' states from the daemon."""
        return {
            "levels": chip.levels(),
            "info": chip.info(),
            "state": daemon.client("state", "a", "b", "c"),
        }

    try:
        daemon.start()
        step("started", **lines_and_states())
        on = daemon.client("on", "a", "b", "c")
        step("on", result=on, levels=chip.levels(), info=chip.info())
        off = daemon.client("off", "b")
        step("off_b", result=off, levels=chip.levels())

        daemon.send(signal.SIGHUP)
        wait_for("reload logged", lambda: b"reloaded" in (WORK / "labpowerd.log").read_bytes())
        step("reloaded", levels=chip.levels(), state=daemon.client("state", "a", "b", "c"))

        # the switch round trip through a daemon of the benchmark's own (as on a real host:
        # log level warning), on line 6, which nothing else uses; with its calibration row
        bench = sh(
            PYTHON, str(share / "benchmarks" / "gpio_bench.py"), "--chip", LABEL,
            "--line", "6", "--quick", "--json",
        )  # fmt: skip
        step("bench", rc=bench.returncode, out=bench.stdout, err=bench.stderr[-2000:])

        # the meter: readings through the daemon, then new register values
        first = daemon.read("a")
        meter.measure(5.0, 0.5)
        # the driver keeps a reading for 1/6 s (the real chip's conversion rate)
        wait_for("new reading", lambda: daemon.read("a").get("voltage") == 5.0, timeout=30)
        step("meter", first=first, second=daemon.read("a"))
        unbound = stream_through_unbind(daemon, meter)
        step("meter_unbound", **unbound, after=daemon.read("a"))
        meter.rebind()
        wait_for("hwmon back", lambda: bool(meter.hwmon()))
        step("meter_rebound", reading=daemon.read("a"))

        # then SIGKILL: what the kernel (gpio-sim's free hook) does to the lines. Line 0 (a,
        # on) gets a pull-up and line 5 (c, active low, on) keeps its pull-down: the wiring the
        # manual recommends for those levels; line 3 (b, off) keeps its pull-up, the other way
        daemon.client("on", "a", "c")
        daemon.client("off", "b")
        chip.pull(0, True)
        before_kill = chip.levels()
        killed = daemon.stop(signal.SIGKILL)
        step("killed", rc=killed, before=before_kill, after=chip.levels(), info=chip.info())
        # restart: nothing driven, the states read back are the lines' levels
        daemon.start()
        step("restarted", **lines_and_states())
        # the chip goes away under the daemon (gpio-sim's "live" off: the gpiochip is
        # removed, as a USB GPIO adapter unplugged) and comes back as a new chip: found again
        # by its label, its lines requested as they are
        chip.unplug()
        gone = daemon.client("on", "a", "c")  # each device meets the chip's absence
        chip.replug()
        step("replugged", gone=gone, chip=chip.name, **lines_and_states())
        chip.pull(0, True)  # line 0's pull-up again: the new chip has default pulls
        daemon.client("on", "a")
        stopped_levels = chip.levels()
        stopped = daemon.stop(signal.SIGTERM)
        step("stopped", rc=stopped, before=stopped_levels, after=chip.levels())
        step("systemd", **under_systemd(share, chip))
        step("contract", **contract_suite(share, out))
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop(signal.SIGKILL)
        step("log", daemon=(WORK / "labpowerd.log").read_text(errors="replace")[-6000:])
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))

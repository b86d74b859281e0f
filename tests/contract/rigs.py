"""A rig for every backend labpower ships: the simulators on ptys for the serial boards (and
Modbus RTU), the fakes at the hidapi/pyusb boundary for the HID and USB boards, the HTTP
simulators, snmpsim and pymodbus's own server for the network devices, and the mock's own
relays. :data:`RIGS` names them; each test makes a fresh one. The SNMP agent is slow to start
and is shared (:class:`SnmpRig`, :func:`shared_agent`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from labpower.backends import fakes
from labpower.backends.base import Backend
from labpower.backends.contract import Rig, Switch
from labpower.backends.fakes import MemoryBus, boards
from labpower.backends.mock import MockBackend
from labpower.backends.sim import SIMULATORS, PtySimulator
from labpower.backends.sim.http import HttpSimulator
from labpower.backends.sim.http_cli import HTTP_SIMULATORS
from labpower.backends.sim.modbus import ModbusRtuSimulator
from labpower.backends.sim.snmp import SnmpAgent

from ..modbus.modbus_server import ModbusServer, running


class SimulatorRig(Rig):
    """What every rig around one of the project's simulators does the same way: the
    simulator keeps the board's model (its relays and every switch it received), hangs,
    heals and comes back."""

    sim: PtySimulator | HttpSimulator

    def start(self) -> None:
        self.sim.start()

    def stop(self) -> None:
        self.sim.stop()

    def switches(self) -> list[Switch]:
        return list(self.sim.switches)

    def relays(self) -> dict[int, bool]:
        return dict(self.sim.relays)

    def preset(self, channel: int, on: bool) -> None:
        self.sim.relays[channel] = on

    def hang(self) -> None:
        self.sim.hang()

    def heal(self) -> None:
        self.sim.heal()

    def replug(self) -> None:
        self.sim.come_back()


class PtyRig(SimulatorRig):
    """A serial board: one of the byte-accurate simulators on a pty."""

    def __init__(self, tmp: Path, kind: str, **sim_options: Any) -> None:
        self.kind = kind
        make = ModbusRtuSimulator if kind == "modbus" else SIMULATORS[kind]
        self.sim: PtySimulator = make(tmp / "board", channels=self.channels, **sim_options)
        self.silent = sim_options.get("dialect") == "silent"
        if self.silent:
            self.timeout = 1.0  # opening waits out the status probe that gets no answer

    def options(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"gap": 0.0, "probe_timeout": 0.2} if self.kind == "lcus" else {}
        return {"port": str(self.sim.link), **extra}

    def garble(self) -> bool:
        self.sim.garble()
        return not self.silent

    def unplug(self) -> None:
        self.sim.drop()


class MockRig(Rig):
    """The mock backend's relays live in the backend: the rig shares one set of relays and
    one call record among every instance made, and sets the options that upset it."""

    kind = "mock"

    def __init__(self) -> None:
        self.board = dict.fromkeys(range(1, self.channels + 1), False)
        self.calls: list[tuple[str, int, bool | None]] = []
        self.made: list[MockBackend] = []
        self.trouble: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        return {}

    def attach(self, backend: Backend) -> None:
        assert isinstance(backend, MockBackend)
        backend.relays = self.board
        backend.calls = self.calls
        self.made.append(backend)
        self._apply()

    def _apply(self) -> None:
        for backend in self.made:
            backend.delay = self.trouble.get("delay", 0.0)
            backend.fail = set(self.trouble.get("fail", ()))
            backend.unavailable = self.trouble.get("unavailable", False)

    def _upset(self, **trouble: Any) -> None:
        self.trouble.update(trouble)
        self._apply()

    def switches(self) -> list[Switch]:
        return [Switch(ch, bool(on)) for op, ch, on in self.calls if op == "set"]

    def relays(self) -> dict[int, bool]:
        return dict(self.board)

    def preset(self, channel: int, on: bool) -> None:
        self.board[channel] = on

    def hang(self) -> None:
        self._upset(delay=3600.0)

    def garble(self) -> bool:
        self._upset(fail=["get", "set"])
        return True

    def heal(self) -> None:
        self._upset(delay=0.0, fail=[])

    def unplug(self) -> None:
        self._upset(unavailable=True)

    def replug(self) -> None:
        self._upset(unavailable=False)


class FakeUsbRig(Rig):
    """A HID or USB board in a fake USB world installed in this process."""

    #: (backend kind) -> (kind of board on the bus, its fake, the device's options)
    BOARDS: ClassVar[dict[str, tuple[str, Callable[[], boards.Board], dict[str, Any]]]] = {
        "usbrelay": ("hid", lambda: boards.usbrelay("b", id="CTR01"), {"id": "CTR01"}),
        "lcus-hid": (
            "hid",
            lambda: boards.lcus_hid("b", relays=2, path="/dev/hidraw1"),
            {"path": "/dev/hidraw1"},
        ),
        "ykush": ("hid", lambda: boards.ykush("b", serial="YK20001"), {"serial": "YK20001"}),
        "usbhub": ("hubs", lambda: boards.hub("b", location="1-5"), {"hub": "1-5"}),
    }

    def __init__(self, tmp: Path, kind: str) -> None:
        self.kind = kind
        self.bus = MemoryBus(tmp / "usb")
        self._where, make, self._options = self.BOARDS[kind]
        self._stack = contextlib.ExitStack()
        board = make()
        for field in ("ports", "power"):  # hubs start powered; every rig starts all off
            if field in board:
                board[field] = [False] * len(board[field])
        self.bus.add(self._where, board)

    def start(self) -> None:
        self._stack.enter_context(fakes.install(self.bus))

    def stop(self) -> None:
        self._stack.close()

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    def switches(self) -> list[Switch]:
        return [Switch(ch, on) for ch, on in self.bus.board("b").get("switches", [])]

    def relays(self) -> dict[int, bool]:
        board = self.bus.board("b")
        if self.kind == "usbrelay":
            states = [bool(board["mask"] >> i & 1) for i in range(board["relays"])]
        else:
            states = board[{"lcus-hid": "state", "ykush": "ports", "usbhub": "power"}[self.kind]]
        return {ch: bool(on) for ch, on in enumerate(states[: self.channels], 1)}

    def preset(self, channel: int, on: bool) -> None:
        board = self.bus.board("b")
        if self.kind == "usbrelay":
            bit = 1 << (channel - 1)
            self.bus.update("b", mask=board["mask"] | bit if on else board["mask"] & ~bit)
            return
        field = {"lcus-hid": "state", "ykush": "ports", "usbhub": "power"}[self.kind]
        states = list(board[field])
        states[channel - 1] = on
        self.bus.update("b", **{field: states})

    def hang(self) -> None:
        self.bus.hang("b")

    def garble(self) -> bool:
        self.bus.update("b", garble=True)
        return self.kind != "lcus-hid"  # interrupt OUT only: it sends the host nothing

    def heal(self) -> None:
        self.bus.update("b", hang=False, garble=False)

    def unplug(self) -> None:
        self.bus.unplug("b")

    def replug(self) -> None:
        self.bus.replug("b")


class HttpRig(SimulatorRig):
    """A network device: one of the HTTP simulators on loopback."""

    timeout = 0.75

    def __init__(self, kind: str, **sim_options: Any) -> None:
        self.kind = kind
        self.sim: HttpSimulator = HTTP_SIMULATORS[kind](channels=self.channels, **sim_options)

    def options(self) -> dict[str, Any]:
        return {"host": self.sim.address}

    def garble(self) -> bool:
        self.sim.truncate()
        return True

    def unplug(self) -> None:
        self.sim.refuse()


class SnmpRig(Rig):
    """A Raritan PDU simulated by snmpsim. The agent takes seconds to start, so one agent
    serves every test (:func:`snmp_agent`); each rig begins with its outlets off and counts
    only the switches of its own test. The labpower_outlet variation module records every
    SET and takes presets and faults through its control directory."""

    kind = "snmp"
    timeout = 2.0
    absent_is_silent = True

    def __init__(self, agent: SnmpAgent) -> None:
        self.agent = agent
        self._log = agent.control / "switches"
        self._seen = 0

    def _outlet(self, channel: int) -> str:
        return f"{self.agent.profile}.{channel}"

    def start(self) -> None:
        self._ensure_running()
        (self.agent.control / "garble").unlink(missing_ok=True)
        for ch in range(1, self.channels + 1):
            self.preset(ch, False)
        self._seen = len(self._lines())

    def stop(self) -> None:
        self._ensure_running()

    def _ensure_running(self) -> None:
        proc = self.agent.proc
        if proc is None or proc.poll() is not None:
            for state in self.agent.control.glob("state-*"):
                state.unlink()  # a new agent starts with every outlet off
            self.agent.start()
        else:
            self.agent.resume()

    def _lines(self) -> list[str]:
        try:
            return self._log.read_text().splitlines()
        except FileNotFoundError:
            return []

    def options(self) -> dict[str, Any]:
        return {"host": self.agent.address, "profile": "raritan", "community": "lab"}

    def switches(self) -> list[Switch]:
        made = []
        for line in self._lines()[self._seen :]:
            outlet, _, on = line.rpartition(" ")
            made.append(Switch(int(outlet.rpartition(".")[2]), on == "1"))
        return made

    def relays(self) -> dict[int, bool]:
        states = {}
        for ch in range(1, self.channels + 1):
            control = self.agent.control
            pending = control / f"preset-{self._outlet(ch)}"
            known = control / f"state-{self._outlet(ch)}"
            for path in (pending, known):
                try:
                    states[ch] = path.read_text().strip() == "1"
                    break
                except FileNotFoundError:
                    states[ch] = False
        return states

    def preset(self, channel: int, on: bool) -> None:
        (self.agent.control / f"preset-{self._outlet(channel)}").write_text("1" if on else "0")

    def hang(self) -> None:
        self.agent.pause()

    def garble(self) -> bool:
        (self.agent.control / "garble").touch()
        return True

    def heal(self) -> None:
        self.agent.resume()
        (self.agent.control / "garble").unlink(missing_ok=True)

    def unplug(self) -> None:
        self.agent.stop()

    def replug(self) -> None:
        self._ensure_running()


class ModbusTcpRig(Rig):
    """A Modbus TCP coil board: pymodbus's own server on loopback, which records every
    request; it comes back on the same port after :meth:`unplug`."""

    kind = "modbus"
    timeout = 1.0

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = 0
        self.server: ModbusServer | None = None
        self._stack = contextlib.ExitStack()
        self._before: list[Switch] = []  # what earlier servers (before an unplug) received

    def start(self) -> None:
        self.server = self._stack.enter_context(running("tcp", self.tmp, tcp_port=self.port))
        self.port = int(self.server.where.rpartition(":")[2])

    def stop(self) -> None:
        if self.server is not None:
            self._before = self.switches()
        self.server = None
        self._stack.close()

    def _server(self) -> ModbusServer:
        assert self.server is not None, "the Modbus server is not running"
        return self.server

    def options(self) -> dict[str, Any]:
        return {"host": f"127.0.0.1:{self.port}", "unit": 1}

    def switches(self) -> list[Switch]:
        if self.server is None:
            return list(self._before)
        made = list(self._before)
        for r in self.server.writes:
            values = r.values if r.function in (5, 15) else [bool(v) for v in r.values or []]
            made += [Switch(r.address + i + 1, bool(v)) for i, v in enumerate(values or [])]
        return made

    def relays(self) -> dict[int, bool]:
        coils = self._server().coils(0, self.channels)
        return {ch: on for ch, on in enumerate(coils, 1)}

    def preset(self, channel: int, on: bool) -> None:
        server = self._server()
        kept = list(server.requests)
        server.set_coil(channel - 1, on)  # clears the record: put it back
        server.requests[:] = kept

    def hang(self) -> None:
        self._server().fault = "silent"

    def garble(self) -> bool:
        self._server().fault = "unit"  # a well-formed answer, from another unit
        return True

    def heal(self) -> None:
        self._server().fault = None

    def unplug(self) -> None:
        self.stop()

    def replug(self) -> None:
        self.start()


MakeRig = Callable[[Path], Rig]


#: every rig: its name (which board it is) -> (the backend kind it serves, how to make it).
#: Several for one backend where boards of one kind answer differently (the LCUS status
#: dialects, Modbus over TCP and RTU).
def _pty(kind: str, **options: Any) -> MakeRig:
    return lambda tmp: PtyRig(tmp, kind, **options)


def _usb(kind: str) -> MakeRig:
    return lambda tmp: FakeUsbRig(tmp, kind)


def _http(kind: str) -> MakeRig:
    return lambda tmp: HttpRig(kind)


RIGS: dict[str, tuple[str, MakeRig]] = {
    "mock": ("mock", lambda tmp: MockRig()),
    **{
        f"lcus-{dialect}": ("lcus", _pty("lcus", dialect=dialect))
        for dialect in ("ascii", "raw", "feedback", "silent")
    },
    **{kind: (kind, _pty(kind)) for kind in ("numato", "kmtronic", "devantech")},
    **{kind: (kind, _usb(kind)) for kind in FakeUsbRig.BOARDS},
    **{kind: (kind, _http(kind)) for kind in sorted(HTTP_SIMULATORS)},
    "modbus-tcp": ("modbus", lambda tmp: ModbusTcpRig(tmp)),
    "modbus-rtu": ("modbus", _pty("modbus")),
}


@contextlib.contextmanager
def shared_agent(directory: Path) -> Iterator[Callable[[], SnmpAgent]]:
    """A function that gives the one SNMP agent of a session, started on first use (snmpsim
    takes seconds to start). Opening an SNMP v1/v2c device costs no more than a socket, so
    the deadlines of :class:`SnmpRig` can stay short."""
    agent: list[SnmpAgent] = []

    def get() -> SnmpAgent:
        if not agent:
            agent.append(SnmpAgent(directory, "raritan", outlets=2, community="lab").start())
        return agent[0]

    try:
        yield get
    finally:
        for made in agent:
            made.stop()

"""The modbus backend through Device against pymodbus's own server: Modbus TCP on loopback and
Modbus RTU over a socat pty pair at 9600 and 115200 baud, with faults injected on the wire."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from labpower.backends import Device, OperationError, OptionError, parse_options
from labpower.backends.errors import HardwareTimeout
from labpower.backends.modbus.backend import ModbusBackend, silent_interval
from labpower.backends.modbus.options import ModbusOptions, parse_host
from labpower.backends.registry import load
from labpower.backends.sim.modbus import ModbusRtuSimulator

from .modbus_server import ModbusServer, running

pytestmark = pytest.mark.anyio

TRANSPORTS = ["tcp", "rtu-9600", "rtu-115200"]
TIMEOUT = 1.0


@pytest.fixture(params=TRANSPORTS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ModbusServer]:
    kind, _, baud = str(request.param).partition("-")
    with running("tcp" if kind == "tcp" else "rtu", tmp_path, baudrate=int(baud or 9600)) as s:
        yield s


def device(server: ModbusServer, channels: int = 8, **options: Any) -> Device:
    opts = parse_options(ModbusOptions, {**server.options(), **options})
    return Device(ModbusBackend("relays", channels, opts), TIMEOUT)


def test_entry_point_names_the_backend() -> None:
    assert load("modbus") is ModbusBackend


async def test_switch_writes_one_coil_and_reads_it_back(server: ModbusServer) -> None:
    dev = device(server)
    assert await dev.switch(3, True) is True
    assert server.coils(0, 8) == [False, False, True] + [False] * 5
    assert await dev.switch(8, True) is True
    assert await dev.switch(3, False) is False
    assert server.coils(0, 8) == [False] * 7 + [True]
    assert [(w.function, w.address, w.values) for w in server.writes] == [
        (5, 2, [True]),
        (5, 7, [True]),
        (5, 2, [False]),
    ]
    await dev.close()


async def test_offset_and_addresses_pick_the_coils(server: ModbusServer) -> None:
    dev = device(server, channels=2, offset=16)
    assert await dev.switch(2, True) is True
    await dev.close()  # an RTU port is opened exclusively
    listed = device(server, channels=3, addresses=[30, 4, 9])
    assert await listed.switch(1, True) is True
    assert await listed.switch(3, True) is True
    assert [i for i, on in enumerate(server.coils(0, 32)) if on] == [9, 17, 30]
    # a read of channels spread over 27 addresses is still one request
    before = len(server.requests)
    assert await listed.states() == {1: True, 2: False, 3: True}
    assert len(server.requests) == before + 1
    await listed.close()


async def test_register_board_writes_its_values(server: ModbusServer) -> None:
    dev = device(
        server, channels=4, profile="custom", kind="register", on_value=0x0100, off_value=0x0200
    )
    assert await dev.open()
    # registers start at 0: neither value, so the board's state is not guessed
    with pytest.raises(OperationError, match="neither on_value nor off_value"):
        await dev.state(1)
    assert await dev.switch(2, True) is True
    assert await dev.switch(3, False) is False
    assert server.registers(0, 4) == [0, 0x0100, 0x0200, 0]
    assert [(w.function, w.address, w.values) for w in server.writes] == [
        (6, 1, [0x0100]),
        (6, 2, [0x0200]),
    ]
    await dev.close()


@pytest.mark.timing
async def test_no_answer_times_out_within_the_deadline(server: ModbusServer) -> None:
    dev = device(server)
    assert await dev.open()
    server.fault = "silent"
    start = anyio.current_time()
    with pytest.raises(HardwareTimeout):
        await dev.switch(1, True)
    assert anyio.current_time() - start < TIMEOUT + 0.5
    assert not dev.available
    server.fault = None
    assert await dev.switch(1, False) is False  # re-opened, works again
    assert dev.available
    await dev.close()


async def test_a_silent_board_does_not_hold_up_another(
    server: ModbusServer, tmp_path: Path
) -> None:
    with running("tcp", tmp_path / "other") as other_server:
        silent, other = device(server), device(other_server)
        assert await silent.open()
        assert await other.open()
        server.fault = "silent"
        times: list[float] = []
        async with anyio.create_task_group() as tg:

            async def hang() -> None:
                with pytest.raises(HardwareTimeout):
                    await silent.switch(1, True)

            tg.start_soon(hang)
            for ch in range(1, 9):
                start = anyio.current_time()
                assert await other.switch(ch, True) is True
                times.append(anyio.current_time() - start)
        # every switch of the other board ended while the silent one was still waiting
        assert sum(times) < TIMEOUT
        assert other_server.coils(0, 8) == [True] * 8
        await silent.close()
        await other.close()


async def test_exception_response_names_the_code(server: ModbusServer) -> None:
    dev = device(server)
    server.fault = "exception"
    with pytest.raises(OperationError, match=r"exception 4 \(server device failure\)"):
        await dev.switch(1, True)
    server.fault = None
    await dev.close()
    # an address the board does not have: exception 2
    beyond = device(server, channels=2, offset=40)
    with pytest.raises(OperationError, match=r"exception 2 \(illegal data address\)"):
        await beyond.switch(1, True)
    await beyond.close()


async def test_corrupted_answer_is_an_error_not_a_state(server: ModbusServer) -> None:
    dev = device(server)
    assert await dev.open()
    server.fault = "crc"
    rtu = server.where.startswith("/")
    with pytest.raises(OperationError, match="CRC mismatch" if rtu else "not its echo"):
        await dev.switch(1, False)
    if rtu:  # over TCP only a write's echo shows it: TCP's own checksum guards the bytes
        with pytest.raises(OperationError, match="CRC mismatch"):
            await dev.state(1)
    server.fault = None
    assert await dev.state(1) is False
    await dev.close()


async def test_answer_from_another_unit_is_refused(server: ModbusServer) -> None:
    dev = device(server)
    server.fault = "unit"
    with pytest.raises(OperationError, match="from unit 2, not 1"):
        await dev.state(1)
    await dev.close()


async def test_request_to_a_unit_the_server_lacks_fails(server: ModbusServer) -> None:
    wrong = Device(
        ModbusBackend("wrong", 8, parse_options(ModbusOptions, {**server.options(), "unit": 7})),
        TIMEOUT,
    )
    # pymodbus answers with an exception (a real RTU line would stay silent: a timeout)
    with pytest.raises(OperationError, match="Modbus unit 7: exception"):
        await wrong.switch(1, True)
    assert server.writes == []
    await wrong.close()
    dev = device(server)
    assert await dev.state(1) is False
    await dev.close()


async def test_refused_connection_is_unavailable() -> None:
    # a port nothing listens on: bind one, then close it
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    opts = parse_options(ModbusOptions, {"host": f"127.0.0.1:{port}"})
    dev = Device(ModbusBackend("gone", 8, opts), TIMEOUT)
    assert not await dev.open()
    assert dev.problem is not None
    assert f"127.0.0.1:{port}" in dev.problem


@pytest.mark.parametrize(
    ("table", "key", "reason"),
    [
        ({}, "host", "exactly one of host"),
        ({"host": "a", "port": "/dev/ttyUSB9"}, "host", "exactly one of host"),
        ({"host": "a:99999"}, "host", "1..65535"),
        ({"host": "a b"}, "host", "NAME:PORT"),
        ({"port": "ttyUSB0"}, "port", "absolute path"),
        ({"port": "/dev/ttyUSB9", "unit": 0}, "unit", "1..247"),
        ({"host": "a", "unit": 256}, "unit", "0..255"),
        ({"host": "a", "baudrate": 10}, "baudrate", "between 50"),
        ({"host": "a", "kind": "coil"}, "kind", "only for profile = 'custom'"),
        ({"host": "a", "profile": "custom"}, "kind", "needs kind"),
        ({"host": "a", "profile": "custom", "kind": "register"}, "on_value", "needs on_value"),
        (
            {"host": "a", "profile": "custom", "kind": "register", "on_value": 1, "off_value": 1},
            "off_value",
            "must differ",
        ),
        ({"host": "a", "offset": 70000}, "offset", "0..65535"),
        ({"host": "a", "addresses": [1, 1]}, "addresses", "twice"),
        ({"host": "a", "profile": "acme"}, "profile", "one of"),
    ],
)
def test_bad_options_name_the_key(table: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(OptionError, match=re.escape(reason)) as caught:
        parse_options(ModbusOptions, table)
    assert caught.value.key == key


def test_channel_count_must_fit_profile_and_addresses() -> None:
    with pytest.raises(OptionError, match="at most 32") as caught:
        ModbusBackend("w", 33, parse_options(ModbusOptions, {"host": "a", "profile": "waveshare"}))
    assert caught.value.key == "profile"
    with pytest.raises(OptionError, match="2 addresses for 3 channels"):
        ModbusBackend("w", 3, parse_options(ModbusOptions, {"host": "a", "addresses": [1, 2]}))


def test_host_and_silent_interval() -> None:
    assert parse_host("relays.lab") == ("relays.lab", 502)
    assert parse_host("127.0.0.1:5020") == ("127.0.0.1", 5020)
    assert parse_host("[::1]:1502") == ("::1", 1502)
    assert silent_interval(9600) == pytest.approx(3.5 * 11 / 9600)
    assert silent_interval(115200) == pytest.approx(1.75e-3)


async def test_rtu_simulator_with_wire_time(tmp_path: Path) -> None:
    """The benchmark's board: a coil board on a pty taking 9600 baud's wire time."""
    with ModbusRtuSimulator(tmp_path / "sim", channels=4, wire_baud=9600) as board:
        opts = parse_options(ModbusOptions, {"port": str(tmp_path / "sim"), "baudrate": 9600})
        dev = Device(ModbusBackend("sim", 4, opts), TIMEOUT)
        assert await dev.switch(4, True) is True
        assert await dev.states() == {1: False, 2: False, 3: False, 4: True}
        assert board.relays == {1: False, 2: False, 3: False, 4: True}
        # write (8) + echo (8) + read (8) + answer (6), then read (8) + answer (6)
        assert board.wire_time == pytest.approx((30 + 14) * 10 / 9600)
        await dev.close()
        beyond = Device(ModbusBackend("sim", 5, opts), TIMEOUT)
        with pytest.raises(OperationError, match="exception 2"):
            await beyond.switch(5, True)
        await beyond.close()
    assert [(s.channel, s.on) for s in board.switches] == [(4, True)]


@pytest.mark.timing
def test_modbus_benchmark_measures() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "modbus_bench.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(done.stdout)
    assert figures["wire_median_ms"] == pytest.approx((30 * 10 + 38.5) / 9600 * 1e3)
    assert 0 < figures["overhead_median_ms"] < figures["switch_readback_median_ms"]
    # the split of the overhead: the daemon's share (a mock call), the backend alone, and
    # pymodbus's CPU within it; the rig's floor is positive and far below a frame's wire time
    for share in ("daemon_baseline_median_ms", "backend_overhead_median_ms", "pymodbus_us"):
        assert figures[share] > 0, share
    assert 0 < figures["rig_floor_median_ms"] < 8 * 10 / 9600 * 1e3

"""Hot-plug: the daemon notices boards leaving and coming back, and switches nothing.

The boards are the pty simulators (labpower.backends.sim): unplugging one closes its pty and
removes its link, plugging it back makes a new pty (a new node) behind the same link, like a
USB serial board coming back as another ttyUSB. The watcher sees the link's directory change
through inotify (the same code watches /dev on a lab host). The real /dev, with udev and
USB and uhid boards: tests/vm.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from labpower.backends.sim import LcusSimulator, Switch
from labpower.daemon.api import ApiError
from labpower.daemon.config import parse
from labpower.daemon.hotplug import Hotplug, relevant
from labpower.daemon.lab import Lab

pytestmark = pytest.mark.anyio
WAIT = 10.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def probed_until(hotplug: Hotplug, condition: Callable[[], bool]) -> None:
    """Wait for probes until ``condition()`` holds."""
    with anyio.fail_after(WAIT):
        while not condition():
            await hotplug.probed.wait()


def lab_on(tmp_path: Path) -> Lab:
    return Lab(
        parse(
            {
                "devices": {
                    "bench": {
                        "backend": "lcus",
                        "port": str(tmp_path / "boards" / "lcus0"),
                        "channels": 2,
                        "timeout": 1.0,
                    }
                },
                "targets": {
                    "dut1": {"device": "bench", "channel": 1},
                    "dut2": {"device": "bench", "channel": 2},
                },
            }
        )
    )


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[LcusSimulator, Lab, Hotplug]]:
    (tmp_path / "boards").mkdir()
    (tmp_path / "dev").mkdir()
    board = LcusSimulator(tmp_path / "boards" / "lcus0", channels=2, dialect="raw")
    board.start()
    try:
        lab = lab_on(tmp_path)
        await lab.open()
        # a temporary directory stands in for /dev: the real one is not ours to change
        hotplug = Hotplug(lab, dev_dirs=[str(tmp_path / "dev")])
        async with anyio.create_task_group() as tg:
            tg.start_soon(hotplug.run)
            # wait until it watches: a probe-triggering event must not be missed
            with anyio.fail_after(WAIT):
                while not await _watching(hotplug, tmp_path):
                    pass
            yield board, lab, hotplug
            tg.cancel_scope.cancel()
        await lab.close()
    finally:
        board.stop()


async def _watching(hotplug: Hotplug, tmp_path: Path) -> bool:
    """Touch a file in the stand-in /dev and see whether a probe follows."""
    probed = hotplug.probed
    marker = tmp_path / "dev" / "marker"
    marker.touch()
    marker.unlink()
    with anyio.move_on_after(0.5):
        await probed.wait()
        return True
    return False


@pytest.mark.timing
async def test_unplug_and_replug_under_a_new_node(
    running: tuple[LcusSimulator, Lab, Hotplug],
) -> None:
    board, lab, hotplug = running
    device = lab.devices["bench"]
    await lab.switch("dut1", True, "on")
    assert board.relays == {1: True, 2: False}
    first_node = board.path

    board.drop()  # unplugged: the pty closes, the link goes
    await probed_until(hotplug, lambda: not device.available)
    assert lab.targets["dut1"].to_wire(lab.leases)["available"] is False
    with anyio.fail_after(1.0):  # fails fast, no deadline to wait out
        with pytest.raises(ApiError) as info:
            await lab.switch("dut2", True, "on")
    assert info.value.name == "io.labpower.Power.DeviceUnavailable"

    # plugged back under another node: hold the old pty number, as a new ttyUSB number
    spare = os.openpty()
    try:
        board.come_back()
    finally:
        os.close(spare[0])
        os.close(spare[1])
    assert board.path != first_node
    await probed_until(hotplug, lambda: device.available)
    assert (await lab.get("dut1"))["state"] == "off"  # relays lost power, read back
    await lab.switch("dut2", True, "on")
    assert board.relays == {1: False, 2: True}
    # nothing was switched on the way: only the two commands a caller gave
    assert board.switches == [Switch(1, True), Switch(2, True)]


async def test_a_directory_made_later_is_watched(
    running: tuple[LcusSimulator, Lab, Hotplug], tmp_path: Path
) -> None:
    _, lab, _ = running
    links = tmp_path / "dev" / "labpower"
    # /dev/labpower only appears with the first board: watched once it is there
    hotplug = Hotplug(lab, dev_dirs=[str(tmp_path / "dev"), str(links)])
    async with anyio.create_task_group() as tg:
        tg.start_soon(hotplug.run)
        with anyio.fail_after(WAIT):
            while not await _watching(hotplug, tmp_path):
                pass
        probed = hotplug.probed
        links.mkdir()
        with anyio.fail_after(WAIT):
            await probed.wait()
        probed = hotplug.probed
        os.symlink("/dev/null", links / "usbrelay-X")
        with anyio.fail_after(WAIT):
            await probed.wait()
        tg.cancel_scope.cancel()


def test_only_board_nodes_in_dev_matter() -> None:
    for name in ("ttyUSB0", "ttyACM12", "hidraw3", "labpower", "serial", "bus"):
        assert relevant("/dev", name)
    for name in ("tty1", "pts", "null", "ttyS0", "shm", "hidraw", "ttyUSB0.tmp"):
        assert not relevant("/dev", name)
    # anything in the other watched directories (by-id links, config ports) does
    assert relevant("/dev/serial/by-id", "usb-FTDI_FT232R_USB_UART_A1-if00-port0")
    assert relevant("/srv/boards", "lcus0")

"""A backend written outside labpower runs the contract suite with a rig of its own: a tiny
out-of-tree backend, registered through its own entry point, passes it; the same backend
changed to switch a relay when it opens fails it, naming the rule."""

from __future__ import annotations

import textwrap

import pytest

#: the third party's package: a board that is a directory (``relays`` holds one character
#: per relay, ``commands`` every command the board took), and the backend driving it
TOY_BACKEND = '''
from __future__ import annotations

import os
from dataclasses import dataclass

import anyio
from labpower.backends import Backend, DeviceUnavailableError, OperationError


@dataclass(frozen=True, slots=True)
class ToyOptions:
    board: str


class ToyBackend(Backend):
    readback = True
    Options = ToyOptions

    def _file(self, name: str) -> str:
        return os.path.join(self.options.board, name)

    async def _ready(self) -> None:
        if not os.path.isdir(self.options.board):
            raise DeviceUnavailableError(f"{self.options.board}: no such board")
        while os.path.exists(self._file("hang")):  # the board does not answer
            await anyio.sleep(0.01)

    async def open(self) -> None:
        await self._ready()

    async def set(self, channel: int, on: bool) -> None:
        await self._ready()
        with open(self._file("commands"), "a") as f:
            f.write(f"{channel} {int(on)}\\n")
        relays = list(await self._relays())
        relays[channel - 1] = "1" if on else "0"
        with open(self._file("relays"), "w") as f:
            f.write("".join(relays))

    async def _relays(self) -> str:
        await self._ready()
        with open(self._file("relays")) as f:
            text = f.read()
        if len(text) != self.channels or set(text) - {"0", "1"}:
            raise OperationError(f"the board says {text[:20]!r}")
        return text

    async def get(self, channel: int) -> bool | None:
        return (await self._relays())[channel - 1] == "1"


class BrokenToyBackend(ToyBackend):
    """Sets channel 1 off when it opens: the bug the suite is there to catch."""

    async def open(self) -> None:
        await super().open()
        await self.set(1, False)
'''

TOY_TESTS = """
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from labpower.backends.contract import BackendContract, Rig, Switch


class ToyRig(Rig):
    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind

    def start(self) -> None:
        self.path.mkdir()
        self._write("relays", "0" * self.channels)
        self._write("commands", "")

    def stop(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _write(self, name: str, text: str) -> None:
        (self.path / name).write_text(text)

    def options(self):
        return {"board": str(self.path)}

    def switches(self) -> list[Switch]:
        where = self.path if self.path.exists() else self.path.with_name("unplugged")
        lines = (where / "commands").read_text().split()
        return [Switch(int(c), s == "1") for c, s in zip(lines[::2], lines[1::2])]

    def relays(self) -> dict[int, bool]:
        text = (self.path / "relays").read_text()
        return {ch: text[ch - 1] == "1" for ch in range(1, self.channels + 1)}

    def preset(self, channel: int, on: bool) -> None:
        text = list((self.path / "relays").read_text())
        text[channel - 1] = "1" if on else "0"
        self._write("relays", "".join(text))

    def hang(self) -> None:
        self._write("hang", "")

    def garble(self) -> bool:
        self._relays_before = (self.path / "relays").read_text()
        self._write("relays", "?!")
        return True

    def heal(self) -> None:
        (self.path / "hang").unlink(missing_ok=True)
        if (self.path / "relays").read_text() == "?!":
            self._write("relays", self._relays_before)

    def unplug(self) -> None:
        self._kept = self.path.with_name("unplugged")
        self.path.rename(self._kept)

    def replug(self) -> None:
        self._kept.rename(self.path)


class TestToy(BackendContract):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def rig(self, tmp_path: Path):
        with ToyRig(tmp_path / "board", "toy") as rig:
            yield rig


class TestBrokenToy(TestToy):
    @pytest.fixture
    def rig(self, tmp_path: Path):
        with ToyRig(tmp_path / "board", "toy-broken") as rig:
            yield rig
"""


def test_an_out_of_tree_backend_runs_the_suite_and_a_broken_one_fails_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = pytester.mkdir("site")
    (site / "toy_relay.py").write_text(textwrap.dedent(TOY_BACKEND))
    dist = site / "toy_relay-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-relay\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[labpower.backends]\ntoy = toy_relay:ToyBackend\ntoy-broken = toy_relay:BrokenToyBackend\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(site))
    pytester.makepyfile(test_toy=TOY_TESTS)
    # --strict-markers: the suite's markers are declared by labpower's pytest plugin, found
    # through its entry point like any other
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-rf", "--strict-markers"
    )
    # the good one passes every rule; the broken one fails where it switches unasked: at
    # open, and when a board that came back is opened again
    result.stdout.no_fnmatch_line("FAILED *TestToy::*")
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: opening, reading or closing sent a switch",
            "*AssertionError: coming back switched a relay",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(
        ["FAILED *TestBrokenToy::test_open_read_close_and_reopen_switch_nothing*"]
    )
    result.assert_outcomes(passed=7 + 4, failed=3)

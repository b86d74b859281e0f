"""The fake USB world: which boards are plugged where, their state, and every byte they got.

The world is one JSON-able document. A :class:`MemoryBus` keeps it in this process (tests that
monkeypatch the library); a :class:`FileBus` keeps it in a file guarded by ``flock``, so that a
daemon child process (started through ``python -m labpower.backends.fakes``) and the test share one
world: the test plugs, unplugs, hangs and inspects; the daemon talks to the boards.

Next to the world the bus materialises a small sysfs tree (``<root>/sys``) and ``/dev`` links
(``<root>/dev/serial/by-id``...), so the code that maps a hidraw node to its USB port or finds
a tty's stable links runs unchanged against the fake.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

World = dict[str, Any]
Board = dict[str, Any]

#: How often a call to a hung board in a :class:`FileBus` looks whether it was released.
HANG_POLL = 0.02


def empty_world() -> World:
    return {"hid": [], "hubs": [], "serial": [], "log": [], "next_address": 10}


class Bus:
    """Base of both buses: the world, plus the operations a test uses on it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        #: directory holding the fake ``sys`` and ``dev`` trees
        self.root = Path(root)

    # -- storage, provided by subclasses
    @contextmanager
    def transaction(self) -> Iterator[World]:
        """The world, locked; changes are kept when the block ends."""
        raise NotImplementedError
        yield {}  # pragma: no cover

    def wait_released(self, kind: str, key: str, deadline: float | None) -> bool:
        """Block while board ``key`` hangs. False if ``deadline`` (monotonic) passed first."""
        raise NotImplementedError

    def _changed(self) -> None:
        """Called after a test changed a hang flag."""

    # -- test-side helpers
    def add(self, kind: str, board: Board) -> Board:
        """Plug in a new board (``kind`` is "hid", "hubs" or "serial")."""
        board = {"plugged": True, "hang": False, "generation": 1, **board}
        with self.transaction() as world:
            if kind == "hubs":
                board.setdefault("address", world["next_address"])
                world["next_address"] += 1
            if any(b["key"] == board["key"] for b in world[kind]):
                raise ValueError(f"board {board['key']!r} exists already")
            world[kind].append(board)
            self._render(world)
        return board

    def board(self, key: str) -> Board:
        """A snapshot of one board."""
        with self.transaction() as world:
            return dict(find_board(world, key)[1])

    def update(self, key: str, **changes: Any) -> None:
        with self.transaction() as world:
            find_board(world, key)[1].update(changes)
            self._render(world)
        self._changed()

    def unplug(self, key: str) -> None:
        self.update(key, plugged=False)

    def replug(self, key: str, **changes: Any) -> None:
        """Plug a board back in, e.g. under a new ``path``; hubs get a new address (devnum).
        A dcttech relay board loses its relay state with its power, as the real one does."""
        with self.transaction() as world:
            kind, board = find_board(world, key)
            board.update(changes, plugged=True, generation=board["generation"] + 1)
            if kind == "hubs" and "address" not in changes:
                board["address"] = world["next_address"]
                world["next_address"] += 1
            if board.get("model") == "usbrelay":
                board["mask"] = 0
            self._render(world)
        self._changed()

    def hang(self, key: str, hung: bool = True) -> None:
        self.update(key, hang=hung)

    def log(self, key: str | None = None) -> list[dict[str, Any]]:
        """Every library call that reached a board (all boards, or ``key``), oldest first."""
        with self.transaction() as world:
            return [e for e in world["log"] if key is None or e["board"] == key]

    def clear_log(self) -> None:
        with self.transaction() as world:
            world["log"].clear()

    # -- fake sysfs and /dev links
    def _render(self, world: World) -> None:
        for sub in ("sys", "dev"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        sys_root, dev_root = self.root / "sys", self.root / "dev"
        (sys_root / "class" / "hidraw").mkdir(parents=True)
        (sys_root / "bus" / "usb" / "devices").mkdir(parents=True)
        (dev_root / "serial" / "by-id").mkdir(parents=True)
        (dev_root / "serial" / "by-path").mkdir(parents=True)
        usb_root = sys_root / "devices" / "pci0000:00" / "0000:00:14.0"
        for board in world["hid"]:
            if not board["plugged"]:
                continue
            port = board["usb_port"]
            bus = port.split("-")[0]
            usbdev = usb_root / f"usb{bus}" / port
            hiddev = usbdev / f"{port}:1.0" / f"0003:{board['vid']:04X}:{board['pid']:04X}.0001"
            node = os.path.basename(board["path"])
            (hiddev / "hidraw" / node).mkdir(parents=True, exist_ok=True)
            (usbdev / "busnum").write_text(f"{bus}\n")
            (usbdev / "devnum").write_text(f"{board.get('devnum', 2)}\n")
            (sys_root / "class" / "hidraw" / node).mkdir(exist_ok=True)
            os.symlink(hiddev, sys_root / "class" / "hidraw" / node / "device")
            link = sys_root / "bus" / "usb" / "devices" / port
            if not link.exists():
                os.symlink(usbdev, link)
        for port in world["serial"]:
            if not port["plugged"]:
                continue
            node = os.path.basename(port["device"])
            (dev_root / node).touch()
            for kind in ("by-id", "by-path"):
                if port.get(kind):
                    os.symlink(f"../../{node}", dev_root / "serial" / kind / port[kind])


def find_board(world: World, key: str) -> tuple[str, Board]:
    for kind in ("hid", "hubs", "serial"):
        for board in world[kind]:
            if board["key"] == key:
                return kind, board
    raise KeyError(f"no fake board {key!r}")


class MemoryBus(Bus):
    """The world in this process, for tests that install the fakes by monkeypatching."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        self._world = empty_world()
        self._cond = threading.Condition(threading.RLock())
        self._render(self._world)

    @contextmanager
    def transaction(self) -> Iterator[World]:
        with self._cond:
            yield self._world

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_released(self, kind: str, key: str, deadline: float | None) -> bool:
        with self._cond:
            while True:
                board = find_board(self._world, key)[1]
                if not board["hang"] or not board["plugged"]:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)


class FileBus(Bus):
    """The world in a JSON file, shared between the test and a daemon child process.

    ``path`` is the file; the fake sysfs and /dev trees live in ``path`` + ``.d``.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self.path = Path(path)
        super().__init__(Path(f"{self.path}.d"))
        self._local = threading.RLock()
        if create:
            with self.transaction() as world:
                world.clear()
                world.update(empty_world())
                self._render(world)

    @contextmanager
    def transaction(self) -> Iterator[World]:
        with self._local, open(self.path, "a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            text = f.read()
            world: World = json.loads(text) if text else empty_world()
            yield world
            f.seek(0)
            f.truncate()
            f.write(json.dumps(world))
            f.flush()

    def wait_released(self, kind: str, key: str, deadline: float | None) -> bool:
        # Another process flips the flag: there is nothing to wait on but the file itself.
        while True:
            with self.transaction() as world:
                board = find_board(world, key)[1]
                if not board["hang"] or not board["plugged"]:
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(HANG_POLL)

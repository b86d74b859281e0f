"""Hot-plug: notice boards appearing and disappearing, and check the devices again at once.

Mechanism: inotify on /dev (and the directories udev fills for boards), not a netlink uevent
socket. Why:

- labpowerd.service runs with ``RestrictAddressFamilies=AF_UNIX`` and ``PrivateNetwork=yes``:
  an AF_NETLINK socket is refused there, and udev's processed events (netlink group 2) are
  multicast in the host's network namespace only. inotify needs neither, nor any privilege.
- What the daemon needs to know is "udev is done with a node": the kernel creates
  /dev/ttyUSB0 or /dev/hidraw3 (root, 0600), then udev sets the group and mode (an attribute
  change) and makes the links (/dev/labpower/..., /dev/serial/by-id/...). Each of these steps
  is an inotify event on a directory we watch, so the daemon checks its devices as soon as
  the node is usable, and again when a node or link is removed.
- It also sees what no uevent reports: a config's ``port`` pointing at a symlink somewhere
  else (the pty simulators' links, a by-path link), whose directory is watched too.

Events come in bursts (a plug is a node, a chown, a chmod, several links): the watcher waits
until the burst has been quiet for :data:`SETTLE` seconds (at most :data:`MAX_SETTLE`) and then
calls :meth:`labpower.backends.Device.probe` on every device: close and open again, which never
switches a relay. A device that vanished becomes unavailable (calls fail with
DeviceUnavailable straight away), one that came back, maybe under a new node, becomes available.
Only the standard library: inotify through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import re
import struct
from collections.abc import Iterable

import anyio
from labpower.daemon.health import log_change
from labpower.daemon.lab import Lab

log = logging.getLogger("labpower.daemon.hotplug")

IN_ATTRIB = 0x00000004
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
WATCH_MASK = (
    IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF
)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded

#: directories udev fills for boards; watched whenever they exist
DEV_DIRS = (
    "/dev",
    "/dev/labpower",
    "/dev/serial/by-id",
    "/dev/serial/by-path",
    "/dev/bus/usb",
)
#: names in /dev that matter: board nodes, and directories that appear with the first board
DEV_NAMES = re.compile(r"(tty(USB|ACM)\d+|hidraw\d+|labpower|serial|bus)\Z")
#: quiet time that ends a burst of events, and the longest wait for a burst to end (seconds)
SETTLE = 0.1
MAX_SETTLE = 1.0


class Inotify:
    """A non-blocking inotify instance watching directories.

    :raises OSError: from the constructor, when inotify is unavailable (EMFILE: too many
        instances).
    """

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd
        #: watch descriptor -> directory
        self.watches: dict[int, str] = {}

    def watch(self, directory: str) -> bool:
        """Watch ``directory`` (again); False if it does not exist (or is no directory)."""
        if directory in self.watches.values():
            return True
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(directory), WATCH_MASK | IN_ONLYDIR)
        if wd < 0:
            err = ctypes.get_errno()
            if err not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                log.warning("cannot watch %s: %s", directory, os.strerror(err))
            return False
        self.watches[wd] = directory
        return True

    def read(self) -> list[tuple[str, int, str]]:
        """The events queued now: (directory, mask, name). Empty when there are none."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        events = []
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            name = data[offset : offset + length].rstrip(b"\0").decode(errors="replace")
            offset += length
            directory = self.watches.get(wd, "")
            if mask & IN_IGNORED:
                self.watches.pop(wd, None)  # the directory went away; watched again if back
            events.append((directory, mask, name))
        return events

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def relevant(directory: str, name: str) -> bool:
    """Whether an event in ``directory`` about ``name`` may concern a board."""
    return directory != "/dev" or DEV_NAMES.match(name) is not None


def config_directories(lab: Lab) -> set[str]:
    """The directories of the device paths the config names (``port``, ``path``)."""
    dirs = set()
    for device in lab.config.devices.values():
        for key in ("port", "path"):
            value = getattr(device.options, key, None)
            if isinstance(value, str) and value.startswith("/"):
                dirs.add(os.path.dirname(value))
    return dirs


class Hotplug:
    """Watches for boards and probes the lab's devices when one comes or goes."""

    def __init__(self, lab: Lab, dev_dirs: Iterable[str] = DEV_DIRS) -> None:
        self.lab = lab
        self.dev_dirs = tuple(dev_dirs)
        #: how many times the devices were probed (tests wait on it)
        self.probes = 0
        self.probed = anyio.Event()

    def directories(self) -> list[str]:
        return sorted({*self.dev_dirs, *config_directories(self.lab)})

    async def run(self) -> None:
        """Watch until cancelled. Logs and returns if inotify is not available: calls
        still re-open a board that came back, only later."""
        try:
            inotify = Inotify()
        except OSError as exc:
            log.warning("hot-plug detection off: %s", exc)
            return
        try:
            self._rewatch(inotify)
            while True:
                await anyio.wait_readable(inotify.fd)
                if not self._relevant(inotify.read()):
                    continue
                await self._settle(inotify)
                self._rewatch(inotify)
                await self.probe()
        finally:
            inotify.close()

    def _rewatch(self, inotify: Inotify) -> None:
        for directory in self.directories():
            inotify.watch(directory)

    @staticmethod
    def _relevant(events: list[tuple[str, int, str]]) -> bool:
        return any(relevant(d, n) for d, _, n in events)

    async def _settle(self, inotify: Inotify) -> None:
        """Wait for the burst of events to end: SETTLE seconds without a relevant one."""
        with anyio.move_on_after(MAX_SETTLE):
            while True:
                with anyio.move_on_after(SETTLE) as quiet:
                    await anyio.wait_readable(inotify.fd)
                if quiet.cancelled_caught:
                    return
                self._relevant(inotify.read())  # drain; the probe below covers them all

    async def probe(self) -> None:
        """Probe every device at once and log those whose availability changed; read back
        the state of those that came back (their relays may have lost power meanwhile)."""
        devices = list(self.lab.devices.values())
        before = {d.name: d.available for d in devices}
        async with anyio.create_task_group() as tg:
            for device in devices:
                tg.start_soon(device.probe)
        back = [d for d in devices if d.available and not before[d.name]]
        async with anyio.create_task_group() as tg:
            for device in back:
                if device.readback:
                    tg.start_soon(self.lab.refresh_device, device)
        for device in devices:
            log_change(device, before[device.name])
        self.probes += 1
        self.probed.set()
        self.probed = anyio.Event()

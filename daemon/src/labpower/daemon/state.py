"""What the daemon knows of each target, kept across restarts in its state directory.

One JSON file, ``targets.json``, replaced atomically (write a temporary file, fsync it,
rename it over the old one, fsync the directory), so a reader sees either the old or the new
file, never a mix. The file carries a SHA-256 of its payload: a file that was torn or edited
anyway is detected and refused loudly (moved aside as ``targets.json.corrupt``), never
half-read.

Most writes happen off the switching path: a switch marks the store dirty and a background
task writes the newest snapshot (one write covers every change since the last, at most one
write per ``WRITE_INTERVAL``), so a switch never waits for the disk. After a SIGKILL the file
may lag the last switch by up to ``WRITE_INTERVAL`` (50 ms); right after start the daemon
reads back what the boards can tell, so only boards that cannot report their state depend on
the file (and show it as not verified). A write that fails is retried (``RETRY_INTERVAL``,
growing to ``RETRY_MAX``) until it succeeds; the failure is logged once, and its end.

Targets with ``start = "restore"`` are switched to the file's state at start, so for them the
file must never lag: the lab writes their record durably (:meth:`StateStore.save`) marked
``pending`` before it switches, and unmarked after. A record still pending at start is a
switch whose outcome never reached the disk: restore does not act on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

log = logging.getLogger("labpower.daemon.state")

FILENAME = "targets.json"
#: Shortest time between two writes of the file, seconds.
WRITE_INTERVAL = 0.05
#: First and longest wait before retrying a failed write, seconds.
RETRY_INTERVAL = 0.1
RETRY_MAX = 2.0
#: temporary files of writes in progress; a SIGKILL mid-write leaves one behind
_TEMP_PREFIX = ".targets."
FORMAT = 1
_STATES = ("on", "off", "unknown")


class StateCorrupt(Exception):
    """The state file exists but is not a whole, valid state file."""


@dataclass(frozen=True, slots=True)
class Remembered:
    """The last state the daemon knew for one target, and who made it so."""

    state: str
    since: str | None = None
    uid: int | None = None
    pid: int | None = None
    client: str | None = None
    #: a switch to ``state`` was started and its outcome not yet saved: not to be trusted
    pending: bool = False
    #: what else the daemon has to say about it (a cycle aborted by a shutdown)
    note: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> Remembered:
        if not isinstance(obj, dict) or obj.get("state") not in _STATES:
            raise StateCorrupt(f"bad target record {obj!r}")
        fields = {k: obj.get(k) for k in ("since", "uid", "pid", "client", "note")}
        for key in ("uid", "pid"):
            if fields[key] is not None and not isinstance(fields[key], int):
                raise StateCorrupt(f"bad {key} in {obj!r}")
        for key in ("since", "client", "note"):
            if fields[key] is not None and not isinstance(fields[key], str):
                raise StateCorrupt(f"bad {key} in {obj!r}")
        pending = obj.get("pending", False)
        if not isinstance(pending, bool):
            raise StateCorrupt(f"bad pending in {obj!r}")
        return cls(obj["state"], pending=pending, **fields)


def _canonical(targets: Mapping[str, Any]) -> str:
    return json.dumps(targets, sort_keys=True, separators=(",", ":"))


def _digest(targets: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(targets).encode()).hexdigest()


def encode(targets: Mapping[str, Remembered]) -> bytes:
    """The file's bytes: the payload is serialised once, for both the file and its digest."""
    payload = _canonical(
        {
            name: {
                "state": r.state,
                "since": r.since,
                "uid": r.uid,
                "pid": r.pid,
                "client": r.client,
                # only when set: files of daemons that know neither stay byte for byte
                **({"pending": True} if r.pending else {}),
                **({"note": r.note} if r.note is not None else {}),
            }
            for name, r in targets.items()
        }
    )
    digest = hashlib.sha256(payload.encode()).hexdigest()
    return f'{{"format":{FORMAT},"sha256":"{digest}","targets":{payload}}}\n'.encode()


def decode(data: bytes) -> dict[str, Remembered]:
    """:raises StateCorrupt: not a whole state file of a known format."""
    try:
        doc = json.loads(data)
    except RecursionError as exc:  # nested deeper than the parser's stack allows
        raise StateCorrupt("nested too deeply to be a state file") from exc
    except ValueError as exc:
        raise StateCorrupt(f"not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateCorrupt("unknown format")
    payload = doc.get("targets")
    if not isinstance(payload, dict) or doc.get("sha256") != _digest(payload):
        raise StateCorrupt("checksum does not match its content")
    return {name: Remembered.from_json(obj) for name, obj in payload.items()}


class StateStore:
    """The state file of one daemon."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, FILENAME)
        self._snapshot: dict[str, Remembered] = {}
        self._dirty = anyio.Event()
        self._written = 0
        self._generation = 0
        self._failing = False
        #: one write at a time, so an older snapshot never lands after a newer one
        self._lock = anyio.Lock()

    def load(self) -> dict[str, Remembered]:
        """The remembered targets; {} when there is no file yet. A corrupt file is logged as
        an error, moved aside, and treated as absent."""
        self._remove_leftovers()
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.error("cannot read state file %s: %s", self.path, exc.strerror)
            return {}
        try:
            self._snapshot = decode(data)
        except StateCorrupt as exc:
            aside = self.path + ".corrupt"
            log.error(
                "state file %s is corrupt (%s): moved to %s; starting without it",
                self.path,
                exc,
                aside,
            )
            try:
                os.replace(self.path, aside)
            except OSError:
                pass
            return {}
        return dict(self._snapshot)

    def _remove_leftovers(self) -> None:
        """Remove temporary files of writes a crash cut short (never renamed into place,
        so never part of the state): else every SIGKILL mid-write leaves one more."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if name.startswith(_TEMP_PREFIX):
                try:
                    os.unlink(os.path.join(self.directory, name))
                except OSError:
                    pass

    def remembered(self, name: str) -> Remembered | None:
        """What is remembered of target ``name`` (and will be, or was, written)."""
        return self._snapshot.get(name)

    def update(self, name: str, remembered: Remembered) -> None:
        """Record a change; the background writer persists it soon."""
        if self._snapshot.get(name) != remembered:
            self._snapshot[name] = remembered
            self._generation += 1
            self._dirty.set()

    def write_now(self) -> None:
        """Write the current snapshot atomically (blocking)."""
        self._write(encode(self._snapshot))

    def _write_snapshot(self, snapshot: Mapping[str, Remembered]) -> None:
        self._write(encode(snapshot))

    def _write(self, data: bytes) -> None:
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        dirfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    async def run(self) -> None:
        """Persist changes as they come: at most one write per :data:`WRITE_INTERVAL`, each
        covering every change since the last, so a burst of switching costs a few writes.
        A failed write is tried again, ever less often (up to :data:`RETRY_MAX` apart)."""
        retry = RETRY_INTERVAL
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            if await self._persist():
                retry = RETRY_INTERVAL
                await anyio.sleep(WRITE_INTERVAL)  # rate limit, not a wait for anything
            else:
                await anyio.sleep(retry)
                retry = min(retry * 2, RETRY_MAX)
                self._dirty.set()

    async def flush(self) -> None:
        """Write now if anything changed since the last write (at shutdown)."""
        if self._written != self._generation:
            await self._persist()

    async def save(self) -> None:
        """Write every change made so far, and wait until it is on disk.

        :raises OSError: the file could not be written (the background writer retries).
        """
        wanted = self._generation
        async with self._lock:
            if self._written >= wanted:
                return  # a write that began after the change covered it
            await self._write_current()

    async def _persist(self) -> bool:
        """Write the current snapshot; :returns: whether it was written."""
        async with self._lock:
            if self._written == self._generation:
                return True
            try:
                await self._write_current()
            except OSError:
                return False
        return True

    async def _write_current(self) -> None:
        # a copy (of frozen records) taken on the loop thread, serialised in the worker
        generation, snapshot = self._generation, dict(self._snapshot)
        try:
            await anyio.to_thread.run_sync(self._write_snapshot, snapshot)
        except OSError as exc:
            if not self._failing:  # said once, not on every switch
                log.error("cannot write state file %s: %s (retrying)", self.path, exc)
            self._failing = True
            self._dirty.set()  # the background writer tries again
            raise
        if self._failing:
            log.warning("state file %s written again", self.path)
        self._failing = False
        self._written = generation

"""Past log entries for the History method: from the journal when the daemon logs there,
else from the in-memory ring of the :class:`~labpower.daemon.logbus.LogBus`.

The journal keeps entries across daemon restarts. Only entries the daemon wrote count, told
apart by fields journald itself records and no sender can write (see
:func:`labpower.daemon.journal.own_matches`): anybody may send journald an entry with
``SYSLOG_IDENTIFIER=labpowerd`` and any ``LABPOWER_*`` fields.

Each caller sees only the entries of targets it may read (``visible``), and daemon-wide ones.

journald stores entries asynchronously, so the newest entries of this run may not be
readable yet: they are taken from the in-memory ring (every entry of this run newer than the
newest one the journal returned), so a client always sees its own last call in the history.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

import anyio.to_thread
from labpower.client.types import LEVELS
from labpower.daemon import journal
from labpower.daemon.logbus import LogBus, rfc3339

log = logging.getLogger("labpower.daemon.history")

#: Most entries one History call returns from the journal when it sets no limit.
MAX_ENTRIES = 100_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
# journal PRIORITY -> entry level
_LEVEL_OF_PRIORITY = (
    "critical",
    "critical",
    "critical",
    "error",
    "warning",
    "info",
    "info",
    "debug",
)


def parse_since(text: str, now: float | None = None) -> float:
    """A POSIX time from RFC 3339 (``2024-05-01T10:00:00Z``; without a zone it is local
    time) or from a time span back from now (``90s``, ``5m``, ``1h30m``, ``2d``; a bare
    number is seconds).

    :raises ValueError: neither form.
    """
    text = text.strip()
    now = time.time() if now is None else now
    span = text.removesuffix(" ago").removeprefix("-").strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", span):
        return _since_epoch(now - float(span), text)
    if span and re.fullmatch(rf"(?:{_RELATIVE.pattern}\s*)+", span):
        return _since_epoch(
            now - sum(float(n) * _UNITS[u] for n, u in _RELATIVE.findall(span)), text
        )
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 time or a span like 1h: {text!r}") from None
    return when.timestamp()


def _since_epoch(when: float, text: str) -> float:
    """A span too long to be a time (say 1e400 seconds) is refused; one reaching back before
    1970 means "everything"."""
    if not math.isfinite(when):
        raise ValueError(f"not a usable time span: {text[:100]!r}")
    return max(when, 0.0)


#: Whether a caller may see the entries of a target (None: of no target); see Lab.visible_to.
Visible = Callable[[str | None], bool]


class HistorySource(Protocol):
    async def __call__(
        self,
        targets: list[str] | None,
        level: str | None,
        limit: int | None,
        since: float | None,
        visible: Visible | None = None,
    ) -> list[dict[str, Any]]: ...


def _matches(
    entry: dict[str, Any],
    levelno: int,
    targets: frozenset[str] | None,
    wanted_level: int,
    since: str | None,
) -> bool:
    return (
        levelno >= wanted_level
        and (targets is None or entry.get("target") in targets)
        and (since is None or entry["time"] >= since)
    )


def memory_entries(
    bus: LogBus,
    targets: Iterable[str] | None,
    level: str | None,
    since: float | None,
    visible: Visible | None = None,
) -> list[dict[str, Any]]:
    """The in-memory ring's entries matching the filter, oldest first."""
    wanted = frozenset(targets) if targets is not None else None
    wanted_level = LEVELS[level] if level else logging.NOTSET
    # RFC 3339 times in one format (UTC, microseconds, "Z") compare as strings
    since_text = rfc3339(since) if since is not None else None
    return [
        e
        for e, levelno in bus.history
        if _matches(e, levelno, wanted, wanted_level, since_text)
        and (visible is None or visible(e.get("target")))
    ]


class MemoryHistory:
    """History from the LogBus ring only (the daemon does not log to the journal)."""

    def __init__(self, bus: LogBus) -> None:
        self.bus = bus

    async def __call__(
        self,
        targets: list[str] | None,
        level: str | None,
        limit: int | None,
        since: float | None,
        visible: Visible | None = None,
    ) -> list[dict[str, Any]]:
        found = memory_entries(self.bus, targets, level, since, visible)
        return found[-limit:] if limit else found


def entry_from_journal(fields: dict[str, Any]) -> dict[str, Any]:
    """A LogEntry (wire form) from one journal entry as systemd.journal.Reader returns it."""
    when = fields.get("__REALTIME_TIMESTAMP")
    try:
        prio = int(fields.get("PRIORITY", 6))
    except (TypeError, ValueError):
        prio = 6
    entry: dict[str, Any] = {
        "time": rfc3339(when.timestamp()) if isinstance(when, datetime) else "",
        "level": _LEVEL_OF_PRIORITY[min(max(prio, 0), 7)],
        "message": str(fields.get("MESSAGE", "")),
        "seq": _int(fields.get("LABPOWER_SEQ")) or 0,
    }
    for key, name in (
        ("target", "LABPOWER_TARGET"),
        ("device", "LABPOWER_DEVICE"),
        ("op", "LABPOWER_OP"),
        ("state", "LABPOWER_STATE"),
    ):
        if fields.get(name) is not None:
            entry[key] = str(fields[name])
    channel = _int(fields.get("LABPOWER_CHANNEL"))
    if channel is not None:
        entry["channel"] = channel
    return entry


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class JournalHistory:
    """History from the journal (every run of the daemon), topped up from memory."""

    def __init__(self, bus: LogBus, *, path: str | None = None) -> None:
        from systemd import journal as sd_journal  # only constructed where it is installed

        self.bus = bus
        self.path = path
        self._journal = sd_journal

    async def __call__(
        self,
        targets: list[str] | None,
        level: str | None,
        limit: int | None,
        since: float | None,
        visible: Visible | None = None,
    ) -> list[dict[str, Any]]:
        try:
            found, newest_seq = await anyio.to_thread.run_sync(
                self._read, targets, level, limit, since, visible
            )
        except OSError as exc:  # e.g. not allowed to read the journal: say so, serve memory
            log.warning("cannot read the journal, history comes from memory: %s", exc)
            found, newest_seq = [], 0
        found += [
            e
            for e in memory_entries(self.bus, targets, level, since, visible)
            if e["seq"] > newest_seq
        ]
        cap = limit or MAX_ENTRIES
        return found[-cap:]

    def _read(
        self,
        targets: list[str] | None,
        level: str | None,
        limit: int | None,
        since: float | None,
        visible: Visible | None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching journal entries, oldest first, and the newest seq of this run found."""
        reader = self._journal.Reader(path=self.path)
        own = journal.own_matches()
        try:
            # fields of one name are ORed, different names ANDed
            reader.add_match(f"SYSLOG_IDENTIFIER={journal.SYSLOG_IDENTIFIER}", *own)
            if targets is not None:
                if not targets:
                    return [], 0
                # matches on one field are ORed
                reader.add_match(*[f"LABPOWER_TARGET={t}" for t in targets])
            if level:
                top = journal.priority(LEVELS[level])
                reader.add_match(*[f"PRIORITY={p}" for p in range(top + 1)])
            cap = limit or MAX_ENTRIES
            found: list[dict[str, Any]] = []
            newest_seq = 0
            # newest first from the tail, so a limit reads no more than it returns
            reader.seek_tail()
            while len(found) < cap:
                fields = reader.get_previous()
                if not fields:
                    break
                when = fields.get("__REALTIME_TIMESTAMP")
                if since is not None and isinstance(when, datetime) and when.timestamp() < since:
                    break
                entry = entry_from_journal(fields)
                if fields.get("LABPOWER_RUN") == journal.RUN_ID:
                    newest_seq = max(newest_seq, entry["seq"])
                if visible is None or visible(entry.get("target")):
                    found.append(entry)
            found.reverse()
            return found, newest_seq
        finally:
            reader.close()


def history_source(bus: LogBus, from_journal: bool) -> HistorySource:
    """The journal's history where asked for and systemd-python is installed, else memory."""
    if from_journal:
        try:
            return JournalHistory(bus)
        except ImportError:
            log.warning("systemd-python is not installed: history comes from memory only")
    return MemoryHistory(bus)

"""What the sync and async clients share: socket address, calls, reply parsing, log emission."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from labpower.client.errors import INTERFACE, error_from_reply
from labpower.client.types import LEVELS, LogEntry, Reading, Target
from labpower.client.wire import Call, RemoteProtocolError, Reply

DEFAULT_SOCKET = "/run/labpower/labpower.sock"
#: Lease tokens handed to a child process: "target=token,target=token"
LEASES_ENV = "LABPOWER_LEASES"
REMOTE_LOGGER = "labpower.remote"

# LogRecord attributes that a forwarded entry must not overwrite.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def socket_path(path: str | os.PathLike[str] | None) -> str:
    """The socket to use: the argument, else $LABPOWER_SOCKET, else the system socket."""
    if path is not None:
        return os.fspath(path)
    return os.environ.get("LABPOWER_SOCKET") or DEFAULT_SOCKET


def lease_tokens() -> dict[str, str]:
    """Lease tokens inherited through $LABPOWER_LEASES (set by ``labpower lock``)."""
    tokens = {}
    for item in os.environ.get(LEASES_ENV, "").split(","):
        target, sep, token = item.strip().partition("=")
        if sep and target and token:
            tokens[target] = token
    return tokens


def format_tokens(tokens: Mapping[str, str]) -> str:
    return ",".join(f"{t}={tok}" for t, tok in tokens.items())


def acquire_parameters(target: str, name: str | None, timeout: float | None) -> dict[str, Any]:
    params: dict[str, Any] = {"target": target}
    if name is not None:
        params["name"] = name
    if timeout is not None:
        params["timeout"] = timeout
    return params


def power_call(member: str, parameters: Mapping[str, Any] | None = None, **flags: bool) -> Call:
    return Call(f"{INTERFACE}.{member}", dict(parameters or {}), **flags)


def check(reply: Reply) -> Mapping[str, Any]:
    """The reply's parameters, or the matching exception raised."""
    if reply.error is not None:
        raise error_from_reply(reply.error, reply.parameters)
    return reply.parameters


def op_result(params: Mapping[str, Any]) -> tuple[Target, int]:
    seq = params.get("log_seq")
    if not isinstance(seq, int):
        raise RemoteProtocolError(f"reply without integer log_seq: {dict(params)!r}")
    return Target.from_wire(params.get("target")), seq


def targets_result(params: Mapping[str, Any]) -> list[Target]:
    items = params.get("targets")
    if not isinstance(items, list):
        raise RemoteProtocolError("List reply without a 'targets' array")
    return [Target.from_wire(t) for t in items]


def reading_result(params: Mapping[str, Any]) -> Reading:
    return Reading.from_wire(params.get("reading"))


def entries_result(params: Mapping[str, Any]) -> list[LogEntry]:
    items = params.get("entries")
    if not isinstance(items, list):
        raise RemoteProtocolError("History reply without an 'entries' array")
    return [LogEntry.from_wire(e) for e in items]


def read_parameters(target: str, count: int | None, interval: float | None) -> dict[str, Any]:
    if count is not None and count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    params: dict[str, Any] = {"target": target}
    if interval is not None:
        params["interval"] = interval
    if count is not None:
        params["count"] = count
    return params


def filter_parameters(targets: Iterable[str] | None, level: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if targets is not None:
        params["targets"] = list(targets)
    if level is not None:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        params["level"] = level
    return params


class EntryFilter:
    """Client-side filter of a log stream. The stream itself always carries every entry, so a
    call can wait for its own ``log_seq`` whatever the filter drops."""

    __slots__ = ("levelno", "targets")

    def __init__(self, targets: Iterable[str] | None, level: str | None) -> None:
        if level is not None and level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        self.targets = frozenset(targets) if targets is not None else None
        self.levelno = LEVELS[level] if level is not None else logging.NOTSET

    def __call__(self, entry: LogEntry) -> bool:
        if entry.levelno < self.levelno:
            return False
        return self.targets is None or entry.target in self.targets


def emit(entry: LogEntry, prefix: str = REMOTE_LOGGER) -> None:
    """Re-emit a daemon log entry on ``<prefix>.<target>`` (``<prefix>`` when daemon-wide).

    The record carries the entry's fields as attributes (``target``, ``device``, ``seq``,
    ``daemon_time`` and any extra field). Records go only to local handlers: nothing here
    sends anything back to the daemon.
    """
    logger = logging.getLogger(f"{prefix}.{entry.target}" if entry.target else prefix)
    if not logger.isEnabledFor(entry.levelno):
        return
    extra: dict[str, Any] = {
        k: v for k, v in (entry.extra or {}).items() if k not in _RESERVED and k != "time"
    }
    extra.update(target=entry.target, device=entry.device, seq=entry.seq, daemon_time=entry.time)
    record = logger.makeRecord(
        logger.name, entry.levelno, "labpowerd", 0, entry.message, (), None, extra=extra
    )
    logger.handle(record)


def log_entry_of(reply: Reply) -> LogEntry | None:
    params = check(reply)
    entry = params.get("entry")
    return None if entry is None else LogEntry.from_wire(entry)

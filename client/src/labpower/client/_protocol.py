"""What the sync and async clients share: socket address, every operation's request and
result (:class:`Op`), log emission, and what a broken connection's error says.

Each operation of the client API is built here once, as an :class:`Op`: the call to send and
how to turn its reply's parameters into the result. :class:`~labpower.client.sync.Client`
and :class:`~labpower.client.aio.AsyncClient` only do the I/O.
"""

from __future__ import annotations

import os

from labpower.client.errors import INTERFACE, LabpowerError, LocalProtocolError, error_from_reply
from labpower.client.frozen import Frozen
from labpower.client.transport import Address
from labpower.client.types import LEVELS, LogEntry, Reading, Target
from labpower.client.wire import Call, RemoteProtocolError, Reply, encode

# typing is not imported at run time (see frozen.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any, Generic, TypeVar
else:
    from labpower.client._standins import Generic, TypeVar

T = TypeVar("T")

DEFAULT_SOCKET = "/run/labpower/labpower.sock"
#: Lease tokens handed to a child process: "target=token,target=token"
LEASES_ENV = "LABPOWER_LEASES"
REMOTE_LOGGER = "labpower.remote"

# logging is imported by the code that forwards entries only: the ``labpower`` command
# starts without it.


#: The environment variable naming a lab inventory.
LAB_ENV = "LABPOWER_LAB"


def default_lab_file() -> str:
    """$LABPOWER_LAB, else $XDG_CONFIG_HOME/labpower/lab.toml (``~/.config`` by default)."""
    env = os.environ.get(LAB_ENV)
    if env:
        return env
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "labpower", "lab.toml")


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
        self.levelno = LEVELS[level] if level is not None else 0  # logging.NOTSET

    def __call__(self, entry: LogEntry) -> bool:
        if entry.levelno < self.levelno:
            return False
        return self.targets is None or entry.target in self.targets


def _reserved() -> set[str]:
    """LogRecord attributes that a forwarded entry must not overwrite (found once)."""
    if not _RESERVED:
        import logging

        _RESERVED.update(logging.makeLogRecord({}).__dict__, ("message", "asctime"))
    return _RESERVED


_RESERVED: set[str] = set()


def emit(entry: LogEntry, prefix: str = REMOTE_LOGGER) -> None:
    """Re-emit a daemon log entry on ``<prefix>.<target>`` (``<prefix>`` when daemon-wide).

    The record carries the entry's fields as attributes (``target``, ``device``, ``seq``,
    ``daemon_time`` and any extra field). Records go only to local handlers: nothing here
    sends anything back to the daemon.
    """
    import logging

    logger = logging.getLogger(f"{prefix}.{entry.target}" if entry.target else prefix)
    if not logger.isEnabledFor(entry.levelno):
        return
    extra: dict[str, Any] = {
        k: v for k, v in (entry.extra or {}).items() if k not in _reserved() and k != "time"
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


# -- the operations


class Op(Frozen, Generic[T]):
    """One operation: the call to send, and how each reply's parameters become its result.

    ``log_seq`` marks a switching call: inside a log stream, the client returns its result
    only after the entries up to the reply's ``log_seq`` were emitted.
    """

    __match_args__ = ("call", "parse", "switching", "wire")
    __slots__ = __match_args__
    call: Call
    parse: Callable[[Mapping[str, Any]], T]
    switching: bool
    #: the call's bytes (``wire.encode(call)``), for an operation built once and sent often
    wire: bytes | None

    def __init__(
        self,
        call: Call,
        parse: Callable[[Mapping[str, Any]], T],
        switching: bool = False,
        wire: bytes | None = None,
    ) -> None:
        self._fill(call, parse, switching, wire)


def _target(params: Mapping[str, Any]) -> Target:
    return Target.from_wire(params.get("target"))


def _refresh(params: dict[str, Any], refresh: bool) -> dict[str, Any]:
    # "refresh": read the boards again rather than answer from what the daemon knows
    if refresh:
        params["refresh"] = True
    return params


def list_op(refresh: bool = False, known_only: bool = False) -> Op[list[Target]]:
    params = _refresh({}, refresh)
    if known_only:  # no board read: the names, and the states the daemon knows
        params["known_only"] = True
    return Op(power_call("List", params), targets_result)


def get_op(target: str, refresh: bool = False) -> Op[Target]:
    return Op(power_call("Get", _refresh({"target": target}, refresh)), _target)


#: Switching operations built already, by (member, target, lease token): a script switches
#: the same few targets over and over, and building and encoding the call each time cost a
#: tenth of the client's work per call. Bounded: emptied when full.
_switches: dict[tuple[str, str, str | None], Op[tuple[Target, int]]] = {}
_SWITCHES_KEPT = 256


def switch_op(
    tokens: Mapping[str, str], member: str, target: str, delay: float | None = None
) -> Op[tuple[Target, int]]:
    """On, Off or Cycle, with the lease token this client holds for the target (if any).

    :raises LocalProtocolError: the call cannot be encoded.
    """
    token = tokens.get(target)
    if delay is not None:
        return _switch_op(member, target, token, delay)
    key = (member, target, token)
    op = _switches.get(key)
    if op is None:
        if len(_switches) >= _SWITCHES_KEPT:
            _switches.clear()
        op = _switches[key] = _switch_op(member, target, token, None)
    return op


def _switch_op(
    member: str, target: str, token: str | None, delay: float | None
) -> Op[tuple[Target, int]]:
    params: dict[str, Any] = {"target": target}
    if delay is not None:
        params["delay"] = delay
    if token is not None:
        params["lease"] = token
    call = power_call(member, params)
    return Op(call, op_result, switching=True, wire=encode(call))


def read_op(target: str, count: int | None, interval: float | None) -> Op[Reading]:
    """One reading per reply; a call with "more" unless just one reading is asked for.

    :raises ValueError: ``count`` is below 1.
    """
    params = read_parameters(target, count, interval)
    return Op(power_call("Read", params, more=count != 1), reading_result)


def acquire_op(
    tokens: dict[str, str], target: str, name: str | None, timeout: float | None
) -> Op[tuple[Target, str]]:
    """Acquire; the token of the lease is kept in ``tokens`` once the daemon granted it."""

    def parse(params: Mapping[str, Any]) -> tuple[Target, str]:
        token = params.get("token")
        if not isinstance(token, str):
            raise RemoteProtocolError(f"Acquire reply without a string token: {dict(params)!r}")
        tokens[target] = token
        return _target(params), token

    return Op(power_call("Acquire", acquire_parameters(target, name, timeout)), parse)


def release_op(tokens: dict[str, str], target: str, force: bool = False) -> Op[Target]:
    """Release; the token leaves ``tokens`` now (the lease is given up whatever comes).
    ``force``: break the lease whoever holds it (root and the daemon's admin groups)."""
    params: dict[str, Any] = {"target": target}
    token = tokens.pop(target, None)
    if token is not None:
        params["token"] = token
    if force:
        params["force"] = True
    return Op(power_call("Release", params), _target)


def history_op(
    targets: Iterable[str] | None, level: str | None, limit: int | None, since: str | None
) -> Op[list[LogEntry]]:
    """:raises ValueError: ``level`` is not a level name."""
    params = filter_parameters(targets, level)
    if limit is not None:
        params["limit"] = limit
    if since is not None:
        params["since"] = since
    return Op(power_call("History", params), entries_result)


def _entry(params: Mapping[str, Any]) -> LogEntry | None:
    entry = params.get("entry")
    return None if entry is None else LogEntry.from_wire(entry)


def logs_op(targets: Iterable[str] | None, level: str | None) -> Op[LogEntry | None]:
    """A live log subscription: None for the first reply (the subscription is live), then
    one entry per reply. :raises ValueError: ``level`` is not a level name."""
    return Op(power_call("Logs", filter_parameters(targets, level), more=True), _entry)


def check_subscribed(first: Reply) -> None:
    """:raises LabpowerError: the first reply of a Logs subscription is not the empty one
    that says the subscription is live."""
    if log_entry_of(first) is not None or not first.continues:
        raise LabpowerError("Logs subscription did not start with an empty reply")


# -- errors of a connection


def refuse_more(call: Call) -> None:
    """``call()`` takes one reply: a call with "more" goes to ``stream()``.

    :raises LocalProtocolError: it has "more" (nothing was sent).
    """
    if call.more:
        raise LocalProtocolError(
            f"{call.method} with 'more' has several replies: use stream(), not call()"
        )


def explain(exc: RemoteProtocolError, address: str, first: bool) -> RemoteProtocolError:
    """The error to raise for a daemon's broken reply: what came in, and from where.

    ``first``: nothing valid came on the connection before. Over ssh:// that means the bytes
    were most likely printed by the remote login shell (a banner, a profile script), not by
    the bridge.
    """
    text = exc.data.decode(errors="replace")
    if first and exc.data and Address.parse(address).is_ssh:
        printed = text.partition("{")[0] or text
        return RemoteProtocolError(
            f"labpowerd at {address}: the remote shell printed {printed!r} before the bridge "
            "started (make the login quiet for non-interactive sessions, or restrict the "
            'key to command="labpower bridge")',
            exc.data,
        )
    came = f": {text!r}" if text else ""
    return RemoteProtocolError(
        f"labpowerd at {address} broke the varlink protocol: {exc.reason}{came}", exc.data
    )

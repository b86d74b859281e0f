"""The ``labpower`` command: switch, inspect and watch lab power through labpowerd.

Every command talks to the daemon through :class:`labpower.client.Client` only, so the
command works wherever the client distribution is installed alone. With a lab inventory
(:mod:`labpower.client.lab`) each target is looked up on its host; ``labpower bridge`` is the
remote end of ``ssh://`` addresses (:mod:`labpower.client.transport`).

Exit codes: 0 ok, 1 an operation failed (the daemon refused it, or is not reachable; one line
on stderr says why; ``list`` over an inventory: some host was not reachable), 2 usage error,
130 interrupted (Ctrl-C), 141 stdout closed early (``labpower logs -f | head``);
``labpower lock`` returns its COMMAND's status (127: not found, 126: not executable).
"""

from __future__ import annotations

import os
import sys

from labpower.client import _protocol as p
from labpower.client.errors import DaemonUnreachable, LabpowerError, ProtocolError
from labpower.client.escape import escape
from labpower.client.formatting import (
    format_entry,
    format_lab_table,
    format_reading,
    format_state,
    format_table,
)
from labpower.client.sync import Client
from labpower.client.transport import Address, relay
from labpower.client.types import LEVELS

# Imported where they are used, not here: argparse (for what the quick parser does not read),
# json (--json), socket (bridge), typing and contextlib (for the checker only, see
# _standins.py). A plain ``labpower on`` starts without them (issue #18).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import contextmanager
    from typing import Any, NoReturn, TypeVar

    from labpower.client.lab import Lab
    from labpower.client.types import LogEntry, Target

    T = TypeVar("T")
else:
    from labpower.client._standins import contextmanager

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

#: Seconds to wait for each reply, unless --timeout says otherwise.
DEFAULT_TIMEOUT = 60.0
#: Seconds between readings of ``labpower read``, unless --interval says otherwise.
DEFAULT_INTERVAL = 1.0

PROG = "labpower"

EPILOG = f"""\
The daemon is found at --socket, else through the lab inventory --lab, else $LABPOWER_SOCKET,
else the inventory $LABPOWER_LAB, else the inventory ~/.config/labpower/lab.toml if it exists,
else {p.DEFAULT_SOCKET}. A socket may be ssh://[user@]host[:port][/path/to/socket]; with an
inventory, each target is looked up on its host ("HOST/TARGET" names the host).
--socket, --lab, --json and --timeout may also follow the command name.

With --json, commands that finish print one JSON document (list, status, on, off, cycle: an
array of target objects); read and logs print one JSON object per line.

exit status: 0 ok, 1 an operation failed (message on stderr; for list over an inventory:
a host was not reachable, the others are still shown), 2 usage error, 130 interrupted by
Ctrl-C. lock: the status of its COMMAND.

examples:
  labpower list
  labpower on dut1 dut2
  labpower cycle --delay 2 dut1
  labpower read -n 0 --interval 0.5 dut1
  labpower logs -f --level warning
  labpower --json status dut1 | jq -r '.[0].state'
  labpower lock dut1 -- ./flash-and-test.sh
  labpower --socket ssh://lab@bench2 list
"""


class Failed(Exception):
    """Some, but not necessarily all, of a command's work failed; already reported."""


class Usage(Exception):
    """The command line asks for something impossible; the message says what (exit 2)."""


# -- output


def _emit(line: str, *, flush: bool = False) -> None:
    # sys.stdout is looked up on every call so that callers (and tests) may swap it.
    print(line, file=sys.stdout, flush=flush)


def _emit_json(doc: Any, *, flush: bool = False) -> None:
    import json

    _emit(json.dumps(doc, ensure_ascii=False), flush=flush)


def _complain(message: str) -> None:
    # messages quote what daemons and other clients chose (lease names, targets)
    print(f"{PROG}: {escape(message, 4096)}", file=sys.stderr, flush=True)


@contextmanager
def _closing(it: Iterator[T]) -> Iterator[Iterator[T]]:
    """Close a client's stream (a generator holding its own connection) on the way out, also
    when Ctrl-C interrupts it, rather than whenever it is garbage collected."""
    try:
        yield it
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _inventory(args: Args) -> str | None:
    """The lab inventory to use, or None for a single daemon (see EPILOG for the order)."""
    if args.socket is not None:
        return None
    if args.lab is not None:
        return str(args.lab)
    if os.environ.get("LABPOWER_SOCKET"):
        return None
    if os.environ.get(p.LAB_ENV):
        return os.environ[p.LAB_ENV]
    default = p.default_lab_file()
    return default if os.path.isfile(default) else None


class _Daemons:
    """Where a command's targets live: the one daemon, or each target's host of the lab."""

    def __init__(self, args: Args, extra: float = 0.0) -> None:
        timeout = args.timeout + extra
        self.inventory = _inventory(args)
        self.lab: Lab | None = None
        if self.inventory is not None:
            from labpower.client.lab import Lab  # only with an inventory: not at start

            self.lab = Lab(self.inventory, timeout=timeout)
        self.client = Client(args.socket, timeout=timeout) if self.lab is None else None

    def __enter__(self) -> _Daemons:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lab is not None:
            self.lab.close()
        if self.client is not None:
            self.client.close()

    def locate(self, target: str) -> tuple[Client, str]:
        """The client serving ``target`` and the target's name there.

        :raises TargetNotLocated: (inventory) no reachable host has it.
        """
        if self.lab is None:
            assert self.client is not None
            return self.client, target
        host, name = self.lab.locate(target)
        return self.lab.client(host), name

    def child_env(self) -> dict[str, str]:
        """Variables that make a child's own ``labpower`` find the same daemons."""
        if self.lab is not None:
            assert self.inventory is not None
            return {p.LAB_ENV: self.inventory}
        assert self.client is not None
        return {"LABPOWER_SOCKET": self.client.path}


def _show_targets(args: Args, targets: Sequence[Target]) -> None:
    if args.json:
        _emit_json([t.to_dict() for t in targets])
    else:
        _emit(format_table(targets))


def cmd_list(args: Args) -> None:
    refresh = getattr(args, "refresh", False)
    with _Daemons(args) as daemons:
        if daemons.lab is None:
            assert daemons.client is not None
            _show_targets(args, daemons.client.targets(refresh=refresh))
            return
        if refresh:
            raise Usage("status --refresh: only with one daemon (--socket), not an inventory")
        hosts = list(daemons.lab.survey())
    for h in hosts:
        if not h.reachable:
            _complain(f"host {h.host.name} ({h.host.socket}) not reachable: {h.error}")
    if args.json:
        _emit_json([{"host": h.host.name, **t.to_dict()} for h in hosts for t in h.targets])
    else:
        _emit(format_lab_table(hosts))
    if not all(h.reachable for h in hosts):
        raise Failed


def _each_target(
    args: Args,
    verb: str,
    action: Callable[[Client, str], Target],
    extra_timeout: float = 0.0,
) -> None:
    """Run ``action`` on every target named, in order, and print each result.

    A target the daemon refuses (unknown, board unavailable, ...) is reported and the others
    still run; an unreachable daemon ends the command (with an inventory: fails the targets
    of that host only).

    :raises Failed: at least one target failed.
    :raises DaemonUnreachable: no daemon, or it went away.
    """
    done: list[Target] = []
    failed = False
    with _Daemons(args, extra_timeout) as daemons:
        for name in args.targets:
            try:
                lab, local = daemons.locate(name)
                target = action(lab, local)
            except DaemonUnreachable as exc:
                if daemons.lab is None:
                    raise
                _complain(f"{verb} {name}: {exc}")
                failed = True
                continue
            except LabpowerError as exc:
                _complain(f"{verb} {name}: {exc}")
                failed = True
                continue
            done.append(target)
            if not args.json:
                _emit(format_state(target), flush=True)
    if args.json:
        _emit_json([t.to_dict() for t in done])
    if failed:
        raise Failed


def cmd_status(args: Args) -> None:
    if not args.targets:
        cmd_list(args)
        return
    _each_target(args, "status", lambda lab, name: lab.get(name, refresh=args.refresh))


def cmd_unlock(args: Args) -> None:
    """Give back leases this shell holds ($LABPOWER_LEASES); with --force (root or a
    member of the daemon's admin_groups) break them whoever holds them."""
    _each_target(args, "unlock", lambda lab, name: lab.release(name, force=args.force))


def cmd_on(args: Args) -> None:
    _each_target(args, "on", lambda lab, name: lab.on(name))


def cmd_off(args: Args) -> None:
    _each_target(args, "off", lambda lab, name: lab.off(name))


def cmd_cycle(args: Args) -> None:
    delay: float | None = args.delay
    _each_target(args, "cycle", lambda lab, name: lab.cycle(name, delay), delay or 0.0)


def cmd_read(args: Args) -> None:
    count: int | None = args.count or None  # 0: until interrupted
    interval: float = args.interval
    with _Daemons(args, interval) as daemons:
        lab, local = daemons.locate(args.target)
        with _closing(lab.read(local, count, interval)) as it:
            for reading in it:
                if args.json:
                    _emit_json({"target": args.target, **reading.to_dict()}, flush=True)
                else:
                    _emit(format_reading(args.target, reading), flush=True)


def _print_entry(args: Args, entry: LogEntry) -> None:
    if args.json:
        _emit_json(entry.to_dict(), flush=True)
    else:
        _emit(escape(format_entry(entry), 65536), flush=True)


def _history(lab: Client, targets: list[str] | None, args: Args) -> list[LogEntry]:
    if args.limit == 0:
        return []
    return lab.history(targets, args.level, args.limit, since=args.since)


def _log_daemon(daemons: _Daemons, names: list[str]) -> tuple[Client, list[str] | None]:
    """The one daemon whose log ``logs`` shows, and the target names there.

    :raises Usage: with an inventory, no targets or targets on several hosts.
    """
    if daemons.lab is None:
        assert daemons.client is not None
        return daemons.client, names or None
    if not names:
        raise Usage("logs: with a lab inventory, name the targets (or give --socket)")
    located = [daemons.locate(n) for n in names]
    clients = {id(c): c for c, _ in located}
    if len(clients) > 1:
        raise Usage("logs: the targets are on different hosts; show one host at a time")
    return located[0][0], [local for _, local in located]


def cmd_logs(args: Args) -> None:
    with _Daemons(args) as daemons:
        lab, targets = _log_daemon(daemons, args.targets)
        if not args.follow:
            for entry in _history(lab, targets, args):
                _print_entry(args, entry)
            return
        # Gap-free following: subscribe first and wait for the subscription's first (empty)
        # reply, after which the daemon pushes every new entry to us. Only then fetch the
        # history: it holds everything logged up to that moment, including any entry that
        # was also pushed to the subscription in between. Print the history, and from the
        # live stream only entries newer than the newest one printed (seq is daemon-wide and
        # increasing, and both calls carry the same filter). No entry is lost between the
        # two calls and none is printed twice.
        # The subscription has no timeout: a quiet daemon is not a failure.
        follower = Client(lab.path, timeout=None)
        logs = p.logs_op(targets, args.level)
        with _closing(follower._stream(logs.call, logs.parse)) as live:
            next(live, None)  # the subscription is live once its first reply arrived
            newest = -1
            for entry in _history(lab, targets, args):
                _print_entry(args, entry)
                newest = entry.seq
            for new in live:
                if new is not None and new.seq > newest:
                    _print_entry(args, new)
        # The daemon ended the stream without an error (it does not normally do that).
        raise DaemonUnreachable(follower.path, "the daemon ended the log stream")


def cmd_lock(args: Args) -> int:
    """Hold the target's lease while COMMAND runs; return COMMAND's exit status.

    COMMAND gets $LABPOWER_LEASES with the lease token (and how to reach the daemon), so its
    own ``labpower`` and Client calls switch the target under the lease.
    """
    import shlex  # lock only: the other commands start without it

    command: list[str] = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise Usage("lock: no COMMAND given: labpower lock TARGET [--name N] -- COMMAND...")
    name = args.name if args.name is not None else shlex.join(command)[:120]
    with _Daemons(args) as daemons:
        lab, local = daemons.locate(args.target)
        _, token = lab.acquire(local, name, args.lease_timeout)
        try:
            tokens = {**p.lease_tokens(), local: token}
            env = {**os.environ, **daemons.child_env(), p.LEASES_ENV: p.format_tokens(tokens)}
            return _run_child(command, env)
        finally:
            try:
                lab.release(local)
            except DaemonUnreachable:
                pass  # the lease ended with the connection
            except LabpowerError as exc:  # e.g. it timed out and somebody else took it
                _complain(f"lock {args.target}: releasing the lease: {exc}")


def _run_child(command: Sequence[str], env: dict[str, str]) -> int:
    """Run ``command`` to its end; its exit status, shell style (128+N: killed by signal N)."""
    import subprocess  # lock only: the other commands start without it

    try:
        proc = subprocess.Popen(list(command), env=env)
    except FileNotFoundError:
        _complain(f"lock: {command[0]}: command not found")
        return 127
    except OSError as exc:
        _complain(f"lock: {command[0]}: {exc.strerror or exc}")
        return 126
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:
            # The terminal sent SIGINT to the command too: let it finish its own way, the
            # lease is released after it
            continue
    return 128 - code if code < 0 else code


def cmd_bridge(args: Args) -> None:
    """Relay bytes between stdin/stdout and the daemon's local socket until either side
    closes (the remote end of ``ssh://`` addresses).

    :raises DaemonUnreachable: the local socket does not answer.
    """
    import socket

    path = p.socket_path(args.socket)
    if Address.parse(path).is_ssh:
        raise Usage(f"bridge: {path} is not a local socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            raise DaemonUnreachable(path, exc.strerror or str(exc)) from exc
        relay(sys.stdin.fileno(), sys.stdout.fileno(), sock)
    finally:
        sock.close()


# -- argument parsing


class Args:
    """A parsed command line: the options and arguments as attributes, as in argparse's
    Namespace (the full parser fills one of these; so does :func:`quick_parse`)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Args) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like Namespace

    def __repr__(self) -> str:
        return f"Args({', '.join(f'{k}={v!r}' for k, v in sorted(vars(self).items()))})"

    if TYPE_CHECKING:  # any attribute: what the command's arguments are (as Namespace)

        def __getattr__(self, name: str) -> Any: ...


def _bad_value(message: str) -> Exception:
    """The error an option's type function raises: argparse shows it as it is."""
    import argparse

    return argparse.ArgumentTypeError(message)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad_value(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise _bad_value(f"must be a positive number of seconds: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad_value(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise _bad_value(f"must be zero or more seconds: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _bad_value(f"not a whole number: {text!r}") from None
    if value < 0:
        raise _bad_value(f"must be zero or more: {text!r}")
    return value


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # The same options on the main parser (with defaults) and on every command (without
    # defaults, so that a value given before the command is not reset after it).
    import argparse

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=default(None),
        help="the daemon's socket: a path or ssh://[user@]host[:port][/path] (default: "
        f"$LABPOWER_SOCKET, else a lab inventory, else {p.DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--lab",
        metavar="FILE",
        default=default(None),
        help="the lab inventory: which host has which target (default: $LABPOWER_LAB, else "
        "~/.config/labpower/lab.toml if it exists)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="machine-readable output: one JSON document, or JSON lines for read and logs",
    )
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=_positive_float,
        default=default(DEFAULT_TIMEOUT),
        help=f"seconds to wait for the daemon's answer (default: {DEFAULT_TIMEOUT:g})",
    )


def _status_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("targets", nargs="*", metavar="TARGET", help="targets to show")
    sub.add_argument(
        "--refresh",
        action="store_true",
        help="read the state from the boards again (default: what the daemon knows)",
    )


def _switch_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("targets", nargs="+", metavar="TARGET", help="targets to switch")


def _cycle_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--delay",
        metavar="S",
        type=_non_negative_float,
        default=None,
        help="seconds to stay off (default: the target's cycle_delay in the daemon's config)",
    )
    sub.add_argument("targets", nargs="+", metavar="TARGET", help="targets to power-cycle")


def _read_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "-n",
        "--count",
        metavar="COUNT",
        type=_non_negative_int,
        default=1,
        help="number of readings; 0 reads until interrupted (default: 1)",
    )
    sub.add_argument(
        "--interval",
        metavar="S",
        type=_positive_float,
        default=DEFAULT_INTERVAL,
        help=f"seconds between readings (default: {DEFAULT_INTERVAL:g})",
    )
    sub.add_argument("target", metavar="TARGET", help="the target to measure")


def _logs_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-f", "--follow", action="store_true", help="follow new entries live")
    sub.add_argument(
        "--level",
        choices=list(LEVELS),
        default=None,
        help="only entries at this level or above",
    )
    sub.add_argument(
        "-n",
        "--limit",
        metavar="LIMIT",
        type=_non_negative_int,
        default=None,
        help="print at most the newest LIMIT past entries (default: all the daemon holds)",
    )
    sub.add_argument(
        "--since",
        metavar="WHEN",
        default=None,
        help="only past entries since WHEN: an RFC 3339 time, or a span back from now "
        "such as 90s, 15m, 1h30m, 2d (read from the journal when the daemon logs there, "
        "so it reaches back across daemon restarts)",
    )
    sub.add_argument(
        "targets", nargs="*", metavar="TARGET", help="only entries about these targets"
    )


def _lock_args(sub: argparse.ArgumentParser) -> None:
    import argparse

    sub.add_argument(
        "--name",
        metavar="N",
        default=None,
        help="who holds the lease, as others see it (default: the command line)",
    )
    sub.add_argument(
        "--lease-timeout",
        metavar="S",
        type=_positive_float,
        default=None,
        help="end the lease after S seconds even if COMMAND still runs (default: never)",
    )
    sub.add_argument("target", metavar="TARGET", help="the target to hold")
    sub.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND...",
        help="the command to run, and its arguments",
    )


def _unlock_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--force", action="store_true", help="break the lease whoever holds it (admins only)"
    )
    sub.add_argument("targets", nargs="+", metavar="TARGET", help="targets to unlock")


def cmd_import_pdudaemon(args: Args) -> int:
    # imported here: the other commands start without it
    import argparse

    from labpower.client.pdudaemon import importer

    return importer.run(argparse.Namespace(**vars(args)))


def _import_pdudaemon_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("config", metavar="PDUDAEMON_CONF", help="e.g. /etc/pdudaemon/pdudaemon.conf")
    sub.add_argument("-o", "--output", metavar="FILE", help="write here (a new file), not stdout")
    sub.add_argument(
        "--secrets-dir",
        metavar="DIR",
        help="where the config names the files for SNMP communities pdudaemon's config does "
        "not hold (default: /etc/labpower)",
    )


#: Every command, in the order --help lists them: name, what runs it, summary, description,
#: what adds its own arguments.
COMMANDS: tuple[
    tuple[
        str,
        Callable[[Args], int | None],
        str,
        str,
        Callable[[argparse.ArgumentParser], None] | None,
    ],
    ...,
] = (
    (
        "list",
        cmd_list,
        "show every target as a table",
        "Show every target: its state, whether the state was read back from the board "
        "(VERIFIED), its device and channel, whether the device answers (AVAILABLE), and "
        "when this daemon last switched it (SINCE). With --json: an array of target objects.",
        None,
    ),
    (
        "status",
        cmd_status,
        "show the state of targets",
        "Show each target's state, e.g. 'dut1: on (verified)'. Without targets: the same as "
        "'list'. With --json: an array of target objects.",
        _status_args,
    ),
    *(
        (
            name,
            run,
            verb,
            f"{verb[0].upper()}{verb[1:]}, in the order given, and print each resulting "
            "state. A target that fails is reported and the others are still switched.",
            _switch_args,
        )
        for name, run, verb in (
            ("on", cmd_on, "switch targets on"),
            ("off", cmd_off, "switch targets off"),
        )
    ),
    (
        "cycle",
        cmd_cycle,
        "switch targets off, wait, and on again",
        "Power-cycle targets, in the order given: off, wait, on. Prints each resulting state.",
        _cycle_args,
    ),
    (
        "read",
        cmd_read,
        "measure a target's supply",
        "Print one line per reading: voltage (V), current (A), apparent power (VA).",
        _read_args,
    ),
    (
        "logs",
        cmd_logs,
        "show (and follow) the daemon's log",
        "Print the log entries the daemon still holds, oldest first, as "
        "'TIME LEVEL TARGET: MESSAGE'. With -f, keep printing new entries as they happen, "
        "until interrupted. Targets limit the output to their entries.",
        _logs_args,
    ),
    (
        "lock",
        cmd_lock,
        "run a command while holding a target's lease",
        "Take the target's lease (others can no longer switch it), run COMMAND, give the "
        "lease back, and exit with COMMAND's status. COMMAND and the labpower commands or "
        "scripts it runs may switch the target: they get the lease's token in "
        f"${p.LEASES_ENV}. Fails at once if somebody else holds the lease.",
        _lock_args,
    ),
    (
        "unlock",
        cmd_unlock,
        "give back or break targets' leases",
        "Give back the leases of targets that this shell holds (their tokens are in "
        f"${p.LEASES_ENV}). With --force, break a lease whoever holds it: for root and "
        "members of the daemon's admin_groups; the daemon logs who broke whose lease.",
        _unlock_args,
    ),
    (
        "import-pdudaemon",
        cmd_import_pdudaemon,
        "write labpowerd.toml devices and targets from a pdudaemon config",
        "Read pdudaemon's config (JSON) and write labpowerd.toml devices and targets for "
        "every PDU labpower has a backend for: a target per port, with pdudaemon = "
        '"PDU:PORT" and its aliases, so pdudaemon clients keep their names. PDUs and '
        "aliases left out are named on stderr; the exit status is then 1.",
        _import_pdudaemon_args,
    ),
    (
        "bridge",
        cmd_bridge,
        "relay stdin/stdout to the local daemon (for ssh:// addresses)",
        "Connect to the daemon's local socket and copy bytes between it and stdin/stdout "
        "until either side closes. A client given ssh://host runs 'labpower bridge' on that "
        "host through ssh.",
        None,
    ),
)

# The main parser's options: whether each takes a value (their type functions are below).
_MAIN_OPTIONS = {"--socket": True, "--lab": True, "--json": False, "--timeout": True}


def _option(
    argv: Sequence[str], i: int, known: dict[str, bool]
) -> tuple[str, str | None, int] | None:
    """The option at ``argv[i]``, if it is one of ``known`` spelled out in full with its value
    where argparse takes it from (``--opt VALUE``, ``--opt=VALUE``): its name, its value
    (None for a flag) and where the next word is. None for anything else."""
    name, eq, value = argv[i].partition("=")
    takes_value = known.get(name)
    if takes_value is None or (eq and not takes_value):
        return None
    if not takes_value or eq:
        return name, value if eq else None, i + 1
    # argparse takes a word starting with "-" for an option, not a value
    if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
        return None
    return name, argv[i + 1], i + 2


def _main_options(argv: Sequence[str]) -> tuple[int, list[tuple[str, str | None]]] | None:
    """Where the command's name is in ``argv``, after main options spelled out in full, and
    those options; None when the words before it are anything else."""
    names = {c[0] for c in COMMANDS}
    given: list[tuple[str, str | None]] = []
    i = 0
    while i < len(argv):
        if argv[i] in names:
            return i, given
        option = _option(argv, i, _MAIN_OPTIONS)
        if option is None:
            return None
        name, value, i = option
        given.append((name, value))
    return None


def command_named(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, when that is certain before parsing: the first word after
    main options spelled out in full (``--json``, ``--socket PATH``, ``--socket=PATH``, ...).
    None for anything else (--help, an abbreviated option, an unknown command): the full
    parser then reads it, and says what is wrong the way it always does."""
    found = _main_options(argv)
    return None if found is None else argv[found[0]]


#: The commands :func:`quick_parse` reads: how many targets each takes at least (None: it
#: takes none), and its own options (name: its type function, None for a flag). They must
#: be what the command's parser (``_status_args``...) defines: a test compares the two.
_QUICK: dict[str, tuple[int | None, dict[str, Callable[[str], float] | None]]] = {
    "list": (None, {}),
    "status": (0, {"--refresh": None}),
    "on": (1, {}),
    "off": (1, {}),
    "cycle": (1, {"--delay": _non_negative_float}),
}


def quick_parse(argv: Sequence[str]) -> Args | None:
    """``argv`` parsed as the full parser would, for a plain ``list``, ``status``, ``on``,
    ``off`` or ``cycle``; None for anything else (the full parser reads it then).

    Importing argparse and building a command's parser was a third of ``labpower on``'s
    start (issue #18). This reads only what argparse reads the same way: options spelled out
    in full, each with its value, and the targets in one run (argparse takes no targets
    after an option that follows them). A value its type function refuses, --help, an
    abbreviation, ``--`` or a word starting with "-" that is not an option here: None.
    """
    found = _main_options(argv)
    if found is None:
        return None
    start, main_options = found
    command = argv[start]
    quick = _QUICK.get(command)
    if quick is None:
        return None
    fewest, own = quick
    known = {**_MAIN_OPTIONS, **{name: convert is not None for name, convert in own.items()}}
    given = list(main_options)
    targets: list[str] = []
    after_targets = False
    i = start + 1
    while i < len(argv):
        if not argv[i].startswith("-"):
            if fewest is None or after_targets:
                return None
            targets.append(argv[i])
            i += 1
            continue
        option = _option(argv, i, known)
        if option is None:
            return None
        name, value, i = option
        given.append((name, value))
        after_targets = bool(targets)
    if fewest is not None and len(targets) < fewest:
        return None
    run = next(c[1] for c in COMMANDS if c[0] == command)
    values: dict[str, Any] = {"socket": None, "lab": None, "json": False}
    values["timeout"] = DEFAULT_TIMEOUT
    values.update(command=command, run=run)
    values.update((name[2:], None if convert else False) for name, convert in own.items())
    if fewest is not None:
        values["targets"] = targets
    types: dict[str, Callable[[str], float] | None] = {"--timeout": _positive_float, **own}
    for name, value in given:
        try:
            convert = types.get(name)
            values[name[2:]] = True if value is None else convert(value) if convert else value
        except Exception:  # argparse.ArgumentTypeError: the full parser says what is wrong
            return None
    return Args(**values)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or (``only``) of that one command alone: building the
    parsers of ten commands to run one was a third of ``labpower on``'s start."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Switch and watch lab power through labpowerd.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(parser, suppress=False)
    commands = parser.add_subparsers(
        title="commands",
        metavar="COMMAND",
        dest="command",
        required=True,
    )
    for name, run, summary, description, add_arguments in COMMANDS:
        if only is not None and name != only:
            continue
        sub = commands.add_parser(name, help=summary, description=description)
        _common_options(sub, suppress=True)
        sub.set_defaults(run=run)
        if add_arguments is not None:
            add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    args = quick_parse(argv)
    if args is None:
        args = Args()
        try:
            build_parser(command_named(argv)).parse_args(argv, namespace=args)
        except SystemExit as exc:  # --help (0) or a usage error (2), already printed
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    run: Callable[[Args], int | None] = args.run
    try:
        status = run(args)
    except Failed:
        return EXIT_FAILED
    except Usage as exc:
        _complain(str(exc))
        return EXIT_USAGE
    except (LabpowerError, ProtocolError) as exc:
        _complain(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away. Point stdout at /dev/null so that the interpreter's final
        # flush does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return EXIT_OK if status is None else status


def run() -> NoReturn:
    """The ``labpower`` command: :func:`main` on ``sys.argv``, then end the process at once.

    By the time :func:`main` returns, every connection is closed and every child waited for;
    what is left is output in buffers, flushed here, and the interpreter's teardown (freeing
    every module one by one), which took a tenth of ``labpower on``'s time and is skipped.
    Output that cannot be written because the reader went away gives status 141 (as when
    that happens during the command), not an interpreter complaint.
    """
    status = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        status = status or EXIT_BROKEN_PIPE
    except (OSError, ValueError):  # stdout closed or failing: nowhere left to say so
        status = status or EXIT_FAILED
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status)


if __name__ == "__main__":
    run()

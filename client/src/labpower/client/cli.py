"""The ``labpower`` command: switch, inspect and watch lab power through labpowerd.

Every command talks to the daemon through :class:`labpower.client.Client` only, so the
command works wherever the client distribution is installed alone.

Exit codes: 0 ok, 1 an operation failed (the daemon refused it, or is not reachable; one line
on stderr says why), 2 usage error, 130 interrupted (Ctrl-C), 141 stdout closed early
(``labpower logs -f | head``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from labpower.client import _protocol as p
from labpower.client.errors import DaemonUnreachable, LabpowerError
from labpower.client.sync import Client
from labpower.client.types import LEVELS, LogEntry, Reading, Target
from labpower.client.wire import ProtocolError

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

T = TypeVar("T")

EPILOG = f"""\
The socket is --socket, else $LABPOWER_SOCKET, else {p.DEFAULT_SOCKET}.
--socket, --json and --timeout may also follow the command name.

With --json, commands that finish print one JSON document (list, status, on, off, cycle: an
array of target objects); read and logs print one JSON object per line.

exit status: 0 ok, 1 an operation failed (message on stderr), 2 usage error,
130 interrupted by Ctrl-C.

examples:
  labpower list
  labpower on dut1 dut2
  labpower cycle --delay 2 dut1
  labpower read -n 0 --interval 0.5 dut1
  labpower logs -f --level warning
  labpower --json status dut1 | jq -r '.[0].state'
"""


class Failed(Exception):
    """Some, but not necessarily all, of a command's work failed; already reported."""


# -- output


def _emit(line: str, *, flush: bool = False) -> None:
    # sys.stdout is looked up on every call so that callers (and tests) may swap it.
    print(line, file=sys.stdout, flush=flush)


def _emit_json(doc: Any, *, flush: bool = False) -> None:
    _emit(json.dumps(doc, ensure_ascii=False), flush=flush)


def _complain(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def format_table(targets: Sequence[Target]) -> str:
    """Targets as an aligned text table with a header line."""
    header = ("TARGET", "STATE", "VERIFIED", "DEVICE", "CHANNEL", "AVAILABLE", "SINCE")
    rows = [header] + [
        (
            t.name,
            t.state,
            _yes_no(t.verified),
            t.device,
            str(t.channel),
            _yes_no(t.available),
            t.since or "-",
        )
        for t in targets
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    # rstrip: the last column is not padded, so no line ends in blanks
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def format_state(target: Target) -> str:
    """``dut1: on (verified)``; notes an unavailable device."""
    notes = ["verified" if target.verified else "not verified"]
    if not target.available:
        notes.append("device unavailable")
    return f"{target.name}: {target.state} ({', '.join(notes)})"


def format_reading(target: str, reading: Reading) -> str:
    return (
        f"{target}: {reading.voltage:.3f} V  {reading.current:.3f} A"
        f"  {reading.apparent_power:.3f} VA"
    )


def format_entry(entry: LogEntry) -> str:
    """``2026-11-27T07:00:00.123456Z info dut1: power on``; the device stands in for an
    entry without a target, and a daemon-wide entry has neither."""
    source = entry.target or entry.device
    where = f"{source}: " if source else ""
    return f"{entry.time} {entry.level} {where}{entry.message}"


# -- commands


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


def _client(args: argparse.Namespace, extra: float = 0.0) -> Client:
    """A client whose per-reply wait is --timeout plus ``extra`` seconds (a cycle delay or a
    read interval the daemon spends before it answers)."""
    return Client(args.socket, timeout=args.timeout + extra)


def _show_targets(args: argparse.Namespace, targets: Sequence[Target]) -> None:
    if args.json:
        _emit_json([t.to_dict() for t in targets])
    else:
        _emit(format_table(targets))


def cmd_list(args: argparse.Namespace) -> None:
    with _client(args) as lab:
        _show_targets(args, lab.targets())


def _each_target(
    args: argparse.Namespace,
    verb: str,
    action: Callable[[Client, str], Target],
    extra_timeout: float = 0.0,
) -> None:
    """Run ``action`` on every target named, in order, and print each result.

    A target the daemon refuses (unknown, board unavailable, ...) is reported and the others
    still run; an unreachable daemon ends the command.

    :raises Failed: at least one target failed.
    :raises DaemonUnreachable: no daemon, or it went away.
    """
    done: list[Target] = []
    failed = False
    with _client(args, extra_timeout) as lab:
        for name in args.targets:
            try:
                target = action(lab, name)
            except DaemonUnreachable:
                raise
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


def cmd_status(args: argparse.Namespace) -> None:
    if not args.targets:
        cmd_list(args)
        return
    _each_target(args, "status", lambda lab, name: lab.get(name))


def cmd_on(args: argparse.Namespace) -> None:
    _each_target(args, "on", lambda lab, name: lab.on(name))


def cmd_off(args: argparse.Namespace) -> None:
    _each_target(args, "off", lambda lab, name: lab.off(name))


def cmd_cycle(args: argparse.Namespace) -> None:
    delay: float | None = args.delay
    _each_target(args, "cycle", lambda lab, name: lab.cycle(name, delay), delay or 0.0)


def cmd_read(args: argparse.Namespace) -> None:
    count: int | None = args.count or None  # 0: until interrupted
    interval: float = args.interval
    with _client(args, interval) as lab, _closing(lab.read(args.target, count, interval)) as it:
        for reading in it:
            if args.json:
                _emit_json({"target": args.target, **reading.to_dict()}, flush=True)
            else:
                _emit(format_reading(args.target, reading), flush=True)


def _print_entry(args: argparse.Namespace, entry: LogEntry) -> None:
    if args.json:
        _emit_json(entry.to_dict(), flush=True)
    else:
        _emit(format_entry(entry), flush=True)


def _history(lab: Client, targets: list[str] | None, args: argparse.Namespace) -> list[LogEntry]:
    if args.limit == 0:
        return []
    return lab.history(targets, args.level, args.limit)


def cmd_logs(args: argparse.Namespace) -> None:
    targets: list[str] | None = args.targets or None
    with _client(args) as lab:
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
        follower = Client(args.socket, timeout=None)
        call = p.power_call("Logs", p.filter_parameters(targets, args.level))
        with _closing(follower.stream(call)) as replies:
            live = _entries(replies)
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


def _entries(replies: Iterable[dict[str, Any]]) -> Iterator[LogEntry | None]:
    for params in replies:
        entry = params.get("entry")
        yield None if entry is None else LogEntry.from_wire(entry)


# -- argument parsing


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be zero or more seconds: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more: {text!r}")
    return value


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # The same options on the main parser (with defaults) and on every command (without
    # defaults, so that a value given before the command is not reset after it).
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=default(None),
        help=f"the daemon's socket (default: $LABPOWER_SOCKET, else {p.DEFAULT_SOCKET})",
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


def build_parser() -> argparse.ArgumentParser:
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

    def command(
        name: str, run: Callable[[argparse.Namespace], None], summary: str, description: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=description)
        _common_options(sub, suppress=True)
        sub.set_defaults(run=run)
        return sub

    command(
        "list",
        cmd_list,
        "show every target as a table",
        "Show every target: its state, whether the state was read back from the board "
        "(VERIFIED), its device and channel, whether the device answers (AVAILABLE), and "
        "when this daemon last switched it (SINCE). With --json: an array of target objects.",
    )
    sub = command(
        "status",
        cmd_status,
        "show the state of targets",
        "Show each target's state, e.g. 'dut1: on (verified)'. Without targets: the same as "
        "'list'. With --json: an array of target objects.",
    )
    sub.add_argument("targets", nargs="*", metavar="TARGET", help="targets to show")
    for name, run, verb in (
        ("on", cmd_on, "switch targets on"),
        ("off", cmd_off, "switch targets off"),
    ):
        sub = command(
            name,
            run,
            verb,
            f"{verb[0].upper()}{verb[1:]}, in the order given, and print each resulting "
            "state. A target that fails is reported and the others are still switched.",
        )
        sub.add_argument("targets", nargs="+", metavar="TARGET", help="targets to switch")
    sub = command(
        "cycle",
        cmd_cycle,
        "switch targets off, wait, and on again",
        "Power-cycle targets, in the order given: off, wait, on. Prints each resulting state.",
    )
    sub.add_argument(
        "--delay",
        metavar="S",
        type=_non_negative_float,
        default=None,
        help="seconds to stay off (default: the target's cycle_delay in the daemon's config)",
    )
    sub.add_argument("targets", nargs="+", metavar="TARGET", help="targets to power-cycle")
    sub = command(
        "read",
        cmd_read,
        "measure a target's supply",
        "Print one line per reading: voltage (V), current (A), apparent power (VA).",
    )
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
    sub = command(
        "logs",
        cmd_logs,
        "show (and follow) the daemon's log",
        "Print the log entries the daemon still holds, oldest first, as "
        "'TIME LEVEL TARGET: MESSAGE'. With -f, keep printing new entries as they happen, "
        "until interrupted. Targets limit the output to their entries.",
    )
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
        "targets", nargs="*", metavar="TARGET", help="only entries about these targets"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    run: Callable[[argparse.Namespace], None] = args.run
    try:
        run(args)
    except Failed:
        return EXIT_FAILED
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
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

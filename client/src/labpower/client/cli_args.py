"""The ``labpower`` command's arguments: the options and arguments of each command, the full
parser (argparse, built for the one command given), and the quick parser of plain command
lines that leaves argparse out of a plain ``labpower on``'s start (issue #18).

The commands themselves, and the table that names each one's run function and arguments
(``COMMANDS``), are in :mod:`labpower.client.cli`; the parsers here take that table.
"""

from __future__ import annotations

from labpower.client import _protocol as p
from labpower.client.types import LEVELS

# argparse is imported where a parser is built; typing for the checker only (see
# _standins.py). The checker reads this block as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any, TypeAlias

    #: Every command, in the order --help lists them: name, what runs it, summary,
    #: description, what adds its own arguments.
    Commands: TypeAlias = Sequence[
        tuple[
            str,
            Callable[["Args"], int | None],
            str,
            str,
            Callable[[argparse.ArgumentParser], None] | None,
        ]
    ]

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


def status_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("targets", nargs="*", metavar="TARGET", help="targets to show")
    sub.add_argument(
        "--refresh",
        action="store_true",
        help="read the state from the boards again (default: what the daemon knows)",
    )


def switch_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("targets", nargs="+", metavar="TARGET", help="targets to switch")


def cycle_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--delay",
        metavar="S",
        type=_non_negative_float,
        default=None,
        help="seconds to stay off (default: the target's cycle_delay in the daemon's config)",
    )
    sub.add_argument("targets", nargs="+", metavar="TARGET", help="targets to power-cycle")


def read_args(sub: argparse.ArgumentParser) -> None:
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


def logs_args(sub: argparse.ArgumentParser) -> None:
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


def lock_args(sub: argparse.ArgumentParser) -> None:
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


def unlock_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--force", action="store_true", help="break the lease whoever holds it (admins only)"
    )
    sub.add_argument("targets", nargs="+", metavar="TARGET", help="targets to unlock")


def import_pdudaemon_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("config", metavar="PDUDAEMON_CONF", help="e.g. /etc/pdudaemon/pdudaemon.conf")
    sub.add_argument("-o", "--output", metavar="FILE", help="write here (a new file), not stdout")
    sub.add_argument(
        "--secrets-dir",
        metavar="DIR",
        help="where the config names the files for SNMP communities pdudaemon's config does "
        "not hold (default: /etc/labpower)",
    )


# The main parser's options: whether each takes a value (their type functions are above).
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


def _main_options(
    commands: Commands, argv: Sequence[str]
) -> tuple[int, list[tuple[str, str | None]]] | None:
    """Where the command's name is in ``argv``, after main options spelled out in full, and
    those options; None when the words before it are anything else."""
    names = {c[0] for c in commands}
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


def command_named(commands: Commands, argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, when that is certain before parsing: the first word after
    main options spelled out in full (``--json``, ``--socket PATH``, ``--socket=PATH``, ...).
    None for anything else (--help, an abbreviated option, an unknown command): the full
    parser then reads it, and says what is wrong the way it always does."""
    found = _main_options(commands, argv)
    return None if found is None else argv[found[0]]


#: The commands :func:`quick_parse` reads: how many targets each takes at least (None: it
#: takes none), and its own options (name: its type function, None for a flag). They must
#: be what the command's parser (``status_args``...) defines: a test compares the two.
_QUICK: dict[str, tuple[int | None, dict[str, Callable[[str], float] | None]]] = {
    "list": (None, {}),
    "status": (0, {"--refresh": None}),
    "on": (1, {}),
    "off": (1, {}),
    "cycle": (1, {"--delay": _non_negative_float}),
}


def quick_parse(commands: Commands, argv: Sequence[str]) -> Args | None:
    """``argv`` parsed as the full parser would, for a plain ``list``, ``status``, ``on``,
    ``off`` or ``cycle``; None for anything else (the full parser reads it then).

    Importing argparse and building a command's parser was a third of ``labpower on``'s
    start (issue #18). This reads only what argparse reads the same way: options spelled out
    in full, each with its value, and the targets in one run (argparse takes no targets
    after an option that follows them). A value its type function refuses, --help, an
    abbreviation, ``--`` or a word starting with "-" that is not an option here: None.
    """
    found = _main_options(commands, argv)
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
    run = next(c[1] for c in commands if c[0] == command)
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


def build_parser(commands: Commands, only: str | None = None) -> argparse.ArgumentParser:
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
    parsers = parser.add_subparsers(
        title="commands",
        metavar="COMMAND",
        dest="command",
        required=True,
    )
    for name, run, summary, description, add_arguments in commands:
        if only is not None and name != only:
            continue
        sub = parsers.add_parser(name, help=summary, description=description)
        _common_options(sub, suppress=True)
        sub.set_defaults(run=run)
        if add_arguments is not None:
            add_arguments(sub)
    return parser

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
from labpower.client import cli_args
from labpower.client.cli_args import (
    PROG,
    Args,
    cycle_args,
    import_pdudaemon_args,
    lock_args,
    logs_args,
    read_args,
    status_args,
    switch_args,
    unlock_args,
)
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

# Imported where they are used, not here: argparse (for what the quick parser does not read),
# json (--json), socket (bridge), typing and contextlib (for the checker only, see
# _standins.py). A plain ``labpower on`` starts without them (issue #18).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import contextmanager
    from typing import Any, NoReturn, TypeVar

    from labpower.client.cli_args import Commands
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


def cmd_import_pdudaemon(args: Args) -> int:
    # imported here: the other commands start without it
    import argparse

    from labpower.client.pdudaemon import importer

    return importer.run(argparse.Namespace(**vars(args)))


#: Every command, in the order --help lists them: name, what runs it, summary, description,
#: what adds its own arguments.
COMMANDS: Commands = (
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
        status_args,
    ),
    *(
        (
            name,
            run,
            verb,
            f"{verb[0].upper()}{verb[1:]}, in the order given, and print each resulting "
            "state. A target that fails is reported and the others are still switched.",
            switch_args,
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
        cycle_args,
    ),
    (
        "read",
        cmd_read,
        "measure a target's supply",
        "Print one line per reading: voltage (V), current (A), apparent power (VA).",
        read_args,
    ),
    (
        "logs",
        cmd_logs,
        "show (and follow) the daemon's log",
        "Print the log entries the daemon still holds, oldest first, as "
        "'TIME LEVEL TARGET: MESSAGE'. With -f, keep printing new entries as they happen, "
        "until interrupted. Targets limit the output to their entries.",
        logs_args,
    ),
    (
        "lock",
        cmd_lock,
        "run a command while holding a target's lease",
        "Take the target's lease (others can no longer switch it), run COMMAND, give the "
        "lease back, and exit with COMMAND's status. COMMAND and the labpower commands or "
        "scripts it runs may switch the target: they get the lease's token in "
        f"${p.LEASES_ENV}. Fails at once if somebody else holds the lease.",
        lock_args,
    ),
    (
        "unlock",
        cmd_unlock,
        "give back or break targets' leases",
        "Give back the leases of targets that this shell holds (their tokens are in "
        f"${p.LEASES_ENV}). With --force, break a lease whoever holds it: for root and "
        "members of the daemon's admin_groups; the daemon logs who broke whose lease.",
        unlock_args,
    ),
    (
        "import-pdudaemon",
        cmd_import_pdudaemon,
        "write labpowerd.toml devices and targets from a pdudaemon config",
        "Read pdudaemon's config (JSON) and write labpowerd.toml devices and targets for "
        "every PDU labpower has a backend for: a target per port, with pdudaemon = "
        '"PDU:PORT" and its aliases, so pdudaemon clients keep their names. PDUs and '
        "aliases left out are named on stderr; the exit status is then 1.",
        import_pdudaemon_args,
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


def command_named(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, when certain before parsing (see cli_args.py)."""
    return cli_args.command_named(COMMANDS, argv)


def quick_parse(argv: Sequence[str]) -> Args | None:
    """A plain command line parsed without argparse, or None (see cli_args.py)."""
    return cli_args.quick_parse(COMMANDS, argv)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or (``only``) of that one command alone: building the
    parsers of ten commands to run one was a third of ``labpower on``'s start."""
    return cli_args.build_parser(COMMANDS, only)


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

"""The ``labpower`` command and ``import labpower.client`` start without what they do not use:
no async client (anyio), no logging, no threads, no subprocess, no inventory parsing, and on
a plain command's path none of the heavy standard modules (dataclasses, typing, argparse...).
Asserted on the modules imported, not on time (the start-up time is a benchmark row)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

NOT_AT_START = (
    "anyio",
    "logging",
    "subprocess",
    "tempfile",
    "threading",  # the log stream's thread: imported when one starts
    "tomllib",
    "pathlib",
    "urllib",
    "labpower.client.lab",  # the inventory: read only where one is used
)

#: Modules that together were four fifths of ``labpower on``'s instructions (issue #18), and
#: that a plain command (parsed without argparse) and a script's ``import`` do without.
HEAVY = (
    "asyncio",
    "argparse",
    "collections",  # collections.abc included: it is a submodule
    "contextlib",
    "dataclasses",
    "enum",
    "functools",
    "inspect",
    "json",
    "re",
    "socket",
    "typing",
)


def _imported(code: str, modules: tuple[str, ...] = NOT_AT_START) -> list[str]:
    """Which of ``modules`` are imported after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(*sorted(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.splitlines()[-1].split()


@pytest.mark.parametrize(
    "code",
    [
        "import labpower.client",
        "from labpower.client import Client, LabpowerError, Target",
        "import labpower.client.cli as cli; cli.build_parser().parse_args(['on', 'dut1'])",
        # the whole command, up to the (failed) connection
        "import labpower.client.cli as cli; cli.main(['--socket', '/nonexistent', 'on', 'x'])",
    ],
)
def test_nothing_unused_is_imported_at_start(code: str) -> None:
    assert _imported(code) == []


@pytest.mark.parametrize(
    "code",
    [
        "import labpower.client",
        "from labpower.client import Client, LabpowerError, Target, TargetNotFound",
        # the whole command, up to the (failed) connection; with a daemon: tests/cli
        "import labpower.client.cli as cli; cli.main(['--socket', '/nonexistent', 'on', 'x'])",
        "import labpower.client.cli as cli; cli.main(['--json', 'status', '--refresh', 'x'])",
    ],
)
def test_no_heavy_module_on_a_plain_commands_path(code: str) -> None:
    assert _imported(code, HEAVY) == []


def test_the_probe_sees_heavy_modules() -> None:
    # the check above can fail: the full parser, for one, brings several of them
    code = "import labpower.client.cli as cli; cli.main(['--socket', '/nonexistent', 'on', '-h'])"
    assert {"argparse", "re", "enum"} <= set(_imported(code, HEAVY))


def test_the_async_client_is_there_on_first_use() -> None:
    assert "anyio" in _imported("from labpower.client import AsyncClient")


@pytest.mark.parametrize(
    "argv",
    [
        ["on", "dut1", "dut2"],
        ["--json", "off", "dut1"],
        ["--socket", "/run/x.sock", "status", "--refresh", "dut1"],
        ["--socket=/run/x.sock", "--timeout", "5", "cycle", "--delay", "0", "dut1"],
        ["--lab", "lab.toml", "logs", "-f", "--level", "warning", "dut1"],
        ["--timeout=2", "lock", "dut1", "--", "sh", "-c", "true"],
        ["read", "-n", "0", "--interval", "0.5", "dut1", "--json"],
        ["unlock", "--force", "dut1"],
        ["list"],
        ["bridge"],
    ],
)
def test_one_command_parsed_alone_as_by_the_full_parser(argv: list[str]) -> None:
    from labpower.client import cli

    only = cli.command_named(argv)
    assert only == next(w for w in argv if w in {c[0] for c in cli.COMMANDS})
    assert cli.build_parser(only).parse_args(argv) == cli.build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["-h", "on"],
        ["--sock", "/x", "on", "dut1"],  # an abbreviation: only the full parser knows it
        ["--socket", "-x", "on"],
        ["--socket"],
        ["onn", "dut1"],
        ["--", "on", "dut1"],
    ],
)
def test_anything_else_goes_to_the_full_parser(argv: list[str]) -> None:
    from labpower.client import cli

    assert cli.command_named(argv) is None


def test_a_command_parser_alone_still_refuses_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from labpower.client import cli

    assert cli.main(["--timeout", "0", "on", "dut1"]) == cli.EXIT_USAGE
    assert "argument --timeout: must be a positive number of seconds: '0'" in (
        capsys.readouterr().err
    )


# -- the quick parser: the full parser's result, or nothing


def _full_parse(argv: list[str]) -> Any:
    """What the full parser makes of ``argv``; None when it refuses it."""
    from labpower.client import cli
    from labpower.client.cli_args import Args

    args = Args()
    try:
        cli.build_parser().parse_args(argv, namespace=args)
    except SystemExit:
        return None
    return args


@pytest.mark.parametrize(
    "argv",
    [
        ["on", "dut1"],
        ["--json", "off", "dut1", "dut2"],
        ["on", "dut1", "--json"],
        ["on", "list"],  # a target named like a command
        ["--socket", "/run/x.sock", "status", "--refresh", "dut1"],
        ["status"],
        ["--timeout=5", "cycle", "--delay", "0", "dut1"],
        ["cycle", "dut1", "--delay=2.5", "--socket="],
        ["--socket", "/a", "list", "--lab", "lab.toml", "--socket", "/b"],
    ],
)
def test_plain_command_lines_are_read_without_argparse(argv: list[str]) -> None:
    from labpower.client import cli

    quick = cli.quick_parse(argv)
    assert quick is not None
    assert quick == _full_parse(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["on"],  # no target: argparse says so
        ["on", "dut1", "--json", "dut2"],  # argparse takes no targets after that option
        ["on", "-h"],
        ["--sock", "/x", "on", "dut1"],  # abbreviations: argparse's business
        ["on", "dut1", "--js"],
        ["--timeout", "0", "on", "dut1"],  # a value the type refuses: argparse says why
        ["cycle", "--delay", "soon", "dut1"],
        ["--json=1", "on", "dut1"],
        ["on", "--", "dut1"],
        ["list", "dut1"],
        ["status", "--force", "dut1"],  # another command's option
        ["read", "dut1"],  # not a quick command
        ["unlock", "dut1"],
    ],
)
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    from labpower.client import cli

    assert cli.quick_parse(argv) is None


WORDS = (
    *("on", "off", "status", "cycle", "list", "read", "unlock", "dut1", "dut2", ""),
    *("--json", "--socket", "--socket=/x.sock", "/x.sock", "--lab", "--lab=", "lab.toml"),
    *("--timeout", "--timeout=2", "5", "0", "-1", "inf", "nan", "abc", "0.5"),
    *("--refresh", "--delay", "--delay=0.5", "--force", "-n", "-h", "--", "--js", "--json=1"),
)


@settings(deadline=None)  # argparse builds every parser per example: slow on a loaded machine
@given(st.lists(st.sampled_from(WORDS), max_size=7))
def test_the_quick_parse_is_the_full_parsers_or_none(argv: list[str]) -> None:
    from labpower.client import cli

    quick = cli.quick_parse(argv)
    if quick is not None:
        assert quick == _full_parse(argv)

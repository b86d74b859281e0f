"""The ``labpower`` command and ``import labpower.client`` start without what they do not use:
no async client (anyio), no logging, no threads, no subprocess, no inventory parsing. Asserted
on the modules imported, not on time (the start-up time is a benchmark row)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def _imported(code: str) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in {NOT_AT_START!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    result: list[str] = json.loads(done.stdout.splitlines()[-1])
    return result


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

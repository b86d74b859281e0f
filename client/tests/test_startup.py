"""The ``labpower`` command and ``import labpower.client`` start without what they do not use:
no async client (anyio), no logging, no subprocess, no inventory parsing. Asserted on the
modules imported, not on time (the start-up time is a benchmark row)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

NOT_AT_START = ("anyio", "logging", "subprocess", "tempfile", "tomllib", "pathlib", "urllib")


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
    ],
)
def test_nothing_unused_is_imported_at_start(code: str) -> None:
    assert _imported(code) == []


def test_the_async_client_is_there_on_first_use() -> None:
    assert "anyio" in _imported("from labpower.client import AsyncClient")

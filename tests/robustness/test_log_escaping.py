"""Client strings never reach the daemon's log raw (issue 14, item 4).

A lease name with a newline used to forge a whole line on stderr; a NUL turned the journal's
MESSAGE into a blob. Hypothesis makes lease names, target names, method names, filters and
broken messages out of every kind of character, and the daemon's stderr is then checked line
by line: each line is one record of the daemon (it starts with a level), holds no character
that is not printable, and the lease lines show the escaped name. The journal side is in
tests/system/test_history_trust.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from labpower.client.escape import escape
from labpower.daemon.testing import DaemonProcess

from ..conftest import mock_config
from .conftest import POWER, Raw, call_bytes

LINE = re.compile(r"(debug|info|warning|error|critical): ")
#: Characters that break lines, hide text or drive a terminal, and then everything else.
NASTY = st.sampled_from(["\n", "\r", "\0", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u202e", "\t"])
CLIENT_TEXT = st.lists(st.one_of(NASTY, st.text(max_size=8)), max_size=12).map("".join)


@pytest.fixture(scope="module")
def logging_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    config = mock_config({"bench": {"channels": 2}}, {"dut1": {"device": "bench", "channel": 1}})
    config["daemon"] = {"log_level": "debug"}
    proc = DaemonProcess(config, directory=str(tmp_path_factory.mktemp("escaping")))
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.stderr()


def _stderr_lines(daemon: DaemonProcess, until: str, timeout: float = 20.0) -> list[str]:
    """The daemon's stderr, strictly UTF-8, once a line containing ``until`` is there (the
    daemon writes its lines after the reply)."""
    deadline = time.monotonic() + timeout
    while True:
        text = daemon.stderr_path.read_bytes().decode("utf-8")
        if until in text or time.monotonic() > deadline:
            return text.splitlines()
        time.sleep(0.01)


def _assert_clean(lines: list[str]) -> None:
    for line in lines:
        assert LINE.match(line), f"a line the daemon did not start: {line!r}"
        assert line.isprintable(), f"unescaped characters in {line!r}"


def test_a_lease_name_cannot_forge_a_line_or_hide_one(logging_daemon: DaemonProcess) -> None:
    forged = "x\ninfo: rootonly: on by uid 0 pid 1: off -> on\0\x1b[2J"
    with Raw(logging_daemon.socket_path) as conn:
        assert "error" not in conn.ask(f"{POWER}.Acquire", {"target": "dut1", "name": forged})
        assert "error" not in conn.ask(f"{POWER}.Release", {"target": "dut1"})
    lines = _stderr_lines(logging_daemon, escape(forged))
    _assert_clean(lines)
    assert not any(line.startswith("info: rootonly") for line in lines)
    assert any(line.endswith(f"for {escape(forged)}") for line in lines), lines[-5:]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=CLIENT_TEXT)
def test_fuzzed_client_strings_are_escaped_everywhere_they_are_logged(
    logging_daemon: DaemonProcess, text: str
) -> None:
    marker = f"end {time.monotonic_ns()}"
    with Raw(logging_daemon.socket_path) as conn:
        conn.ask(f"{POWER}.Acquire", {"target": "dut1", "name": text})
        conn.ask(f"{POWER}.Release", {"target": "dut1"})
        conn.ask(f"{POWER}.On", {"target": text})
        conn.ask(f"{POWER}.Acquire", {"target": text, "name": text})
        conn.ask(f"{POWER}.History", {"targets": [text]})
        conn.ask(f"{POWER}.{text}", {text: text})
        conn.ask(f"{POWER}.Acquire", {"target": "dut1", "name": marker})
    with Raw(logging_daemon.socket_path) as broken:  # a message that is not JSON
        broken.send(call_bytes(f"{POWER}.On").replace(b"{", text.encode("utf-8", "replace"), 1))
        broken.closed_without_reply()
    lines = _stderr_lines(logging_daemon, marker)
    _assert_clean(lines)
    if text:
        assert any(line.endswith(f"for {escape(text)}") for line in lines)


def test_check_config_escapes_keys_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "labpowerd.toml"
    # a quoted TOML key may hold any character
    path.write_text('[daemon]\n"b\\n\\u001b[31mx\\u0000" = 1\n')
    done = subprocess.run(
        [sys.executable, "-m", "labpower.daemon", "--check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.rstrip("\n").isprintable(), done.stderr
    assert escape("daemon.b\n\x1b[31mx\0: unknown key") in done.stderr

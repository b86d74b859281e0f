"""History trusts only what journald vouches for, and the journal gets no raw client bytes
(issue 14, items 3 and 4), against a real systemd-journald (trust_scenarios.py).

journald's socket is open to every local user, and a sender may write any field but the
trusted ones (``_UID``, ``_COMM``, ``_SYSTEMD_UNIT``...): an entry from uid 65534 with
``SYSLOG_IDENTIFIER=labpowerd`` and ``LABPOWER_TARGET=dut1`` must never come back from
History as the daemon's own. The daemon's own entries, of this run and the one before, must.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from labpower.client.escape import escape
from labpower.daemon.journal import service_unit

from .conftest import HERE, journal_entries, run_with_journald

SCRIPT = HERE / "trust_scenarios.py"
NASTY_LEASE = "job\ninfo: dut1: on by uid 0 pid 1: off -> on\0\x1b[31m"


@pytest.fixture(scope="module")
def trust_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    workdir = tmp_path_factory.mktemp("trust")
    done = run_with_journald(workdir, sys.executable, str(SCRIPT), str(workdir), timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return json.loads((workdir / "result.json").read_text()), workdir


def test_forged_entries_reach_the_journal_but_never_history(
    trust_run: tuple[dict[str, Any], Path],
) -> None:
    result, _ = trust_run
    markers = result["forged_markers"]
    assert len(markers) == 6
    # journald did store them, with the daemon's identifier (so the test can fail)...
    assert all(result[f"stored-{m}"] for m in markers)
    for run in ("run1", "run2"):
        messages = [e["message"] for e in result[f"history-{run}"]]
        # ...and History returns none of them: 0 forged entries
        forged = [m for m in messages if "FORGED" in m]
        assert forged == [], forged
        assert not any(e["seq"] == 999999 for e in result[f"history-{run}"])


def test_history_still_reaches_back_across_a_restart(
    trust_run: tuple[dict[str, Any], Path],
) -> None:
    result, _ = trust_run
    assert result["exit-run1"] == 0
    assert result["exit-run2"] == 0
    ons = [
        e
        for e in result["history-run2"]
        if e.get("target") == "dut1" and e.get("op") == "on" and e["message"].startswith("on by")
    ]
    assert len(ons) == 2, ons  # run1's from the journal, and run2's own


def test_the_journal_gets_no_raw_client_bytes(trust_run: tuple[dict[str, Any], Path]) -> None:
    """Lease names full of control characters (and fuzzed ones) are escaped in MESSAGE: 0
    unescaped client bytes in the journal."""
    result, workdir = trust_run
    entries = journal_entries(workdir, "_UID=0")
    assert entries
    for entry in entries:
        # journalctl shows a MESSAGE with a NUL or invalid UTF-8 as a list of bytes
        assert isinstance(entry["MESSAGE"], str), entry
        assert entry["MESSAGE"].isprintable(), entry["MESSAGE"]
    taken = [e["MESSAGE"] for e in entries if e["MESSAGE"].startswith("lease taken by uid 0")]
    names = result["lease-names-run1"] + result["lease-names-run2"]
    assert NASTY_LEASE in names
    assert len(taken) == len(names)
    for message, name in zip(taken, names, strict=True):
        assert message.endswith(f" for {escape(name)}"), (message, name)


def test_the_service_is_read_from_the_cgroup(tmp_path: Path) -> None:
    """Under systemd the daemon matches its own unit; elsewhere (a shell, a session scope)
    it has none and matches its command name instead."""
    cases = {
        "0::/system.slice/labpowerd.service\n": "labpowerd.service",
        "1:name=systemd:/system.slice/labpowerd.service\n0::/\n": "labpowerd.service",
        "0::/user.slice/user-1000.slice/session-3.scope\n": None,
        "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n": None,
        "0::/\n": None,
    }
    for content, unit in cases.items():
        path = tmp_path / "cgroup"
        path.write_text(content)
        assert service_unit(str(path)) == unit, content

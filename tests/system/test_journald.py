"""The journald bridge against a real systemd-journald (in a private mount namespace).

What a user checks with ``journalctl -o json SYSLOG_IDENTIFIER=labpowerd``: every entry is
there with its priority and LABPOWER_* fields, history survives a daemon restart, and a
journald that hangs or dies never stops the daemon from switching.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import journal_entries, scenario


@pytest.fixture(scope="module")
def fields_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    workdir = tmp_path_factory.mktemp("journald")
    return scenario(workdir, "fields"), workdir


def _one(entries: list[dict[str, Any]], **match: str) -> dict[str, Any]:
    found = [e for e in entries if all(e.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} entries match {match}: {found}"
    return found[0]


def test_switching_entries_carry_target_device_op_state_and_caller(
    fields_run: tuple[dict[str, Any], Path],
) -> None:
    result, workdir = fields_run
    entries = journal_entries(workdir, f"_PID={result['pid1']}")
    on = _one(entries, LABPOWER_SEQ=str(result["on_seq"]))
    assert on["SYSLOG_IDENTIFIER"] == "labpowerd"
    assert on["PRIORITY"] == "6"
    # before: "off" once the start-up read-back ran, "unknown" if the call came first
    assert re.search(r": (off|unknown) -> on$", on["MESSAGE"]), on["MESSAGE"]
    assert (on["LABPOWER_TARGET"], on["LABPOWER_DEVICE"], on["LABPOWER_CHANNEL"]) == (
        "dut1",
        "bench",
        "1",
    )
    assert (on["LABPOWER_OP"], on["LABPOWER_STATE"]) == ("on", "on")
    assert on["LABPOWER_CLIENT_UID"] == str(result["client_uid"])
    assert on["LABPOWER_CLIENT_PID"] == str(result["client_pid"])
    off = _one(entries, LABPOWER_SEQ=str(result["off_seq"]))
    assert (off["LABPOWER_OP"], off["LABPOWER_STATE"]) == ("off", "off")
    # the backend's own record during the call is tied to the same target and caller
    backend = _one(entries, MESSAGE="power on")
    assert (backend["LABPOWER_TARGET"], backend["LABPOWER_CLIENT_PID"]) == (
        "dut1",
        str(result["client_pid"]),
    )


def test_priorities_follow_levels(fields_run: tuple[dict[str, Any], Path]) -> None:
    result, workdir = fields_run
    assert result["broken_error"] == "DeviceError"
    entries = journal_entries(workdir, f"_PID={result['pid1']}")
    failed = _one(entries, LABPOWER_TARGET="broken")
    assert failed["PRIORITY"] == "3"
    assert "injected failure" in failed["MESSAGE"]
    assert failed["LABPOWER_STATE"] == "unknown"
    unplugged = _one(entries, LABPOWER_DEVICE="unplugged")
    assert unplugged["PRIORITY"] == "4"
    assert {e["PRIORITY"] for e in entries} == {"3", "4", "6"}


def test_every_entry_of_the_run_reached_the_journal(
    fields_run: tuple[dict[str, Any], Path],
) -> None:
    result, workdir = fields_run
    assert result["exit1"] == 0
    seqs = [int(e["LABPOWER_SEQ"]) for e in journal_entries(workdir, f"_PID={result['pid1']}")]
    assert seqs == list(range(1, len(seqs) + 1))
    assert result["off_seq"] < len(seqs)


def test_history_comes_from_the_journal_across_a_restart(
    fields_run: tuple[dict[str, Any], Path],
) -> None:
    result, _ = fields_run
    assert result["pid1"] != result["pid2"]
    before = [(e["seq"], e["message"]) for e in result["history_run1"]]
    after = [(e["seq"], e["message"]) for e in result["history_after_restart"]]
    assert after == before, "the new daemon serves the old daemon's entries"
    assert result["on_seq"] in [seq for seq, _ in after]
    on = next(e for e in result["history_after_restart"] if e["seq"] == result["on_seq"])
    assert (on["target"], on["device"], on["channel"], on["op"], on["state"], on["level"]) == (
        "dut1",
        "bench",
        1,
        "on",
        "on",
        "info",
    )
    assert result["history_since_restart"] == [], "since excludes what came before it"
    assert [e["target"] for e in result["errors"]] == ["broken"]


def test_history_includes_the_entry_just_made(fields_run: tuple[dict[str, Any], Path]) -> None:
    result, _ = fields_run
    [newest] = result["newest"]
    assert (newest["seq"], newest["state"]) == (result["on_seq2"], "on")
    assert result["exit2"] == 0


@pytest.mark.timing
def test_a_hung_or_dead_journald_never_stops_switching(tmp_path: Path) -> None:
    result = scenario(tmp_path, "outage")
    # 200 switches while journald was stopped: with a blocking send the first full queue
    # would have hung the daemon (and the client's 10 s timeout would have failed the run)
    assert result["stopped_seconds"] < 10
    assert result["stored_after_continue"], "entries reach journald again once it runs"
    # journald's queue was full for most of those switches: the daemon held them and sent
    # them once journald ran again, so every one is in the journal, in order
    stopped = result["seqs_while_stopped"]
    seqs = [int(e["LABPOWER_SEQ"]) for e in journal_entries(tmp_path, f"_PID={result['pid']}")]
    assert [s for s in seqs if stopped[0] <= s <= stopped[-1]] == list(
        range(stopped[0], stopped[-1] + 1)
    )
    assert result["after_kill"] == sorted(result["after_kill"])
    assert result["state"] == "on"
    assert result["exit"] == 0
    stderr = result["stderr"]
    assert "journald cannot take entries (EAGAIN" in stderr
    assert "holding up to 4096 until it can" in stderr
    assert not re.search(r"^info: dut1: ", stderr, re.M), "no held entry went to stderr"
    assert "journald takes entries again" in stderr
    assert "journald cannot take entries (ECONNREFUSED" in stderr
    # the entries journald could not take went to stderr, with their target
    assert re.search(r"^info: dut2: .*-> on$", stderr.rpartition("ECONNREFUSED")[2], re.M)
    stored = journal_entries(
        tmp_path, f"_PID={result['pid']}", f"LABPOWER_SEQ={result['seq_after_continue']}"
    )
    assert [e["LABPOWER_TARGET"] for e in stored] == ["dut2"]

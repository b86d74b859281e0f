"""Scenarios that run next to a real journald (started by journald_ns.py, see conftest.py).

``python journal_scenarios.py NAME DIR``: runs labpowerd logging to that journald, acts as a
client, and writes what it observed to DIR/result.json; the test then asserts on that and on
the journal files (journalctl -D). Runs inside the private mount namespace, hence a script.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from labpower.client import Client, LabpowerError
from labpower.client.wire import Call
from labpower.daemon.logbus import rfc3339
from labpower.daemon.testing import DaemonProcess

CONFIG: dict[str, Any] = {
    "daemon": {"log_level": "debug"},
    "devices": {
        "bench": {"backend": "mock", "channels": 2},
        "faulty": {"backend": "mock", "channels": 1, "fail": ["set"]},
        "unplugged": {"backend": "mock", "channels": 1, "unavailable": True},
    },
    "targets": {
        "dut1": {"device": "bench", "channel": 1},
        "dut2": {"device": "bench", "channel": 2},
        "broken": {"device": "faulty", "channel": 1},
        "gone": {"device": "unplugged", "channel": 1},
    },
}
JOURNAL_ARGS = ("--log-target", "journal")


def switch(lab: Client, member: str, target: str) -> int:
    """Switch and return the call's log_seq."""
    reply = lab.call(Call(f"io.labpower.Power.{member}", {"target": target}))
    return int(reply["log_seq"])


def daemon(workdir: Path, name: str) -> DaemonProcess:
    directory = workdir / name
    directory.mkdir()
    proc = DaemonProcess(CONFIG, args=JOURNAL_ARGS, directory=str(directory))
    proc.start()
    return proc


def entries(lab: Client, **kwargs: Any) -> list[dict[str, Any]]:
    return [e.to_dict() for e in lab.history(**kwargs)]


def fields(workdir: Path) -> dict[str, Any]:
    """Switch, fail, restart the daemon, and ask for history across the restart."""
    out: dict[str, Any] = {"client_pid": os.getpid(), "client_uid": os.getuid()}
    first = daemon(workdir, "run1")
    out["pid1"] = first.pid
    with first.client(timeout=10) as lab:
        out["on_seq"] = switch(lab, "On", "dut1")
        out["off_seq"] = switch(lab, "Off", "dut1")
        try:
            lab.on("broken")
        except LabpowerError as exc:
            out["broken_error"] = type(exc).__name__
        out["history_run1"] = entries(lab, targets=["dut1"], since="1h")
    out["exit1"] = first.stop()
    out["between"] = rfc3339(time.time())

    second = daemon(workdir, "run2")
    out["pid2"] = second.pid
    with second.client(timeout=10) as lab:
        out["history_after_restart"] = entries(lab, targets=["dut1"], since="1h")
        out["history_since_restart"] = entries(lab, targets=["dut1"], since=out["between"])
        out["errors"] = entries(lab, level="error", since="1h")
        out["on_seq2"] = switch(lab, "On", "dut1")
        # at once: the journal may not have stored it yet, the daemon still answers with it
        out["newest"] = entries(lab, targets=["dut1"], limit=1)
    out["exit2"] = second.stop()
    return out


def _wait_stored(seq: int, pid: int) -> bool:
    from systemd import journal

    reader = journal.Reader()
    reader.add_match(SYSLOG_IDENTIFIER="labpowerd", LABPOWER_SEQ=str(seq), _PID=str(pid))
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            reader.seek_head()
            if reader.get_next():
                return True
            reader.wait(0.1)  # wakes up when the journal changes
    finally:
        reader.close()
    return False


def _wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a zombie: its parent is busy running us
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)
    raise TimeoutError(f"journald {pid} did not die")


def outage(workdir: Path) -> dict[str, Any]:
    """journald stopped (its queue fills), then continued, then killed (stale socket)."""
    out: dict[str, Any] = {}
    journald = int(os.environ["JOURNALD_PID"])
    proc = daemon(workdir, "run")
    out["pid"] = proc.pid
    with proc.client(timeout=10) as lab:
        switch(lab, "On", "dut1")
        os.kill(journald, signal.SIGSTOP)
        start = time.monotonic()
        seqs = []
        for _ in range(100):
            seqs.append(switch(lab, "Off", "dut1"))
            seqs.append(switch(lab, "On", "dut1"))
        out["stopped_seconds"] = time.monotonic() - start
        out["seqs_while_stopped"] = seqs
        os.kill(journald, signal.SIGCONT)
        out["seq_after_continue"] = seq = switch(lab, "On", "dut2")
        out["stored_after_continue"] = _wait_stored(seq, proc.pid)
        os.kill(journald, signal.SIGKILL)
        _wait_dead(journald)
        start = time.monotonic()
        out["after_kill"] = [switch(lab, "Off", "dut2"), switch(lab, "On", "dut2")]
        out["killed_seconds"] = time.monotonic() - start
        out["state"] = lab.get("dut2").state
    out["exit"] = proc.stop()
    out["stderr"] = proc.stderr()
    return out


SCENARIOS = {"fields": fields, "outage": outage}

if __name__ == "__main__":
    name, workdir = sys.argv[1], Path(sys.argv[2])
    result = SCENARIOS[name](workdir)
    (workdir / "result.json").write_text(json.dumps(result, indent=1))

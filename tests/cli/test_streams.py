"""``labpower logs`` (with and without -f) and ``read -n 0``: the real command, run as a
process, against a real labpowerd child process on the standard mock lab. Output of a running
command is waited for line by line with a bound: no sleeps."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

Run = Callable[..., subprocess.CompletedProcess[str]]
Spawn = Callable[..., subprocess.Popen[str]]

ENTRY_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (\w+) (?:(\S+): )?(.*)$")
LINE_WAIT = 15.0


class Lines:
    """The stdout lines of a running command, collected by a thread so that a test waits for
    the next one with a bound instead of hanging."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self) -> str:
        try:
            line = self._lines.get(timeout=LINE_WAIT)
        except queue.Empty:
            raise AssertionError(f"no line from labpower within {LINE_WAIT} s") from None
        if line is None:
            assert self.proc.stderr is not None
            raise AssertionError(f"labpower ended early: {self.proc.stderr.read()}")
        return line

    def pending(self) -> list[str]:
        """Lines printed but not yet taken (meaningful once the command has ended)."""
        self._reader.join(LINE_WAIT)
        lines: list[str] = []
        while not self._lines.empty():
            line = self._lines.get_nowait()
            if line is not None:
                lines.append(line)
        return lines

    def interrupt(self) -> tuple[int, str]:
        """Press Ctrl-C; the exit status and what went to stderr."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(LINE_WAIT)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


def entry_of(line: str) -> tuple[str, str | None, str]:
    """(level, target, message) of a text log line."""
    match = ENTRY_LINE.match(line)
    assert match, line
    level, target, message = match.groups()
    return level, target, message


# -- read


def test_read_forever_until_ctrl_c(spawn_labpower: Spawn) -> None:
    out = Lines(spawn_labpower("read", "-n", "0", "--interval", "0.01", "dut1"))
    lines = [out.next() for _ in range(4)]
    code, stderr = out.interrupt()
    assert lines == ["dut1: 0.000 V  0.000 A  0.000 VA"] + ["dut1: 5.000 V  2.000 A  10.000 VA"] * 3
    assert (code, stderr) == (130, "")


# -- logs


def test_logs_show_the_entries_of_on_and_off(labpower: Run) -> None:
    assert labpower("on", "dut1").returncode == 0
    assert labpower("off", "dut1").returncode == 0
    assert labpower("on", "dut2").returncode == 0
    result = labpower("logs", "dut1")
    assert (result.returncode, result.stderr) == (0, "")
    entries = [entry_of(line) for line in result.stdout.splitlines()]
    assert {target for _, target, _ in entries} == {"dut1"}
    assert [(level, message) for level, _, message in entries if message.startswith("power ")] == [
        ("info", "power on"),
        ("info", "power off"),
    ]
    everything = [entry_of(line) for line in labpower("logs").stdout.splitlines()]
    assert ("info", "dut2", "power on") in everything
    assert everything[-1][:2] == ("info", "dut2")  # oldest first: dut2's entries come last


def test_logs_json_limit_and_level(labpower: Run, lab: Client) -> None:
    lab.on("dut1")
    lab.off("dut1")
    result = labpower("logs", "--json", "-n", "2", "dut1")
    assert (result.returncode, result.stderr) == (0, "")
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert entries == [e.to_dict() for e in lab.history(["dut1"], limit=2)]
    assert len(entries) == 2
    assert entries[0]["seq"] < entries[1]["seq"]
    assert entries[1]["target"] == "dut1"
    # the unplugged board's warning at start-up passes a warning filter, power on/off do not
    warnings = [
        entry_of(line) for line in labpower("logs", "--level", "warning").stdout.splitlines()
    ]
    assert warnings
    assert all(level in ("warning", "error", "critical") for level, _, _ in warnings)
    assert labpower("logs", "-n", "0").stdout == ""


def test_logs_since(labpower: Run, lab: Client) -> None:
    lab.on("dut1")
    recent = [
        entry_of(line) for line in labpower("logs", "--since", "1h", "dut1").stdout.splitlines()
    ]
    assert ("info", "dut1", "power on") in recent
    future = labpower("logs", "--since", "2999-01-01T00:00:00Z", "dut1")
    assert (future.returncode, future.stdout) == (0, "")
    bad = labpower("logs", "--since", "yesterday-ish")
    assert bad.returncode == 1
    assert "since" in bad.stderr


def test_logs_follow_prints_history_then_new_entries(spawn_labpower: Spawn, lab: Client) -> None:
    lab.on("dut1")
    last = lab.history(["dut1"], limit=1)[0]
    out = Lines(spawn_labpower("logs", "-f", "--json", "-n", "1", "dut1"))
    # history is printed once the subscription is live: nothing logged from now on is missed
    assert json.loads(out.next()) == last.to_dict()
    lab.off("dut1")
    lab.on("dut2")  # another target's entries are filtered out
    lab.on("dut1")
    new = [e.to_dict() for e in lab.history(["dut1"]) if e.seq > last.seq]
    assert [e["message"] for e in new if e["message"].startswith("power")] == [
        "power off",
        "power on",
    ]
    followed: list[dict[str, Any]] = [json.loads(out.next()) for _ in new]
    code, stderr = out.interrupt()
    # each new entry once, in order, and the history entry not repeated
    assert followed == new
    assert (code, stderr) == (130, "")
    assert out.pending() == []


def test_logs_follow_text(spawn_labpower: Spawn, lab: Client) -> None:
    out = Lines(spawn_labpower("logs", "-f"))
    out.next()  # the daemon logged its start: once history is printed, the stream is live
    lab.on("router")
    seen = [out.next()]
    while entry_of(seen[-1])[2] != "power on":
        seen.append(out.next())
    assert entry_of(seen[-1]) == ("info", "router", "power on")
    code, _ = out.interrupt()
    assert code == 130


def test_logs_follow_ends_with_the_daemon(spawn_labpower: Spawn, daemon: DaemonProcess) -> None:
    out = Lines(spawn_labpower("logs", "-f", "-n", "1"))
    out.next()
    daemon.stop()
    assert out.proc.wait(LINE_WAIT) == 1
    assert out.proc.stderr is not None
    err = out.proc.stderr.read()
    assert err.startswith("labpower: ")
    assert daemon.socket_path in err
    assert "Traceback" not in err

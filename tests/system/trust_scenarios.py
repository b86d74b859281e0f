"""Hostile local users against the daemon's journal (run next to a real journald by
test_history_trust.py, inside its private mount namespace; see journald_ns.py).

``python trust_scenarios.py DIR``: the daemon logs to the journal; a user (uid 65534) sends
journald entries that claim to be the daemon's (``SYSLOG_IDENTIFIER=labpowerd``,
``LABPOWER_*`` fields, even the daemon's command name); root's own processes do too under
another name; a client takes a lease under a name full of control characters. What History
returns, across a restart of the daemon, goes to DIR/result.json.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any

from labpower.client import Client
from labpower.daemon import journal
from labpower.daemon.testing import DaemonProcess

CONFIG: dict[str, Any] = {
    "daemon": {"log_level": "info"},
    "devices": {"bench": {"backend": "mock", "channels": 1}},
    "targets": {"dut1": {"device": "bench", "channel": 1}},
}
NOBODY = 65534
NASTY_LEASE = "job\ninfo: dut1: on by uid 0 pid 1: off -> on\0\x1b[31m"
PR_SET_NAME = 15
#: Lease names fuzzed per run: pieces that break lines, hide text or drive a terminal, mixed
#: with any other characters (no lone surrogates: JSON text cannot carry them raw).
FUZZED = 150
_PIECES = ["\n", "\r", "\0", "\x1b[2J", "\x7f", "\x85", "\u2028", "\u202e", "\t", "\\", "%s"]


def fuzzed_names(seed: int) -> list[str]:
    rng = random.Random(seed)

    def char() -> str:
        code = rng.choice((rng.randrange(0x20, 0x7F), rng.randrange(0, 0x2030)))
        return chr(code if not 0xD800 <= code < 0xE000 else 0x41)

    return [
        "".join(
            rng.choice(_PIECES) if rng.random() < 0.4 else char()
            for _ in range(rng.randrange(1, 24))
        )
        for _ in range(FUZZED)
    ]


def forge(uid: int, comm: str, marker: str) -> None:
    """Send journald, from a child running as ``uid`` named ``comm``, an entry made to look
    like the daemon's switching off dut1."""
    pid = os.fork()
    if pid == 0:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_NAME, comm.encode()[:15], 0, 0, 0)
            os.setuid(uid)
            fields = {
                "MESSAGE": f"off by uid 0 pid 1: on -> off {marker}",
                "PRIORITY": "6",
                "SYSLOG_IDENTIFIER": journal.SYSLOG_IDENTIFIER,
                "LABPOWER_TARGET": "dut1",
                "LABPOWER_DEVICE": "bench",
                "LABPOWER_OP": "off",
                "LABPOWER_STATE": "off",
                "LABPOWER_SEQ": "999999",
                "LABPOWER_RUN": journal.RUN_ID,
            }
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(journal.encode(fields), journal.JOURNAL_SOCKET)
            # stay alive until journald has read our /proc entries (_COMM, _EXE)
            time.sleep(0.5)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def stored(marker: str) -> bool:
    """Wait until journald stored the entry whose MESSAGE ends with ``marker``."""
    from systemd import journal as sd_journal

    reader = sd_journal.Reader()
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            reader.seek_head()
            reader.add_match(SYSLOG_IDENTIFIER=journal.SYSLOG_IDENTIFIER)
            while entry := reader.get_next():
                if str(entry.get("MESSAGE", "")).endswith(marker):
                    return True
            reader.flush_matches()
            reader.wait(0.1)
    finally:
        reader.close()
    return False


def history(lab: Client) -> list[dict[str, Any]]:
    return [e.to_dict() for e in lab.history(since="1h")]


def main(workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"forged_markers": []}
    runs = []
    for run in ("run1", "run2"):
        directory = workdir / run
        directory.mkdir()
        proc = DaemonProcess(CONFIG, args=("--log-target", "journal"), directory=str(directory))
        proc.start()
        runs.append(proc)
        comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
        with proc.client(timeout=10) as lab:
            lab.on("dut1")
            names = [NASTY_LEASE, *fuzzed_names(len(runs))]
            for name in names:
                with lab.lease("dut1", name=name):
                    pass
            out[f"lease-names-{run}"] = names
            for uid, name in ((NOBODY, comm), (NOBODY, "labpowerd"), (0, "forger")):
                marker = f"FORGED-{run}-{uid}-{name}"
                forge(uid, name, marker)
                out["forged_markers"].append(marker)
                out[f"stored-{marker}"] = stored(marker)
            out[f"history-{run}"] = history(lab)
        out[f"exit-{run}"] = proc.stop()
    out["pids"] = [proc.pid for proc in runs]
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1])
    (target / "result.json").write_text(json.dumps(main(target), indent=1))

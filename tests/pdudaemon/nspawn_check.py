"""Runs inside the systemd-nspawn container of test_nspawn.py, as root, with systemd as PID 1:
``python nspawn_check.py OUTDIR`` writes OUTDIR/result.json. pduclient's exchange (standard
library only) reaches labpower-pdudaemon.socket, which starts the service."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def exchange(message: bytes) -> str:
    try:
        with socket.create_connection(("127.0.0.1", 16421), timeout=60) as sock:
            sock.sendall(message)
            return sock.recv(16384).decode()
    except OSError as exc:
        return f"error: {exc}"


def show(unit: str, *props: str) -> dict[str, str]:
    out = subprocess.run(
        ["systemctl", "show", unit, *(f"--property={p}" for p in props)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def uid_of(pid: str) -> int | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def main() -> None:
    out = Path(sys.argv[1])
    r: dict[str, Any] = {}
    try:
        r["before"] = show("labpower-pdudaemon.service", "ActiveState")["ActiveState"]
        r["on"] = exchange(b"pdu01 1 on")
        r["unknown"] = exchange(b"pdu01 2 on")
        service = show("labpower-pdudaemon.service", "ActiveState", "MainPID")
        r["after"] = service["ActiveState"]
        r["service_uid"] = uid_of(service["MainPID"])
        r["pdudaemon_uid"] = int(
            subprocess.run(
                ["id", "-u", "labpower-pdudaemon"], capture_output=True, text=True, check=True
            ).stdout
        )
        status = subprocess.run(
            [sys.executable, "-m", "labpower.client.cli", "--json", "status", "dut1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        r["dut1"] = json.loads(status.stdout)[0] if status.returncode == 0 else status.stderr
        journal = subprocess.run(
            ["journalctl", "-u", "labpowerd.service", "-o", "cat", "--no-pager"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        r["daemon_log"] = journal.stdout[-4000:]
    except Exception as exc:  # reported to the test, which fails on it
        r["checker_error"] = repr(exc)
    (out / "result.json").write_text(json.dumps(r))


if __name__ == "__main__":
    main()

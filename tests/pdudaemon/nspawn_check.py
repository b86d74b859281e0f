"""Runs inside the systemd-nspawn container of test_nspawn.py, as root, with systemd as PID 1:
``python nspawn_check.py OUTDIR`` writes OUTDIR/result.json. pduclient's exchange (standard
library only) reaches labpower-pdudaemon.socket, which starts the service; then an HTTP GET of
/metrics reaches labpower-web.socket, which starts that service."""

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


def get_metrics() -> str:
    try:
        with socket.create_connection(("127.0.0.1", 16422), timeout=60) as sock:
            sock.sendall(
                b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:16422\r\nConnection: close\r\n\r\n"
            )
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        return reply.decode(errors="replace")
    except OSError as exc:
        return f"error: {exc}"


def user_id(name: str) -> int:
    return int(
        subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True).stdout
    )


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
        r["pdudaemon_uid"] = user_id("labpower-pdudaemon")
        r["web_before"] = show("labpower-web.service", "ActiveState")["ActiveState"]
        r["metrics"] = get_metrics()
        web = show("labpower-web.service", "ActiveState", "MainPID")
        r["web_after"] = web["ActiveState"]
        r["web_uid"] = uid_of(web["MainPID"])
        r["web_user_uid"] = user_id("labpower-web")
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

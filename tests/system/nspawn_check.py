"""The checker that runs inside the systemd-nspawn container (see test_nspawn.py), as root,
with real systemd as PID 1. ``python nspawn_check.py OUTDIR``: writes OUTDIR/result.json.

It acts as the lab's users: alice (group labpower) and bob (not), through the varlink socket
with nothing but the standard library (/usr/bin/python3 as those users), and as the admin
with systemctl.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOCKET = "/run/labpower/labpower.sock"
CONFIG = Path("/etc/labpower/labpowerd.toml")
UNIT = "labpowerd.service"

# A varlink call with the standard library only: what any user's script could do.
RAW_CALL = r"""
import json, socket, sys
method, params = sys.argv[1], json.loads(sys.argv[2])
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sys.argv[3])
    s.sendall(json.dumps({"method": method, "parameters": params}).encode() + b"\0")
    data = b""
    while not data.endswith(b"\0"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print(json.dumps({"reply": json.loads(data.rstrip(b"\0"))}))
except OSError as exc:
    print(json.dumps({"errno": exc.errno, "error": str(exc)}))
"""


def call_as(user: str, method: str, **params: Any) -> dict[str, Any]:
    out = subprocess.run(
        [
            "setpriv",
            f"--reuid={user}",
            f"--regid={user}",
            "--init-groups",
            "--",
            "/usr/bin/python3",
            "-c",
            RAW_CALL,
            f"io.labpower.Power.{method}",
            json.dumps(params),
            SOCKET,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode:
        return {"exit": out.returncode, "stderr": out.stderr}
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def show(*props: str) -> dict[str, str]:
    out = subprocess.run(
        ["systemctl", "show", UNIT, *(f"--property={p}" for p in props)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)


def wait_until(what: str, check: Any, timeout: float = 30.0) -> Any:
    """Poll systemd's view (there is no event to wait on from here), bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def uid_of(pid: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise LookupError(pid)


def targets_as(user: str) -> list[str]:
    reply = call_as(user, "List").get("reply", {})
    return [t["name"] for t in reply.get("parameters", {}).get("targets", [])]


def main(out: Path) -> dict[str, Any]:
    r: dict[str, Any] = {}
    r["before_first_call"] = show("ActiveState")["ActiveState"]
    r["alice_on"] = call_as("alice", "On", target="dut1")
    first = show("MainPID", "ActiveState")
    r["after_first_call"] = first["ActiveState"]
    r["first_pid"] = first["MainPID"]
    r["daemon_uid"] = uid_of(first["MainPID"])
    r["labpower_uid"] = pwd.getpwnam("labpower").pw_uid
    r["bob_on"] = call_as("bob", "On", target="dut1")

    # systemctl reload with a new target: same process, nothing switched
    CONFIG.write_text(CONFIG.read_text() + '\n[targets.dut2]\ndevice = "bench"\nchannel = 2\n')
    r["reload_exit"] = subprocess.run(
        ["systemctl", "reload", UNIT], timeout=60, check=False
    ).returncode
    r["targets_after_reload"] = wait_until(
        "dut2 after reload", lambda: "dut2" in targets_as("alice") and targets_as("alice")
    )
    r["pid_after_reload"] = show("MainPID")["MainPID"]
    r["dut1_after_reload"] = call_as("alice", "Get", target="dut1")

    # a hung daemon (SIGSTOP): the watchdog kills it and systemd restarts it
    subprocess.run(
        ["systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", UNIT], timeout=30, check=True
    )
    restarted = wait_until(
        "restart after the watchdog",
        lambda: (
            (s := show("MainPID", "NRestarts", "ActiveState"))["MainPID"]
            not in ("0", first["MainPID"])
            and s["ActiveState"] == "active"
            and s
        ),
    )
    r["restarted"] = restarted
    r["watchdog_log"] = journal()
    r["alice_after_restart"] = call_as("alice", "Get", target="dut1")
    r["history_after_restart"] = call_as("alice", "History", targets=["dut1"], since="1h")
    return r


def journal() -> str:
    """The daemon's entries in the container's journal, as text."""
    return subprocess.run(
        ["journalctl", "--no-pager", "-u", UNIT, "-o", "cat"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout


def report(check: Callable[[Path], dict[str, Any]]) -> None:
    """Run ``check(OUTDIR)`` (OUTDIR: the first argument) and write what it saw, or its
    error, to OUTDIR/result.json for the test."""
    outdir = Path(sys.argv[1])
    try:
        result = check(outdir)
    except BaseException as exc:  # reported to the test through the result file
        result = {"checker_error": repr(exc)}
    (outdir / "result.json").write_text(json.dumps(result, indent=1))
    os.sync()


if __name__ == "__main__":
    report(main)

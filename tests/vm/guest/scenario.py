"""The lab host scenario, run in the guest by boot.sh as root: ``scenario.py OUTDIR``.

It plays the lab: plugs a uhid USBRelay2 board, lets udev and systemd do their part, switches
as user alice (group labpower) with the ``labpower`` command and the client library, unplugs
and replugs the board, restarts and kills the daemon. It records what it saw in
OUTDIR/result.json; tests/vm/test_labhost.py makes the assertions on the host.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labpower.backends.sim.uhid import UhidRelayBoard

LINK = "/dev/labpower/usbrelay-SIM01"
CLIENT = """
import json, sys
from labpower.client import Client
with Client() as lab:
    t = lab.target(sys.argv[1])
    getattr(t, sys.argv[2])()
    s = t.state()
    print(json.dumps({"state": s.state, "verified": s.verified, "available": s.available}))
"""


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> float:
    """Bounded poll (udev and systemd give this process no event to wait on); seconds taken.

    :raises TimeoutError:
    """
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def sh(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)


def as_alice(*cmd: str) -> subprocess.CompletedProcess[str]:
    return sh("runuser", "-u", "alice", "--", *cmd)


def unit(prop: str) -> str:
    return sh("systemctl", "show", "-P", prop, "labpowerd.service").stdout.strip()


def node_info(path: str) -> dict[str, Any]:
    st = os.stat(path)
    import grp

    return {
        "path": os.path.realpath(path),
        "group": grp.getgrgid(st.st_gid).gr_name,
        "mode": oct(stat.S_IMODE(st.st_mode)),
    }


def main(out: Path) -> int:
    result: dict[str, Any] = {"steps": []}

    def step(name: str, **data: Any) -> None:
        result["steps"].append(name)
        result[name] = json.loads(json.dumps(data))  # as it is now: relays keep changing
        (out / "result.json").write_text(json.dumps(result, indent=1))

    step("before", daemon=unit("ActiveState"))
    board = UhidRelayBoard(2, "SIM01")
    board.start()
    try:
        wait_for("udev link", lambda: os.path.exists(LINK))
        step("plugged", link=LINK, node=node_info(LINK), links=sorted(os.listdir("/dev/labpower")))
        wait_for("labpowerd started by the plug", lambda: unit("ActiveState") == "active")
        step(
            "daemon",
            active=unit("ActiveState"),
            sub=unit("SubState"),
            main_pid=unit("MainPID"),
            user=unit("User"),
        )
        cli_on = as_alice("labpower", "on", "switch")
        step(
            "cli_on",
            rc=cli_on.returncode,
            out=cli_on.stdout + cli_on.stderr,
            relays=board.relays,
        )
        lib_on = as_alice("/opt/labpower/bin/python", "-c", CLIENT, "fan", "on")
        step(
            "client_on",
            rc=lib_on.returncode,
            out=lib_on.stdout + lib_on.stderr,
            relays=board.relays,
        )
        status = as_alice("labpower", "--json", "status")
        step("status", rc=status.returncode, out=status.stdout + status.stderr)

        board.unplug()
        wait_for("link gone", lambda: not os.path.exists(LINK))
        unplugged = as_alice("labpower", "off", "switch")
        step("unplugged", rc=unplugged.returncode, out=unplugged.stdout + unplugged.stderr)
        board.plug()
        wait_for("link back", lambda: os.path.exists(LINK))
        pid = unit("MainPID")
        replugged = as_alice("labpower", "on", "switch")
        step(
            "replugged",
            rc=replugged.returncode,
            out=replugged.stdout + replugged.stderr,
            node=node_info(LINK),
            same_pid=unit("MainPID") == pid,
            relays=board.relays,
        )

        sh("systemctl", "restart", "labpowerd.service")
        wait_for("restarted", lambda: unit("ActiveState") == "active")
        killed_pid = unit("MainPID")
        sh("kill", "-KILL", killed_pid)
        wait_for(
            "restarted after SIGKILL",
            lambda: unit("ActiveState") == "active" and unit("MainPID") not in ("0", killed_pid),
            timeout=90,
        )
        after = as_alice("labpower", "--json", "status")
        step(
            "restarts",
            rc=after.returncode,
            out=after.stdout + after.stderr,
            relays=board.relays,
            switches=[list(s) for s in board.switches],
        )
    finally:
        board.stop()
    journal = sh("journalctl", "-u", "labpowerd.service", "-o", "json", "--no-pager")
    entries = [json.loads(line) for line in journal.stdout.splitlines() if line.strip()]
    step(
        "journal",
        labpower_entries=[
            {k: v for k, v in e.items() if k.startswith("LABPOWER_") or k == "MESSAGE"}
            for e in entries
            if any(k.startswith("LABPOWER_") for k in e)
        ],
        messages=[e.get("MESSAGE") for e in entries][-80:],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

"""The checker of test_network_nspawn.py, inside the systemd-nspawn container as root with
real systemd as PID 1: labpowerd.service as shipped (AF_UNIX only) with network devices,
then with the shipped network drop-in. ``python nspawn_network_check.py OUTDIR``: writes
OUTDIR/result.json.

The devices live in the container (its own loopback): a Gude PDU simulator run by this
checker, and an SNMP device at a port where nothing listens.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

from labpower.backends.sim.http_devices import GudeSimulator

# run as a script: its directory is on sys.path
from nspawn_check import (  # type: ignore[import-not-found]  # a script beside this one
    CONFIG,
    UNIT,
    call_as,
    journal,
    report,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
DROP_IN = REPO / "packaging/systemd-dropins/labpowerd.service.d/network.conf"
#: a runtime drop-in directory: the container's /etc/systemd/system is read-only here
RUNTIME_DROP_INS = Path("/run/systemd/system/labpowerd.service.d")


def targets() -> dict[str, Any]:
    reply = call_as("alice", "List")
    return {t["name"]: t for t in reply["reply"]["parameters"]["targets"]}


def main(out: Path) -> dict[str, Any]:
    r: dict[str, Any] = {}
    sim = GudeSimulator(channels=2).start()
    labpower = pwd.getpwnam("labpower")
    community = CONFIG.parent / "pdu2.community"
    community.write_text("public\n")
    os.chown(community, labpower.pw_uid, labpower.pw_gid)
    community.chmod(0o600)
    CONFIG.write_text(
        "[devices.gude]\n"
        'backend = "gude"\n'
        f'host = "127.0.0.1:{sim.port}"\n'
        "channels = 2\n"
        "health_interval = 0.5\n\n"
        "[devices.snmp]\n"
        'backend = "snmp"\n'
        'host = "127.0.0.1:9"\n'
        'profile = "eaton"\n'
        f'community_file = "{community}"\n'
        "channels = 2\n"
        "timeout = 1.0\n\n"
        '[targets.plug]\ndevice = "gude"\nchannel = 1\n\n'
        '[targets.pdu]\ndevice = "snmp"\nchannel = 1\n'
    )
    # as shipped: the first call starts the daemon through its socket
    r["forbidden_list"] = targets()
    r["forbidden_on"] = call_as("alice", "On", target="plug")
    r["forbidden_journal"] = journal()
    r["relays_while_forbidden"] = dict(sim.relays)
    # the admin installs the drop-in, as its header says
    RUNTIME_DROP_INS.mkdir(parents=True, exist_ok=True)
    shutil.copy(DROP_IN, RUNTIME_DROP_INS / "network.conf")
    subprocess.run(["systemctl", "daemon-reload"], check=True, timeout=60)
    subprocess.run(["systemctl", "restart", UNIT], check=True, timeout=60)
    r["allowed_list"] = wait_until(
        "the Gude PDU available", lambda: (t := targets())["plug"]["available"] and t
    )
    r["allowed_on"] = call_as("alice", "On", target="plug")
    r["relays_after_on"] = dict(sim.relays)
    r["snmp_after"] = wait_until(
        "the SNMP device checked",
        lambda: (p := targets()["pdu"].get("problem")) and "forbidden" not in p and p,
    )
    sim.stop()
    return r


if __name__ == "__main__":
    report(main)

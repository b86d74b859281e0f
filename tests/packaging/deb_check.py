"""The checker that runs inside the systemd-nspawn container of test_deb.py, as root, with
systemd as PID 1 on a fresh Debian 12: ``python3 deb_check.py DEBDIR OUTDIR``.

It acts as the lab's admin (apt, systemctl) and as alice, a member of group labpower (the
``labpower`` command), through install, switching, upgrade, remove and purge, and writes
what it saw to OUTDIR/result.json. It never asserts: the test does.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

CONFIG = """\
[devices.bench]
backend = "mock"
channels = 2
# a board that cannot report its state: after a restart the daemon can only say what it
# remembers (targets.json), which is what the upgrade must keep
readback = false

[targets.dut1]
device = "bench"
channel = 1

[targets.dut2]
device = "bench"
channel = 2
"""
SOCKET = "/run/labpower/labpower.sock"
SHIPPED_DROP_IN = "/usr/share/labpower/systemd/labpowerd.service.d/network.conf"
DROP_IN = "/etc/systemd/system/labpowerd.service.d/network.conf"
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def run(*command: str, user: str | None = None) -> dict[str, Any]:
    if user is not None:
        command = ("runuser", "-u", user, "--", *command)
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=240,
            stdin=subprocess.DEVNULL,
            env=APT_ENV,
            check=False,
        )
    except FileNotFoundError as exc:
        return {"rc": 127, "stdout": "", "stderr": str(exc)}
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def out(*command: str) -> str:
    return str(run(*command)["stdout"]).strip()


def unit(name: str) -> dict[str, str]:
    """What systemd says of a unit."""
    props = "ActiveState,UnitFileState,MainPID,NRestarts,ActiveEnterTimestampMonotonic"
    text = out("systemctl", "show", "--property", props, name)
    return dict(line.partition("=")[::2] for line in text.splitlines())


def labpower_json(*args: str, user: str = "alice") -> dict[str, Any]:
    result = run("labpower", "--json", *args, user=user)
    if result["rc"] == 0:
        # one JSON document, or JSON lines (logs)
        lines = [json.loads(line) for line in str(result["stdout"]).splitlines() if line]
        result["json"] = lines[0] if len(lines) == 1 and isinstance(lines[0], list) else lines
    return result


def cursor() -> str:
    text = out("journalctl", "--quiet", "--no-pager", "-n", "0", "--show-cursor")
    return text.rpartition("-- cursor: ")[2].strip()


def journal_since(after: str) -> list[dict[str, Any]]:
    """The daemon's journal entries after a cursor."""
    text = out(
        "journalctl",
        "--no-pager",
        "-o",
        "json",
        "--after-cursor",
        after,
        "SYSLOG_IDENTIFIER=labpowerd",
    )
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def path_facts(path: str) -> dict[str, Any] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return {
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "socket": stat.S_ISSOCK(st.st_mode),
    }


def installed_version() -> str:
    return out("dpkg-query", "-W", "-f", "${Version} ${db:Status-Status}", "labpower")


def network(r: dict[str, Any]) -> None:
    """A Gude PDU (the package's own simulator) beside the mock board: the unit as installed
    forbids the network; README.Debian's steps open it. The mock lab is back afterwards."""
    r["drop_in_shipped"] = path_facts(SHIPPED_DROP_IN)
    r["drop_in_active_after_install"] = os.path.exists(DROP_IN)
    sim = subprocess.Popen(
        ["labpower-sim", "gude", "--channels", "2", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        banner = sim.stdout.readline()
        host = banner.split('host = "', 1)[1].split('"', 1)[0]
        Path("/etc/labpower/labpowerd.toml").write_text(
            CONFIG + f'\n[devices.gude]\nbackend = "gude"\nhost = "{host}"\nchannels = 2\n'
            '\n[targets.plug]\ndevice = "gude"\nchannel = 1\n'
        )
        # a restart, not a reload: it returns once the daemon is READY with the new file
        r["restart_with_plug"] = run("systemctl", "restart", "labpowerd")
        r["plug_forbidden"] = run("labpower", "on", "plug", user="alice")
        r["families_as_installed"] = out(
            "systemctl", "show", "--value", "--property", "RestrictAddressFamilies", "labpowerd"
        )
        # README.Debian's steps
        r["drop_in_install"] = run("install", "-D", "-m", "644", SHIPPED_DROP_IN, DROP_IN)
        run("systemctl", "daemon-reload")
        run("systemctl", "restart", "labpowerd")
        r["families_with_drop_in"] = out(
            "systemctl", "show", "--value", "--property", "RestrictAddressFamilies", "labpowerd"
        )
        r["plug_on"] = labpower_json("on", "plug")
    finally:
        sim.terminate()
        sim.wait(30)
    os.unlink(DROP_IN)
    run("systemctl", "daemon-reload")
    Path("/etc/labpower/labpowerd.toml").write_text(CONFIG)
    run("systemctl", "restart", "labpowerd")


def check(debdir: Path, r: dict[str, Any]) -> None:
    (first,) = debdir.glob("v1/labpower_*.deb")
    (second,) = debdir.glob("v2/labpower_*.deb")
    r["debs"] = [str(first), str(second)]

    # --- install --------------------------------------------------------------------------
    r["install"] = run("apt-get", "install", "-y", str(first))
    r["installed_v1"] = installed_version()
    r["socket_after_install"] = unit("labpowerd.socket")
    r["service_after_install"] = unit("labpowerd.service")
    r["socket_file"] = path_facts(SOCKET)
    r["labpower_group"] = out("getent", "group", "labpower")
    r["labpower_user"] = out("getent", "passwd", "labpower")
    r["shipped_config_check"] = run("labpowerd", "--check-config", "/etc/labpower/labpowerd.toml")
    r["udev_rules"] = sorted(p.name for p in Path("/lib/udev/rules.d").glob("*labpower*"))
    commands = ("labpowerd", "labpower", "labpower-sim", "labpower-discover")
    r["commands"] = {c: run(c, "--help")["rc"] for c in commands}
    r["man"] = sorted(
        str(p.relative_to("/usr/share/man")) for p in Path("/usr/share/man").glob("man*/labpower*")
    )

    # --- the admin configures a mock lab, alice switches -----------------------------------
    Path("/etc/labpower/labpowerd.toml").write_text(CONFIG)
    run("useradd", "--create-home", "alice")
    run("usermod", "--append", "--groups", "labpower", "alice")
    run("useradd", "--create-home", "bob")
    r["alice_on"] = labpower_json("on", "dut1")
    r["bob_on"] = run("labpower", "on", "dut2", user="bob")
    r["service_after_first_call"] = unit("labpowerd.service")
    r["state_file_after_on"] = path_facts("/var/lib/labpower/targets.json")

    # --- a network device: forbidden as installed, switching once the drop-in is in -------
    network(r)

    # --- upgrade while dut1 is on ----------------------------------------------------------
    r["status_before_upgrade"] = labpower_json("status", "dut1", "dut2")
    r["socket_before_upgrade"] = unit("labpowerd.socket")
    before = cursor()
    r["upgrade"] = run("apt-get", "install", "-y", str(second))
    r["installed_v2"] = installed_version()
    r["service_after_upgrade"] = unit("labpowerd.service")
    r["socket_after_upgrade"] = unit("labpowerd.socket")
    r["config_after_upgrade"] = Path("/etc/labpower/labpowerd.toml").read_text()
    r["status_after_upgrade"] = labpower_json("status", "dut1", "dut2")
    r["history_after_upgrade"] = labpower_json("logs", "-n", "200")
    r["journal_across_upgrade"] = journal_since(before)

    # --- remove, then purge ----------------------------------------------------------------
    r["remove"] = run("apt-get", "remove", "-y", "labpower")
    r["after_remove"] = {
        "status": installed_version(),
        "socket": unit("labpowerd.socket"),
        "service": unit("labpowerd.service"),
        "state_file": path_facts("/var/lib/labpower/targets.json"),
        "config": path_facts("/etc/labpower/labpowerd.toml"),
        "labpowerd": path_facts("/usr/bin/labpowerd"),
        "venv": path_facts("/usr/lib/labpower"),
    }
    r["purge"] = run("apt-get", "purge", "-y", "labpower")
    r["after_purge"] = {
        "status": installed_version(),
        "state_dir": path_facts("/var/lib/labpower"),
        "config_dir": path_facts("/etc/labpower"),
        "socket_unit_file": path_facts("/lib/systemd/system/labpowerd.socket"),
        "enabled_link": path_facts("/etc/systemd/system/sockets.target.wants/labpowerd.socket"),
    }


def main() -> int:
    debdir, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    result: dict[str, Any] = {}
    try:
        check(debdir, result)
    except Exception:
        result["checker_error"] = traceback.format_exc()
    (outdir / "result.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The lab host scenario, run in the guest by boot.sh as root: ``scenario.py OUTDIR``.

It plays the lab with two boards: a uhid USBRelay2 board made here, and a KMTronic board on
QEMU's usb-serial FTDI port, simulated on the host (tests/vm/usb_serial.py), which plugs and
unplugs it when asked over a virtio-serial control channel (:class:`Host`). It lets udev and
systemd do their part, switches as user alice (group labpower) with the ``labpower`` command and
the client library, unplugs and replugs both boards, restarts and kills the daemon, and records
what it saw in OUTDIR/result.json; tests/vm/test_labhost.py makes the assertions on the host.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from labpower.backends.sim.uhid import UhidRelayBoard

HID_LINK = "/dev/labpower/usbrelay-SIM01"
SERIAL_LINK = "/dev/labpower/ft232r-KMT01"
CONTROL = "labpower.ctl"
#: ``python -c CLIENT TARGET OP [TARGET OP]...``: switch with the library, read each back
CLIENT = """
import json, sys
from labpower.client import Client, LabpowerError
out = {}
with Client() as lab:
    for name, op in zip(sys.argv[1::2], sys.argv[2::2]):
        t = lab.target(name)
        try:
            getattr(t, op)()
        except LabpowerError as exc:
            out[name] = {"error": type(exc).__name__, "message": str(exc)}
            continue
        s = t.state()
        out[name] = {"state": s.state, "verified": s.verified, "available": s.available}
print(json.dumps(out))
"""


class Host:
    """The host's end of the control channel (a virtio-serial port, one JSON line each way):
    ``plug`` / ``unplug`` the serial board, ``board`` its relays and switching commands."""

    def __init__(self, name: str = CONTROL) -> None:
        self.fd = os.open(self._node(name), os.O_RDWR)
        self._buf = b""

    @staticmethod
    def _node(name: str) -> str:
        for port in Path("/sys/class/virtio-ports").iterdir():
            if (port / "name").read_text().strip() == name:
                return f"/dev/{port.name}"
        raise FileNotFoundError(f"no virtio-serial port named {name}")

    def ask(self, op: str) -> dict[str, Any]:
        """Send one request, wait for its answer.

        :raises RuntimeError: the host refused it.
        """
        os.write(self.fd, json.dumps({"op": op}).encode() + b"\n")
        while b"\n" not in self._buf:
            chunk = os.read(self.fd, 4096)
            if not chunk:
                raise RuntimeError("control channel closed by the host")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"host: {op}: {answer['error']}")
        return answer


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
    # setpriv, not runuser: alice's uid and groups (labpower among them) without a PAM
    # session, which costs a second per command under emulation
    return sh("setpriv", "--reuid=alice", "--regid=alice", "--init-groups", "--reset-env", *cmd)


def run(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return {"rc": proc.returncode, "out": proc.stdout + proc.stderr}


def unit(prop: str) -> str:
    return sh("systemctl", "show", "-P", prop, "labpowerd.service").stdout.strip()


def node_info(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {
        "path": os.path.realpath(path),
        "group": grp.getgrgid(st.st_gid).gr_name,
        "mode": oct(stat.S_IMODE(st.st_mode)),
    }


def reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def network(share: Path, step: Callable[..., None]) -> None:
    """Network PDUs on the host, as labpowerd reaches them through QEMU's user networking
    (the host's loopback is 10.0.2.2): a Gude PDU (HTTP) and an Eaton PDU (SNMP v2c). The
    admin installs the shipped network drop-in with their address, as its header says, and
    restarts the daemon; alice switches and reads."""
    where = json.loads((share / "network.json").read_text())
    sh("modprobe", "virtio_net")
    Path("/etc/systemd/network").mkdir(parents=True, exist_ok=True)
    Path("/etc/systemd/network/10-lab.network").write_text(
        "[Match]\nDriver=virtio_net\n\n[Network]\nAddress=10.0.2.15/24\n"
    )
    sh("systemctl", "start", "systemd-networkd.service")
    wait_for("the host at 10.0.2.2", lambda: reachable(where["http"]), timeout=90)
    drop_ins = Path("/etc/systemd/system/labpowerd.service.d")
    drop_ins.mkdir(parents=True, exist_ok=True)
    shipped = share / "packaging/systemd-dropins/labpowerd.service.d/network.conf"
    (drop_ins / "network.conf").write_text(shipped.read_text() + "IPAddressAllow=10.0.2.2\n")
    community = Path("/etc/labpower/pdu.community")
    community.write_text("lab\n")
    labpower = pwd.getpwnam("labpower")
    os.chown(community, labpower.pw_uid, labpower.pw_gid)
    community.chmod(0o600)
    with open("/etc/labpower/labpowerd.toml", "a") as config:
        config.write(
            f'\n[devices.gude]\nbackend = "gude"\nhost = "{where["http"]}"\nchannels = 2\n'
            "timeout = 10.0\n"
            f'\n[devices.eaton]\nbackend = "snmp"\nhost = "{where["snmp"]}"\n'
            f'profile = "eaton"\ncommunity_file = "{community}"\nchannels = 2\n'
            "timeout = 10.0\n"
            '\n[targets.outlet]\ndevice = "gude"\nchannel = 2\n'
            '\n[targets.socket]\ndevice = "eaton"\nchannel = 1\n'
        )
    sh("systemctl", "daemon-reload")
    sh("systemctl", "restart", "labpowerd.service")
    on = as_alice("labpower", "--json", "on", "outlet", "socket")
    read = as_alice("labpower", "--json", "read", "socket")
    step(
        "network",
        **run(on),
        read=run(read),
        families=unit("RestrictAddressFamilies"),
        allowed=unit("IPAddressAllow"),
    )


def main(out: Path) -> int:
    result: dict[str, Any] = {"steps": []}
    host = Host()

    def step(name: str, **data: Any) -> None:
        result["steps"].append(name)
        result[name] = json.loads(json.dumps(data))  # as it is now: relays keep changing
        (out / "result.json").write_text(json.dumps(result, indent=1))

    def relays() -> dict[str, Any]:
        return {"hid": board.relays, "serial": host.ask("board")["relays"]}

    def both_there() -> bool:
        return os.path.exists(HID_LINK) and os.path.exists(SERIAL_LINK)

    def both_gone() -> bool:
        return not os.path.exists(HID_LINK) and not os.path.exists(SERIAL_LINK)

    step("before", daemon=unit("ActiveState"))
    board = UhidRelayBoard(2, "SIM01")
    host.ask("plug")
    board.start()
    try:
        wait_for("udev links", both_there)
        step(
            "plugged",
            hid=node_info(HID_LINK),
            serial=node_info(SERIAL_LINK),
            links=sorted(os.listdir("/dev/labpower")),
            by_id=sorted(os.listdir("/dev/serial/by-id")),
        )
        wait_for("labpowerd started by the plug", lambda: unit("ActiveState") == "active")
        step(
            "daemon",
            active=unit("ActiveState"),
            sub=unit("SubState"),
            main_pid=unit("MainPID"),
            user=unit("User"),
        )
        step("cli_on", **run(as_alice("labpower", "--json", "on", "switch", "lamp")), **relays())
        lib_on = as_alice("/opt/labpower/bin/python", "-c", CLIENT, "fan", "on", "pump", "on")
        step("client_on", **run(lib_on), **relays())

        host.ask("unplug")
        board.unplug()
        wait_for("links gone", both_gone)
        # the command and the library at once: each is seconds of Python start-up here
        with ThreadPoolExecutor(2) as pool:
            unplugged = pool.submit(as_alice, "labpower", "off", "switch", "lamp")
            lib_off = pool.submit(
                as_alice, "/opt/labpower/bin/python", "-c", CLIENT, "fan", "off", "pump", "off"
            )
            step("unplugged", **run(unplugged.result()), client=run(lib_off.result()))

        pid = unit("MainPID")
        host.ask("plug")
        board.plug()
        wait_for("links back", both_there)
        replugged = as_alice("labpower", "--json", "on", "switch", "lamp")
        step(
            "replugged",
            **run(replugged),
            hid_node=node_info(HID_LINK),
            serial_node=node_info(SERIAL_LINK),
            same_pid=unit("MainPID") == pid,
            **relays(),
        )

        sh("systemctl", "restart", "labpowerd.service")  # returns once READY (Type=notify)
        restarted = unit("ActiveState")
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
            **run(after),
            restarted=restarted,
            hid_switches=[list(s) for s in board.switches],
            serial_switches=host.ask("board")["switches"],
            **relays(),
        )
        try:
            network(out.parent, step)
        except Exception as exc:  # its own test reports it; the boards' scenario stands
            step("network", error=repr(exc), rc=-1, out="")
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

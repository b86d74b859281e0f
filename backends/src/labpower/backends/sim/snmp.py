"""SNMP PDUs simulated by snmpsim (PyPI ``snmpsim``, a real SNMP agent): ``.snmprec`` data
for each profile's MIB, writable so that a SET changes what the next GET returns.

PDUs that switch and report through one OID and have no readings (APC MasterSwitch and
rPDU) use snmpsim's ``writecache`` variation; the others (APC rPDU2, Raritan, Eaton,
ServerTech, CyberPower) the ``labpower_outlet`` variation module shipped beside this file,
whose readings follow the outlet's state.
:class:`SnmpAgent` runs ``snmpsim-command-responder`` as a child process on loopback::

    with SnmpAgent(tmp_path, "raritan", outlets=8, community="lab") as pdu:
        pdu.address          # "127.0.0.1:PORT": a device's host
        pdu.pause()          # SIGSTOP: the agent stops answering; resume() ends it
        pdu.ignore_next_switch(3)

SNMPv3: ``v3_user``, ``auth_key`` (SHA) and ``priv_key`` (AES); the v3 context name is the
community (snmpsim picks the data file by it).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from labpower.backends.net.snmp_community import encode_request
from labpower.backends.net.snmp_profiles import ENTERPRISES, PROFILES

MODULES = Path(__file__).with_name("snmpsim_modules")
START_TIMEOUT = 30.0
SYS_DESCR_OID = "1.3.6.1.2.1.1.1.0"
SYS_DESCR = {
    "apc-ms": ("APC Web/SNMP Management Card (MN:AP9211)", "318.1.3.4.3"),
    "apc-rpdu": ("APC Web/SNMP Management Card (MN:AP7920)", "318.1.3.4.5"),
    "apc-rpdu2": ("APC Web/SNMP Management Card (MN:AP8959EU3)", "318.1.3.4.6"),
    "raritan": ("Raritan PX3-5190R", "13742.6"),
    "eaton": ("Eaton ePDU MA 1P IN:C20 16A OUT:8xC13", "534.6.6.7"),
    "sentry3": ("Sentry Switched CDU Version 7.1a", "1718.3"),
    "sentry4": ("Sentry Switched PDU Version 8.0k", "1718.4"),
    "cyberpower": ("CyberPower PDU41001", "3808.1.1.3"),
}
#: what the metering models report for an outlet that is on (raw, in each MIB's unit)
METER_ON = {
    "apc-rpdu2": 4,
    "raritan": 105,
    "eaton": 105,
    "sentry3": 11,
    "sentry4": 11,
    "cyberpower": 2,
}
VOLTAGE_RAW = {
    "apc-rpdu2": 230,
    "raritan": 230,
    "eaton": 230_000,
    "sentry3": 2300,
    "sentry4": 2300,
    "cyberpower": 2300,
}
#: the readings those raw values mean, for tests: profile -> (volts, amperes when on)
READINGS = {
    "apc-rpdu2": (230.0, 0.4),
    "raritan": (230.0, 0.105),
    "eaton": (230.0, 0.105),
    "sentry3": (230.0, 0.11),
    "sentry4": (230.0, 0.11),
    "cyberpower": (230.0, 0.2),
}
#: PDUs that switch and report through one OID and have no readings: snmpsim's writecache
SAME_OID = ("apc-ms", "apc-rpdu")


def snmprec(profile: str, outlets: int, names: dict[int, str] | None = None) -> str:
    """The ``.snmprec`` data of a PDU of ``profile`` with ``outlets`` outlets, all off."""
    p = PROFILES[profile]
    descr, object_id = SYS_DESCR[profile]
    records: dict[str, str] = {
        "1.3.6.1.2.1.1.1.0": f"4|{descr}",
        "1.3.6.1.2.1.1.2.0": f"6|{ENTERPRISES}.{object_id}",
        "1.3.6.1.2.1.1.5.0": f"4|{profile}-sim",
    }
    for n in range(1, outlets + 1):
        key = f"{profile}.{n}"
        if profile in SAME_OID:
            records[p.oid(p.state, n)] = f"2:writecache|value={p.state_off}"
        else:
            on_oid, on_value = p.on
            off_oid, off_value = p.off
            command = f"2:labpower_outlet|outlet={key},role=command"
            if on_oid != off_oid:  # Eaton: one OID switches on, another off; -1 when idle
                records[p.oid(on_oid, n)] = f"{command},on={on_value},idle=-1"
                records[p.oid(off_oid, n)] = f"{command},off={off_value},idle=-1"
            else:  # ServerTech reads none(0) back; APC rPDU2 and Raritan the state
                idle = ",idle=0" if profile.startswith("sentry") else ""
                records[p.oid(on_oid, n)] = f"{command},on={on_value},off={off_value}{idle}"
            if p.state != on_oid:  # CyberPower switches and reports through one OID
                records[p.oid(p.state, n)] = (
                    f"2:labpower_outlet|outlet={key},role=state,on={p.state_on},off={p.state_off}"
                )
        if p.name_oid:
            records[p.oid(p.name_oid, n)] = f"4|{(names or {}).get(n, f'Outlet {n}')}"
        if p.current is not None and p.voltage is not None:
            records[p.current.at(p, n)] = (
                f"66:labpower_outlet|outlet={key},role=meter,on={METER_ON[profile]},off=0"
            )
            records[p.voltage.at(p, n)] = f"66|{VOLTAGE_RAW[profile]}"
            for meter, digits in ((p.current, 3), (p.voltage, 0)):
                if meter.digits:
                    records[p.oid(meter.digits, n)] = f"66|{digits}"
    ordered = sorted(records, key=lambda oid: tuple(int(x) for x in oid.split(".")))
    return "".join(f"{oid}|{records[oid]}\n" for oid in ordered)


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class SnmpAgent:
    """A simulated SNMP PDU: snmpsim serving one profile's data on loopback."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        profile: str,
        *,
        outlets: int = 8,
        community: str = "public",
        names: dict[int, str] | None = None,
        v3_user: str | None = None,
        auth_key: str | None = None,
        priv_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if profile not in SYS_DESCR:
            raise ValueError(f"no simulated PDU for profile {profile!r}")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", community):
            raise ValueError(f"community {community!r}: letters, digits, - and _ only")
        self.directory = Path(directory)
        self.profile = profile
        self.outlets = outlets
        self.community = community
        self.names = names
        self.v3 = (v3_user, auth_key, priv_key)
        self.host = host
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = b""
        self.log = self.directory / "snmpsim.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def control(self) -> Path:
        return self.directory / "control"

    def start(self) -> SnmpAgent:
        """Write the data and start snmpsim; returns once it listens.

        :raises RuntimeError: snmpsim did not come up (its output is in the message).
        """
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.control.mkdir(exist_ok=True)
        (data / f"{self.community}.snmprec").write_text(
            snmprec(self.profile, self.outlets, self.names)
        )
        if not self.port:
            self.port = free_udp_port(self.host)
        self.output = b""  # a restarted agent: wait for its own banner, not the last one's
        args = [
            f"--data-dir={data}",
            f"--cache-dir={self.directory / 'cache'}",
            f"--variation-modules-dir={MODULES}",
            f"--variation-module-options=labpower_outlet:control:{self.control}",
            f"--agent-udpv4-endpoint={self.address}",
            "--logging-method=stderr",
        ]
        user, auth_key, priv_key = self.v3
        if user:
            args += [f"--v3-user={user}"]
            if auth_key:
                args += [f"--v3-auth-key={auth_key}", "--v3-auth-proto=SHA"]
            if priv_key:
                args += [f"--v3-priv-key={priv_key}", "--v3-priv-proto=AES"]
        if os.geteuid() == 0:
            # snmpsim refuses to run as root without dropping privileges; dropping them to
            # root keeps the interpreter (and its lazily imported modules) readable
            args += ["--process-user=root", "--process-group=root"]
        with open(self.log, "wb") as log:
            # to a file, not a pipe: nobody reads the pipe once it runs, and a full pipe
            # would stop the agent
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _RUN, *args], stdout=subprocess.DEVNULL, stderr=log
            )
        end = time.monotonic() + START_TIMEOUT
        while b"Listening at UDP" not in self.output:
            if time.monotonic() > end or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"snmpsim did not start: {self.output[-2000:]!r}")
            time.sleep(0.02)
            self.output = self.log.read_bytes()
        # snmpsim prints that line before its socket is bound: ask until it answers
        while not self._answers():
            if time.monotonic() > end or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"snmpsim does not answer: {self.log.read_bytes()[-2000:]!r}")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        """Whether the agent answers a GET of sysDescr (SNMPv2c; v3 agents answer v2c too,
        with the community as their context)."""
        request = encode_request("2c", self.community.encode(), 1, "get", [(SYS_DESCR_OID, None)])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            try:
                probe.connect((self.host, self.port))
                probe.send(request)
                probe.recv(65536)
            except OSError:  # refused (not bound yet) or no answer yet
                return False
        return True

    def pause(self) -> None:
        """The agent stops answering (SIGSTOP), as a PDU that hangs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def ignore_next_switch(self, outlet: int) -> None:
        """The next SET switching ``outlet`` is accepted but changes nothing (profiles with
        a separate state OID)."""
        if self.profile in SAME_OID:
            raise ValueError(f"{self.profile}: the writecache profiles cannot ignore a switch")
        (self.control / f"ignore-{self.profile}.{outlet}").touch()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SnmpAgent:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


#: snmpsim's main, with its own variation modules (writecache) searched beside ours
_RUN = (
    "import os, sys, snmpsim; "
    "sys.argv.append('--variation-modules-dir=' "
    "+ os.path.join(os.path.dirname(snmpsim.__file__), 'variation')); "
    "from snmpsim.commands.responder import main; sys.exit(main())"
)

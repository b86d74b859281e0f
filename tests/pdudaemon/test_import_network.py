"""``labpower import-pdudaemon`` and pdudaemon's network PDU drivers (1.1.1): the PDUs of
pdudaemon's own example config (share/pdudaemon.conf: APC over telnet and SNMP v1/v3,
ServerTech PRO2) and its other network drivers become ``snmp`` and HTTP devices that
``labpowerd --check-config`` accepts; imported devices, pointed at the simulators, switch."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from labpower.backends.sim.http_devices import TasmotaSimulator
from labpower.backends.sim.shelly import ShellySimulator
from labpower.backends.sim.snmp import SnmpAgent
from labpower.daemon.config import load

LABPOWER = (sys.executable, "-m", "labpower.client.cli")
LABPOWERD = str(Path(sys.executable).parent / "labpowerd")

#: PDUs as pdudaemon's example config and driver sources give them (settings and defaults)
NETWORK: dict[str, Any] = {
    "pdus": {
        "apc9210": {"driver": "apc9210"},
        "apc7952": {"driver": "apc7952", "telnetport": 5023},
        "apc8959": {"driver": "apc8959"},
        "apc-snmpv3-withauth": {
            "driver": "snmpv3",
            "username": "pdudaemon",
            "authpassphrase": "pdudaemonauthpassphrase",
            "privpassphrase": "pdudaemonprivpassphrase",
            "mib": "PowerNet-MIB",
            "controlpoint": "sPDUOutletCtl",
            "onsetting": "1",
            "offsetting": 2,
        },
        "apc-snmpv1-private": {
            "driver": "snmpv1",
            "community": "private",
            "mib": "PowerNet-MIB",
            "controlpoint": "sPDUOutletCtl",
            "onsetting": "1",
            "offsetting": 2,
        },
        "raritan-oid": {
            "driver": "snmpv1",
            "community": "private",
            "oid": ".1.3.6.1.4.1.13742.6.4.1.2.1.2.1.*",
            "onsetting": 1,
            "offsetting": 0,
        },
        "servertechpro2": {
            "driver": "servertechpro2",
            "ip": "192.168.10.4",
            "protocol": "https",
            "insecure": True,
            "username": "testuser",
            "password": "testuser",
        },
        "cps": {"driver": "cyberpower81001"},
        "plug": {"driver": "shelly_gen2"},
        "sonoff": {"driver": "sonoff_s20_tasmota", "ip": "10.0.0.9"},
        "strip": {"driver": "tasmota", "port_count": 4, "username": "admin", "password": "pw"},
        "netio": {"driver": "netiojson", "ip": "10.0.0.7", "port": 8080},
        "gude": {"driver": "gude1202"},
        "eaton-mib": {
            "driver": "snmpv1",
            "community": "c",
            "mib": "EATON-EPDU-MIB",
            "controlpoint": "outletControlOnCmd",
            "onsetting": 0,
            "offsetting": 0,
        },
    },
    "aliases": {
        "board-7": {"hostname": "plug", "port": 0},
        "board-9": {"hostname": "apc8959", "port": 21},
    },
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LABPOWER, *args], capture_output=True, text=True, timeout=60, check=False
    )


def imported(tmp_path: Path, doc: dict[str, Any]) -> tuple[Path, subprocess.CompletedProcess[str]]:
    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(doc))
    out = tmp_path / "labpowerd.toml"
    result = run("import-pdudaemon", str(conf), "-o", str(out), "--secrets-dir", str(tmp_path))
    return out, result


def test_network_pdus_become_snmp_and_http_devices(tmp_path: Path) -> None:
    for name in ("apc9210", "apc7952", "apc8959", "servertechpro2"):
        (tmp_path / f"{name}.community").write_text("private\n")
        (tmp_path / f"{name}.community").chmod(0o600)
    out, result = imported(tmp_path, NETWORK)
    check = subprocess.run(
        [LABPOWERD, "--check-config", str(out)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stderr + out.read_text()
    cfg = load(out)
    devices = {
        name: (d.backend, getattr(d.options, "profile", None), d.channels)
        for name, d in cfg.devices.items()
    }
    assert devices == {
        "apc9210": ("snmp", "apc", 8),
        "apc7952": ("snmp", "apc", 24),
        "apc8959": ("snmp", "apc", 24),
        "apc-snmpv3-withauth": ("snmp", "apc-ms", 8),
        "apc-snmpv1-private": ("snmp", "apc-ms", 8),
        "raritan-oid": ("snmp", "custom", 8),
        "servertechpro2": ("snmp", "sentry", 8),
        "cps": ("snmp", "cyberpower", 8),
        "plug": ("shelly", None, 4),
        "sonoff": ("tasmota", None, 1),
        "strip": ("tasmota", None, 4),
        "netio": ("netio", None, 4),
        "gude": ("gude", None, 1),
    }
    opts = {name: d.options for name, d in cfg.devices.items()}
    # telnet-driven APCs: SNMP with the community from a file the admin fills in
    assert opts["apc8959"].community.origin == str(tmp_path / "apc8959.community")
    assert opts["servertechpro2"].host == "192.168.10.4"  # pdudaemon's "ip" setting
    # pdudaemon's snmpv1 is pysnmp's default CommunityData: v2c
    assert (opts["apc-snmpv1-private"].version, opts["cps"].version) == ("2c", "1")
    v3 = opts["apc-snmpv3-withauth"]
    assert (v3.version, v3.user, v3.auth_protocol, v3.priv_protocol) == (
        "3",
        "pdudaemon",
        "MD5",
        "DES",
    )
    assert v3.auth_key.reveal() == "pdudaemonauthpassphrase"
    assert opts["raritan-oid"].on_oid == "1.3.6.1.4.1.13742.6.4.1.2.1.2.1.{n}"
    assert (opts["raritan-oid"].on_value, opts["raritan-oid"].off_value) == (1, 0)
    assert (opts["strip"].user, opts["strip"].password.reveal()) == ("admin", "pw")
    assert opts["netio"].host == "10.0.0.7:8080"
    # pdudaemon's ports: shelly_gen2 counts switches from 0
    names = {t.pdudaemon: (t.name, t.device, t.channel, t.aliases) for t in cfg.targets.values()}
    assert names["plug:0"] == ("plug-0", "plug", 1, ("board-7",))
    assert names["plug:3"] == ("plug-3", "plug", 4, ())
    assert names["apc8959:21"] == ("apc8959-21", "apc8959", 21, ("board-9",))
    # what cannot be taken is named: a MIB name labpower would have to compile
    assert result.returncode == 1
    left_out = [line for line in result.stderr.splitlines() if "left out" in line]
    assert left_out == [
        "labpower import-pdudaemon: left out: PDU 'eaton-mib' (driver 'snmpv1'): MIB "
        "'EATON-EPDU-MIB' controlpoint 'outletControlOnCmd': labpower takes numeric OIDs "
        "(profile custom); give the OID"
    ]
    # communities and passwords inline: the file is not for everyone, and the admin is told
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert "chmod 640" in result.stderr
    text = out.read_text()
    assert "enable SNMP write access on the PDU" in text
    assert "set channels to its count" in text


def test_imported_network_devices_switch(tmp_path: Path, start_daemon: Any) -> None:
    """pdudaemon's snmpv1/PowerNet-MIB PDU and its shelly_gen2 plug, imported, with their
    hosts pointed at simulators (pdudaemon knows no ports: port 161 and 80)."""
    doc = {
        "pdus": {
            "apc": NETWORK["pdus"]["apc-snmpv1-private"],
            "plug": {"driver": "shelly_gen2"},
            "sonoff": {"driver": "sonoff_s20_tasmota"},
        }
    }
    out, result = imported(tmp_path, doc)
    assert result.returncode == 0, result.stderr
    with (
        SnmpAgent(tmp_path / "agent", "apc-ms", outlets=8, community="private") as agent,
        ShellySimulator(channels=4) as shelly,
        TasmotaSimulator() as tasmota,
    ):
        text = out.read_text()
        for name, address in (
            ("apc", agent.address),
            ("plug", shelly.address),
            ("sonoff", tasmota.address),
        ):
            text = text.replace(f'host = "{name}"', f'host = "{address}"')
        out.write_text(text)
        cfg = load(out)
        daemon = start_daemon(out)
        with daemon.client(timeout=30) as lab:
            assert lab.on("apc-3").verified
            assert lab.on("plug-2").verified  # pdudaemon's port 2: switch id 2
            assert lab.on("sonoff-1").verified
            assert shelly.relays == {1: False, 2: False, 3: True, 4: False}
            assert tasmota.relays == {1: True}
            assert lab.get("apc-3").state == "on"
        assert cfg.targets["plug-2"].channel == 3

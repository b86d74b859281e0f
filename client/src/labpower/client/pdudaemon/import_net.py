"""pdudaemon's network PDU drivers (1.1.1), as labpower's ``snmp`` and HTTP backends see
them, for ``labpower import-pdudaemon``.

pdudaemon drives most APC PDUs, the ServerTech PRO2 and the Gude 1202 over telnet or their
web pages; labpower speaks SNMP or the devices' HTTP APIs to the same units. Where that
needs something pdudaemon's config does not hold (an SNMP write community), the device
names a file for it (``community_file``) and a comment says what to put there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: APC telnet drivers -> outlets of the model (labpower's ``apc`` profile finds the MIB)
APC_OUTLETS = {
    "apc7900": 8,
    "apc7920": 8,
    "apc7921": 8,
    "apc7932": 16,
    "apc7952": 24,
    "apc8959": 24,
    "apc9210": 8,
    "apc9218": 8,
    "ap9218": 8,
    "apc9606": 8,
    "ap9606": 8,
}
#: pysnmp's protocol names, as pdudaemon's snmpv3 settings give them -> labpower's
_AUTH = {
    "usmHMACMD5AuthProtocol": "MD5",
    "usmHMACSHAAuthProtocol": "SHA",
    "usmHMAC128SHA224AuthProtocol": "SHA224",
    "usmHMAC192SHA256AuthProtocol": "SHA256",
    "usmHMAC256SHA384AuthProtocol": "SHA384",
    "usmHMAC384SHA512AuthProtocol": "SHA512",
}
_PRIV = {
    "usmDESPrivProtocol": "DES",
    "usm3DESEDEPrivProtocol": "3DES",
    "usmAesCfb128Protocol": "AES",
    "usmAesCfb192Protocol": "AES192",
    "usmAesCfb256Protocol": "AES256",
}
TELNET = "pdudaemon drove this PDU over telnet; labpower uses SNMP"
COUNT = "pdudaemon does not know how many outlets this PDU has: set channels to its count"


@dataclass(slots=True)
class NetDevice:
    """A labpower device for one pdudaemon network PDU: its options in order, the number of
    its channels, pdudaemon's number of channel 1, and comments for the admin."""

    backend: str
    channels: int
    options: list[tuple[str, str | int]] = field(default_factory=list)
    first_port: int = 1
    notes: list[str] = field(default_factory=list)
    #: whether an option holds a secret written inline (the file is then not world-readable)
    secret: bool = False


class Unsupported(ValueError):
    """This pdudaemon PDU cannot be mapped: the message says why."""


def _int(settings: Mapping[str, Any], key: str, default: int, pdu: str) -> int:
    value = settings.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Unsupported(f"{key} {value!r} is not a number") from None
    if not 1 <= number <= 128:
        raise Unsupported(f"{key} {number} is out of range")
    return number


def _host(settings: Mapping[str, Any], pdu: str, port: object = None) -> str:
    host = str(settings.get("ip") or pdu)
    if port is None or str(port) == "80":
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _community_file(device: NetDevice, secrets_dir: str, name: str, why: str) -> None:
    path = f"{secrets_dir.rstrip('/')}/{name}.community"
    device.options.append(("community_file", path))
    device.notes.append(
        f"{why}: enable SNMP write access on the PDU and put its write community in {path} "
        "(readable by labpowerd's user only)"
    )


def _snmp(driver: str, settings: Mapping[str, Any], pdu: str) -> NetDevice:
    """pdudaemon's generic ``snmpv1`` / ``snmpv3`` drivers."""
    try:
        on, off = int(settings["onsetting"]), int(settings["offsetting"])
    except (KeyError, TypeError, ValueError):
        raise Unsupported("onsetting and offsetting must be numbers") from None
    device = NetDevice("snmp", 8, [("host", _host(settings, pdu))], notes=[COUNT])
    oid, mib = settings.get("oid"), settings.get("mib")
    if isinstance(oid, str) and mib is None:
        template = oid.strip().lstrip(".").replace("*", "{n}")
        if "{n}" not in template:
            template += ".{n}"
        device.options += [
            ("profile", "custom"),
            ("on_oid", template),
            ("state_oid", template),
            ("on_value", on),
            ("off_value", off),
        ]
        device.notes.append(
            "labpower reads the state back from state_oid (here the switching OID): set "
            "state_oid, state_on and state_off if the PDU reports it elsewhere"
        )
    elif (mib, settings.get("controlpoint"), on, off) == ("PowerNet-MIB", "sPDUOutletCtl", 1, 2):
        device.options.append(("profile", "apc-ms"))
    else:
        raise Unsupported(
            f"MIB {mib!r} controlpoint {settings.get('controlpoint')!r}: labpower takes "
            "numeric OIDs (profile custom); give the OID"
        )
    if driver == "snmpv1":
        community = settings.get("community")
        if not isinstance(community, str) or not community:
            raise Unsupported("snmpv1 needs a community")
        # pdudaemon's CommunityData() is pysnmp's default: SNMP v2c
        device.options += [("version", "2c"), ("community", community)]
        device.secret = True
        return device
    user = settings.get("username")
    if not isinstance(user, str) or not user:
        raise Unsupported("snmpv3 needs a username")
    device.options += [("version", "3"), ("user", user)]
    auth, priv = settings.get("authpassphrase"), settings.get("privpassphrase")
    if auth:
        name = settings.get("auth_protocol") or "usmHMACMD5AuthProtocol"  # pysnmp's default
        if name not in _AUTH:
            raise Unsupported(f"auth_protocol {name!r} is not supported")
        device.options += [("auth_protocol", _AUTH[name]), ("auth_key", str(auth))]
        device.secret = True
    if priv:
        name = settings.get("priv_protocol") or "usmDESPrivProtocol"
        if name not in _PRIV:
            raise Unsupported(f"priv_protocol {name!r} is not supported")
        device.options += [("priv_protocol", _PRIV[name]), ("priv_key", str(priv))]
    return device


def _credentials(device: NetDevice, settings: Mapping[str, Any], user: str | None) -> None:
    """HTTP user and password, with pdudaemon's defaults where it has them."""
    password = settings.get("password", "admin" if user else None)
    if password is None:
        return
    device.options += [("user", str(settings.get("username", user or "admin")))]
    device.options += [("password", str(password))]
    device.secret = True


def network_device(
    driver: str, settings: Mapping[str, Any], pdu: str, secrets_dir: str
) -> NetDevice | None:
    """The labpower device for a pdudaemon network PDU, None if the driver is not one of
    these. :raises Unsupported: it is, but this PDU's settings cannot be taken."""
    if driver.lower() in APC_OUTLETS:
        device = NetDevice(
            "snmp",
            APC_OUTLETS[driver.lower()],
            [("host", _host(settings, pdu)), ("profile", "apc")],
        )
        _community_file(device, secrets_dir, pdu, TELNET)
        return device
    if driver == "cyberpower81001":  # pdudaemon runs snmpset -v 1 -c private
        device = NetDevice(
            "snmp",
            8,
            [
                ("host", _host(settings, pdu)),
                ("profile", "cyberpower"),
                ("version", "1"),
                ("community", "private"),
            ],
            secret=True,
        )
        return device
    if driver == "servertechpro2":
        device = NetDevice(
            "snmp",
            8,
            [("host", _host(settings, pdu)), ("profile", "sentry")],
            notes=[COUNT],
        )
        _community_file(device, secrets_dir, pdu, "pdudaemon drove this PDU over its web API")
        return device
    if driver in ("snmpv1", "snmpv3"):
        return _snmp(driver, settings, pdu)
    if driver == "shelly_gen2":  # pdudaemon's ports are the switch ids 0..3
        return NetDevice("shelly", 4, [("host", _host(settings, pdu))], first_port=0)
    tasmota = {"sonoff_s20_tasmota": 1, "brennenstuhl_wspl01_tasmota": 2}
    if driver in tasmota or driver == "tasmota":
        count = tasmota.get(driver) or _int(settings, "port_count", 1, pdu)
        device = NetDevice("tasmota", count, [("host", _host(settings, pdu))])
        if settings.get("password") is not None:
            _credentials(device, settings, None)
        return device
    if driver == "netiojson":
        count = _int(settings, "number_of_outputs", 4, pdu)
        device = NetDevice("netio", count, [("host", _host(settings, pdu, settings.get("port")))])
        _credentials(device, settings, "admin")
        return device
    if driver in ("gude1202", "netio4"):
        backend, count = ("gude", 1) if driver == "gude1202" else ("netio", 4)
        device = NetDevice(backend, count, [("host", _host(settings, pdu))])
        device.notes.append(
            f"pdudaemon drove this PDU over telnet; labpower uses its HTTP "
            f"{'interface' if backend == 'gude' else 'JSON API (enable it on the device)'}"
        )
        return device
    return None

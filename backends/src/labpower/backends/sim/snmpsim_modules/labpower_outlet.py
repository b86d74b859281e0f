"""snmpsim variation module ``labpower_outlet``: outlets whose state OID follows the
command OID, as on PDUs that switch through one OID and report through another (Raritan,
Eaton, ServerTech, APC rPDU2). snmpsim's own ``writecache`` covers PDUs that switch and
report through the same OID (APC sPDUOutletCtl and rPDU, CyberPower).

Records (the value is a comma-separated list of settings)::

    OID|2:labpower_outlet|outlet=K,role=command,on=1,off=0      SET 1: on, SET 0: off
    OID|2:labpower_outlet|outlet=K,role=command,on=0,idle=-1    any SET of 0: on (Eaton)
    OID|2:labpower_outlet|outlet=K,role=state,on=7,off=8        GET: 7 while on, 8 while off
    OID|66:labpower_outlet|outlet=K,role=meter,on=105,off=0     a reading that follows it

``K`` names the outlet (any text); ``initial=on`` on its state record starts it on. A GET of
a command OID answers ``idle`` if given, else the value of the current state. A SET of
another value is refused (wrongValue). With ``--variation-module-options=
labpower_outlet:control=DIR``, a file ``DIR/ignore-K`` makes the next switch of outlet K
change nothing (the file is removed): a PDU that ignores a command. In that directory the
module also appends every switching SET it takes to ``switches`` (``K 1`` on, ``K 0`` off,
ignored or not), keeps each outlet's state in ``state-K`` (``1`` or ``0``), takes a state
set from outside (a button on the PDU) from a file ``preset-K`` holding ``1`` or ``0`` (the
file is removed), and while a file ``garble`` exists answers no state at all, as a PDU of
another MIB would.
"""

from __future__ import annotations

import os
from typing import Any

from pysnmp.proto import rfc1902
from pysnmp.smi import error

# set by snmpsim before each call
moduleContext: dict[str, Any] = {}
recordContext: dict[str, Any] = {}

_TYPES = {"2": rfc1902.Integer32, "65": rfc1902.Counter32, "66": rfc1902.Gauge32}


def init(**context: Any) -> None:
    moduleContext["settings"] = dict(
        item.split(":", 1) for item in (context.get("options") or "").split(",") if item
    )
    moduleContext["outlets"] = {}


def _settings(value: str) -> dict[str, str]:
    if "settings" not in recordContext:
        recordContext["settings"] = dict(item.split("=", 1) for item in value.split(","))
    settings: dict[str, str] = recordContext["settings"]
    return settings


def _state(settings: dict[str, str]) -> bool:
    outlets: dict[str, bool] = moduleContext["outlets"]
    key = settings["outlet"]
    if key not in outlets:
        outlets[key] = settings.get("initial") == "on"
    return outlets[key]


def _control(name: str) -> str | None:
    control: str | None = moduleContext["settings"].get("control")
    return os.path.join(control, name) if control else None


def _take(name: str) -> str | None:
    """The text of control file ``name``, which is removed; None if there is none."""
    path = _control(name)
    if path is None:
        return None
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
        os.unlink(path)
    except FileNotFoundError:
        return None
    return text


def _ignored(key: str) -> bool:
    return _take(f"ignore-{key}") is not None


def _write(name: str, text: str, mode: str = "w") -> None:
    path = _control(name)
    if path is not None:
        with open(path, mode, encoding="ascii") as f:
            f.write(text)


def _set_state(key: str, on: bool) -> None:
    moduleContext["outlets"][key] = on
    _write(f"state-{key}", "1" if on else "0")


def variate(oid: Any, tag: str, value: str, **context: Any) -> tuple[Any, str, Any]:
    if not context["nextFlag"] and not context["exactMatch"]:
        return context["origOid"], tag, context["errorStatus"]
    settings = _settings(value)
    kind = _TYPES[tag.partition(":")[0]]
    preset = _take(f"preset-{settings['outlet']}")
    if preset is not None:
        _set_state(settings["outlet"], preset.strip() == "1")
    on = _state(settings)
    role = settings["role"]
    garbled = _control("garble")
    if role == "state" and garbled is not None and os.path.exists(garbled):
        return context["origOid"], tag, context["errorStatus"]
    if context["setFlag"]:
        idx = max(0, context["varsTotal"] - context["varsRemaining"] - 1)
        if role != "command":
            raise error.NotWritableError(name=oid, idx=idx)
        wanted = int(context["origValue"])
        choices = {int(settings[k]): k == "on" for k in ("on", "off") if k in settings}
        if wanted not in choices:
            raise error.WrongValueError(name=oid, idx=idx)
        _write("switches", f"{settings['outlet']} {int(choices[wanted])}\n", "a")
        if not _ignored(settings["outlet"]):
            _set_state(settings["outlet"], choices[wanted])
        return oid, tag, context["origValue"]
    if role == "command" and "idle" in settings:
        return oid, tag, kind(int(settings["idle"]))
    return oid, tag, kind(int(settings["on" if on else "off"]))


def shutdown(**context: Any) -> None:
    pass

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
change nothing (the file is removed): a PDU that ignores a command.
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


def _ignored(key: str) -> bool:
    control = moduleContext["settings"].get("control")
    if not control:
        return False
    flag = os.path.join(control, f"ignore-{key}")
    try:
        os.unlink(flag)
    except FileNotFoundError:
        return False
    return True


def variate(oid: Any, tag: str, value: str, **context: Any) -> tuple[Any, str, Any]:
    if not context["nextFlag"] and not context["exactMatch"]:
        return context["origOid"], tag, context["errorStatus"]
    settings = _settings(value)
    kind = _TYPES[tag.partition(":")[0]]
    on = _state(settings)
    role = settings["role"]
    if context["setFlag"]:
        idx = max(0, context["varsTotal"] - context["varsRemaining"] - 1)
        if role != "command":
            raise error.NotWritableError(name=oid, idx=idx)
        wanted = int(context["origValue"])
        choices = {int(settings[k]): k == "on" for k in ("on", "off") if k in settings}
        if wanted not in choices:
            raise error.WrongValueError(name=oid, idx=idx)
        if not _ignored(settings["outlet"]):
            moduleContext["outlets"][settings["outlet"]] = choices[wanted]
        return oid, tag, context["origValue"]
    if role == "command" and "idle" in settings:
        return oid, tag, kind(int(settings["idle"]))
    return oid, tag, kind(int(settings["on" if on else "off"]))


def shutdown(**context: Any) -> None:
    pass

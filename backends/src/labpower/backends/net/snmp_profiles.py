"""What each PDU vendor's MIB says: which OID switches outlet N, with which values, which OID
reports its state, its name, and its readings. ``{n}`` in an OID is the outlet number
(channel N is outlet N).

=========== ================================ ======================= ======================
profile     switch (SET, INTEGER)            state (GET)             name, readings
=========== ================================ ======================= ======================
apc-ms      sPDUOutletCtl                    the same OID:           sPDUOutletCtlName
            .318.1.1.4.4.2.1.3.N             outletOn(1)
            immediateOn(1), immediateOff(2)  outletOff(2)
apc-rpdu    rPDUOutletControlOutletCommand   the same OID:           ...OutletName
            .318.1.1.12.3.3.1.1.4.N          immediateOn(1)          .318.1.1.12.3.3.1.1.2.N
            immediateOn(1), immediateOff(2)  immediateOff(2)
apc-rpdu2   rPDU2OutletSwitchedControlCommand rPDU2OutletSwitched-   ...StatusName .3.1.3.N;
            .318.1.1.26.9.2.4.1.5.N          StatusState             current: rPDU2Outlet-
            immediateOn(1), immediateOff(2)  .318.1.1.26.9.2.3.1.5.N MeteredStatusCurrent
                                             off(1), on(2)           .26.9.4.3.1.6.N (0.1 A),
                                                                     voltage: rPDU2Phase-
                                                                     StatusVoltage
                                                                     .26.6.3.1.6.1 (V,
                                                                     phase 1)
raritan     PDU2-MIB switchingOperation      outletSwitchingState    outletName
            .13742.6.4.1.2.1.2.1.N           .13742.6.4.1.2.1.3.1.N  .13742.6.3.5.3.1.3.1.N;
            off(0), on(1)                    on(7), off(8)           measurementsOutlet-
                                                                     SensorValue .13742.6.5.
                                                                     4.3.1.4.1.N.T, T =
                                                                     rmsCurrent(1), rms-
                                                                     Voltage(4), scaled by
                                                                     outletSensorDecimal-
                                                                     Digits .13742.6.3.5.4.
                                                                     1.7.1.N.T
eaton       EATON-EPDU-MIB outletControlOn-  outletControlStatus     outletName
            Cmd .534.6.6.7.6.6.1.4.0.N and   .534.6.6.7.6.6.1.2.0.N  .534.6.6.7.6.1.1.3.0.N;
            outletControlOffCmd ...1.3.0.N:  off(0), on(1)           outletCurrent .534.6.6.
            0 = now                                                  7.6.4.1.3.0.N (mA),
                                                                     outletVoltage .534.6.6.
                                                                     7.6.3.1.2.0.N (mV)
sentry3     Sentry3-MIB outletControlAction  outletStatus            outletName
            .1718.3.2.3.1.11.1.1.N           .1718.3.2.3.1.10.1.1.N  .1718.3.2.3.1.3.1.1.N
            on(1), off(2)                    off(0), on(1)
sentry4     Sentry4-MIB st4OutletControl-    st4OutletState          st4OutletName
            Action .1718.4.1.8.5.1.2.1.1.N   .1718.4.1.8.3.1.1.1.1.N .1718.4.1.8.2.1.3.1.1.N
            on(1), off(2)                    off(0), on(1)
cyberpower  CPS-MIB ePDUOutletControl-       the same OID:           ...OutletName
            OutletCommand                    immediateOn(1)          .3808.1.1.3.3.3.1.1.2.N
            .3808.1.1.3.3.3.1.1.4.N          immediateOff(2)
            immediateOn(1), immediateOff(2)
=========== ================================ ======================= ======================

(OIDs above without their prefix 1.3.6.1.4.1.) ``apc`` picks apc-rpdu2, apc-rpdu or apc-ms
and ``sentry`` picks sentry4 or sentry3, by which of their state OIDs the PDU answers for
outlet 1. A state value other than the on and off ones (rebooting, pending, error) reads as
unknown. Where a PDU reports the voltage of its input, phase or bank only, that is the
outlet's voltage (one inlet, one phase: the same supply). A negative current is how Sentry
PDUs without per-outlet metering answer: ``read`` is not supported there. APC rPDU
(AP79xx) and MasterSwitch units have no per-outlet readings at all (rPDU's load table is
per phase, in amperes, with no voltage), nor ``read``.
"""

from __future__ import annotations

from dataclasses import dataclass

ENTERPRISES = "1.3.6.1.4.1"


@dataclass(frozen=True, slots=True)
class Meter:
    """A reading: the value at ``oid`` times ``scale``, or times 10^-digits when ``digits``
    names the OID of the number of decimal digits (Raritan)."""

    oid: str
    scale: float = 1.0
    digits: str | None = None
    #: False: one OID for every outlet (an input's or a phase's voltage)
    per_outlet: bool = True

    def at(self, profile: Profile, outlet: int) -> str:
        """The OID of this reading for ``outlet``."""
        return profile.oid(self.oid, outlet) if self.per_outlet else self.oid


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    #: (OID, value) SET to switch on / off
    on: tuple[str, int]
    off: tuple[str, int]
    #: GET: the outlet's state, and the values meaning on and off
    state: str
    state_on: int
    state_off: int
    #: GET: the outlet's name (OCTET STRING)
    name_oid: str | None = None
    current: Meter | None = None
    voltage: Meter | None = None

    def oid(self, template: str, outlet: int) -> str:
        """An OID of outlet ``outlet``: ``{n}`` replaced, else ``.N`` appended."""
        return template.format(n=outlet) if "{n}" in template else f"{template}.{outlet}"


def _e(tail: str) -> str:
    return f"{ENTERPRISES}.{tail}"


def _same(name: str, oid: str, on: int, off: int, name_oid: str) -> Profile:
    """A PDU that switches and reports through one OID."""
    return Profile(name, (oid, on), (oid, off), oid, on, off, name_oid)


PROFILES: dict[str, Profile] = {
    "apc-ms": _same("apc-ms", _e("318.1.1.4.4.2.1.3.{n}"), 1, 2, _e("318.1.1.4.4.2.1.4.{n}")),
    "apc-rpdu": _same(
        "apc-rpdu", _e("318.1.1.12.3.3.1.1.4.{n}"), 1, 2, _e("318.1.1.12.3.3.1.1.2.{n}")
    ),
    "apc-rpdu2": Profile(
        "apc-rpdu2",
        (_e("318.1.1.26.9.2.4.1.5.{n}"), 1),
        (_e("318.1.1.26.9.2.4.1.5.{n}"), 2),
        _e("318.1.1.26.9.2.3.1.5.{n}"),
        2,
        1,
        _e("318.1.1.26.9.2.3.1.3.{n}"),
        current=Meter(_e("318.1.1.26.9.4.3.1.6.{n}"), 0.1),
        voltage=Meter(_e("318.1.1.26.6.3.1.6.1"), 1.0, per_outlet=False),
    ),
    "raritan": Profile(
        "raritan",
        (_e("13742.6.4.1.2.1.2.1.{n}"), 1),
        (_e("13742.6.4.1.2.1.2.1.{n}"), 0),
        _e("13742.6.4.1.2.1.3.1.{n}"),
        7,
        8,
        _e("13742.6.3.5.3.1.3.1.{n}"),
        current=Meter(_e("13742.6.5.4.3.1.4.1.{n}.1"), digits=_e("13742.6.3.5.4.1.7.1.{n}.1")),
        voltage=Meter(_e("13742.6.5.4.3.1.4.1.{n}.4"), digits=_e("13742.6.3.5.4.1.7.1.{n}.4")),
    ),
    "eaton": Profile(
        "eaton",
        (_e("534.6.6.7.6.6.1.4.0.{n}"), 0),
        (_e("534.6.6.7.6.6.1.3.0.{n}"), 0),
        _e("534.6.6.7.6.6.1.2.0.{n}"),
        1,
        0,
        _e("534.6.6.7.6.1.1.3.0.{n}"),
        current=Meter(_e("534.6.6.7.6.4.1.3.0.{n}"), 0.001),
        voltage=Meter(_e("534.6.6.7.6.3.1.2.0.{n}"), 0.001),
    ),
    "sentry3": Profile(
        "sentry3",
        (_e("1718.3.2.3.1.11.1.1.{n}"), 1),
        (_e("1718.3.2.3.1.11.1.1.{n}"), 2),
        _e("1718.3.2.3.1.10.1.1.{n}"),
        1,
        0,
        _e("1718.3.2.3.1.3.1.1.{n}"),
        current=Meter(_e("1718.3.2.3.1.7.1.1.{n}"), 0.01),
        voltage=Meter(_e("1718.3.2.2.1.11.1.1"), 0.1, per_outlet=False),
    ),
    "sentry4": Profile(
        "sentry4",
        (_e("1718.4.1.8.5.1.2.1.1.{n}"), 1),
        (_e("1718.4.1.8.5.1.2.1.1.{n}"), 2),
        _e("1718.4.1.8.3.1.1.1.1.{n}"),
        1,
        2,
        _e("1718.4.1.8.2.1.3.1.1.{n}"),
        current=Meter(_e("1718.4.1.8.3.1.3.1.1.{n}"), 0.01),
        voltage=Meter(_e("1718.4.1.8.3.1.6.1.1.{n}"), 0.1),
    ),
    "cyberpower": Profile(
        "cyberpower",
        (_e("3808.1.1.3.3.3.1.1.4.{n}"), 1),
        (_e("3808.1.1.3.3.3.1.1.4.{n}"), 2),
        _e("3808.1.1.3.3.3.1.1.4.{n}"),
        1,
        2,
        _e("3808.1.1.3.3.3.1.1.2.{n}"),
        current=Meter(_e("3808.1.1.3.3.5.1.1.7.{n}"), 0.1),
        voltage=Meter(_e("3808.1.1.3.2.3.1.1.6.1"), 0.1, per_outlet=False),
    ),
}

#: profiles that stand for a family: the first variant whose state OID answers wins
FAMILIES: dict[str, tuple[str, ...]] = {
    "apc": ("apc-rpdu2", "apc-rpdu", "apc-ms"),
    "sentry": ("sentry4", "sentry3"),
}
#: every name ``profile =`` takes
PROFILE_NAMES = (*sorted(FAMILIES), *sorted(PROFILES), "custom")
#: sysObjectID prefixes of each vendor, for discovery
VENDORS: dict[str, str] = {
    _e("318."): "apc",
    _e("13742."): "raritan",
    _e("534."): "eaton",
    _e("1718."): "sentry",
    _e("3808."): "cyberpower",
}

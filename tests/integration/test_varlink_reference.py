"""A varlink client nobody here wrote: the reference ``varlink`` package from PyPI.

It opens ``io.labpower.Power`` by fetching the interface description and parsing it with its
own IDL parser, then calls methods by name. Python 3.11 note: the package's source has an
invalid escape sequence in a docstring, which compiles with a DeprecationWarning (a
SyntaxError under ``-W error``); it is imported with warnings silenced, the calls themselves
run with warnings as errors.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from labpower.daemon.interface import POWER_IDL, SERVICE_IDL
from labpower.daemon.testing import DaemonProcess

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import varlink


@pytest.fixture
def client(daemon: DaemonProcess) -> Any:
    c = varlink.Client(address="unix:" + daemon.socket_path)
    try:
        yield c
    finally:
        c.cleanup()


def test_list_on_off_get(client: Any) -> None:
    with client.open("io.labpower.Power") as power:
        targets = power.List()["targets"]
        assert "dut1" in {t["name"] for t in targets}
        reply = power.On("dut1")
        assert reply["target"]["state"] == "on"
        assert isinstance(reply["log_seq"], int)
        assert power.Get(target="dut1")["target"]["state"] == "on"
        assert power.Off(target="dut1")["target"]["state"] == "off"
        assert power.Cycle("dut2", 0.0)["target"]["state"] == "on"


def test_errors_arrive_as_varlink_errors(client: Any) -> None:
    with client.open("io.labpower.Power") as power:
        with pytest.raises(varlink.VarlinkError) as info:
            power.On("nope")
        assert info.value.error() == "io.labpower.Power.TargetNotFound"
        assert info.value.parameters() == {"target": "nope"}


def test_streaming_read(client: Any) -> None:
    with client.open("io.labpower.Power") as power:
        readings = [r["reading"] for r in power.Read("router", 0.001, 3, _more=True)]
    assert [(r["voltage"], r["current"]) for r in readings] == [(0.0, 0.0), (5.0, 2.0), (5.0, 2.0)]


def test_service_interface(client: Any) -> None:
    with client.open("org.varlink.service") as service:
        info = service.GetInfo()
        assert info["product"] == "labpowerd"
        assert set(info["interfaces"]) == {"org.varlink.service", "io.labpower.Power"}
        served = service.GetInterfaceDescription("io.labpower.Power")["description"]
        assert served == POWER_IDL
        own = service.GetInterfaceDescription("org.varlink.service")["description"]
        assert own == SERVICE_IDL
        with pytest.raises(varlink.VarlinkError) as info_error:
            service.GetInterfaceDescription("com.example.Nothing")
        assert info_error.value.error() == "org.varlink.service.InterfaceNotFound"
    parsed = varlink.Interface(served)
    assert parsed.name == "io.labpower.Power"
    for member in (
        "Target",
        "Reading",
        "LogEntry",
        "List",
        "Get",
        "On",
        "Off",
        "Cycle",
        "Read",
        "Logs",
        "TargetNotFound",
        "DeviceUnavailable",
        "Timeout",
        "NotSupported",
        "StateMismatch",
    ):
        assert member in parsed.members
    assert varlink.Interface(own).name == "org.varlink.service"

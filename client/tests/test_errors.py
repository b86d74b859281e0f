"""Client exceptions: one class per varlink error, all LabpowerError; a missing daemon is a
ConnectionError naming the socket."""

from __future__ import annotations

import socket
from pathlib import Path

import labpower.client as api
import pytest
from labpower.client import (
    Client,
    DaemonUnreachable,
    DeviceError,
    DeviceUnavailable,
    ExpectedMore,
    InterfaceNotFound,
    InvalidParameter,
    LabpowerError,
    MethodNotFound,
    NotSupported,
    PermissionDenied,
    StateMismatch,
    TargetNotFound,
    Timeout,
    VarlinkError,
)
from labpower.client.errors import MethodNotImplemented, error_from_reply

POWER_ERRORS = {
    "TargetNotFound": TargetNotFound,
    "DeviceUnavailable": DeviceUnavailable,
    "Timeout": Timeout,
    "NotSupported": NotSupported,
    "StateMismatch": StateMismatch,
    "DeviceError": DeviceError,
}
SERVICE_ERRORS = {
    "InterfaceNotFound": InterfaceNotFound,
    "MethodNotFound": MethodNotFound,
    "MethodNotImplemented": MethodNotImplemented,
    "InvalidParameter": InvalidParameter,
    "PermissionDenied": PermissionDenied,
    "ExpectedMore": ExpectedMore,
}


def _every_error_in_the_idl() -> list[str]:
    from labpower.daemon.interface import POWER_IDL, SERVICE_IDL

    names = []
    for prefix, idl in (("io.labpower.Power", POWER_IDL), ("org.varlink.service", SERVICE_IDL)):
        names += [
            f"{prefix}.{line.split()[1]}" for line in idl.splitlines() if line.startswith("error ")
        ]
    return names


@pytest.mark.parametrize("name", _every_error_in_the_idl())
def test_every_error_the_daemon_declares_has_a_class(name: str) -> None:
    exc = error_from_reply(name, {})
    assert type(exc) is not VarlinkError, f"no exception class for {name}"
    assert exc.name == name


@pytest.mark.parametrize(("member", "cls"), [*POWER_ERRORS.items()])
def test_power_errors(member: str, cls: type[VarlinkError]) -> None:
    exc = error_from_reply(f"io.labpower.Power.{member}", {"target": "dut1"})
    assert type(exc) is cls
    assert isinstance(exc, LabpowerError)
    assert exc.parameters == {"target": "dut1"}


@pytest.mark.parametrize(("member", "cls"), [*SERVICE_ERRORS.items()])
def test_service_errors(member: str, cls: type[VarlinkError]) -> None:
    exc = error_from_reply(f"org.varlink.service.{member}", {})
    assert type(exc) is cls
    assert cls.name == f"org.varlink.service.{member}"


def test_unknown_error_keeps_its_name_and_parameters() -> None:
    exc = error_from_reply("com.example.Broken", {"why": "because"})
    assert type(exc) is VarlinkError
    assert exc.name == "com.example.Broken"
    assert exc.parameters == {"why": "because"}
    assert str(exc) == "com.example.Broken(why='because')"
    # the class attribute is untouched
    assert VarlinkError.name == ""


def test_messages_say_what_happened() -> None:
    assert str(TargetNotFound({"target": "dut9"})) == "no target named 'dut9'"
    assert "bench" in str(DeviceUnavailable({"device": "bench", "reason": "unplugged"}))
    assert "unplugged" in str(DeviceUnavailable({"device": "bench", "reason": "unplugged"}))
    assert "0.2 s" in str(Timeout({"target": "dut1", "seconds": 0.2}))
    assert "read" in str(NotSupported({"target": "dut1", "operation": "read"}))
    mismatch = str(StateMismatch({"target": "dut1", "expected": "on", "actual": "off"}))
    assert "'on'" in mismatch
    assert "'off'" in mismatch
    assert "injected" in str(DeviceError({"device": "bench", "reason": "injected"}))
    assert str(InvalidParameter({"parameter": "target"})) == (
        "org.varlink.service.InvalidParameter(parameter='target')"
    )
    assert str(ExpectedMore()) == "org.varlink.service.ExpectedMore"


def test_timeout_is_also_a_timeout_error() -> None:
    assert issubclass(Timeout, TimeoutError)
    with pytest.raises(TimeoutError):
        raise error_from_reply("io.labpower.Power.Timeout", {"target": "x", "seconds": 1.0})


def test_daemon_unreachable_is_a_connection_error_naming_the_socket() -> None:
    exc = DaemonUnreachable("/run/x.sock", "No such file or directory")
    assert isinstance(exc, ConnectionError)
    assert isinstance(exc, LabpowerError)
    assert (exc.path, exc.reason) == ("/run/x.sock", "No such file or directory")
    assert "/run/x.sock" in str(exc)
    assert "No such file" in str(exc)


def test_every_error_class_is_exported() -> None:
    for cls in (*POWER_ERRORS.values(), *SERVICE_ERRORS.values()):
        if cls is MethodNotImplemented:
            continue
        assert getattr(api, cls.__name__) is cls
        assert cls.__name__ in api.__all__


def test_client_without_daemon(tmp_path: Path) -> None:
    path = str(tmp_path / "none.sock")
    client = Client(path)
    with pytest.raises(DaemonUnreachable) as info:
        client.connect()
    assert info.value.path == path
    assert path in str(info.value)
    with pytest.raises(DaemonUnreachable):
        list(client.read("dut1", count=2))
    with pytest.raises(DaemonUnreachable), client.log_stream():
        pass


def test_daemon_that_hangs_up_mid_call(tmp_path: Path) -> None:
    """A listener that accepts and closes: the call fails with DaemonUnreachable."""
    path = str(tmp_path / "rude.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        client = Client(path, timeout=5.0)
        client.connect()
        conn, _ = server.accept()
        conn.close()
        with pytest.raises(DaemonUnreachable, match=r"rude\.sock"):
            client.targets()
        client.close()


def test_daemon_that_never_answers_times_out(tmp_path: Path) -> None:
    path = str(tmp_path / "silent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        with Client(path, timeout=0.05) as client:
            conn, _ = server.accept()
            with pytest.raises(DaemonUnreachable, match="no reply in time"):
                client.targets()
            conn.close()

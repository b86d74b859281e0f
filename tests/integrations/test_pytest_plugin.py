"""The labpower pytest plugin, run inside pytest's own pytester against a real daemon."""

from __future__ import annotations

import pytest
from labpower.daemon.testing import DaemonProcess

from tests.conftest import StartDaemon
from tests.integrations.conftest import HOST1

ARGS = ("-p", "no:cacheprovider", "-W", "error")


@pytest.fixture
def host(start_daemon: StartDaemon) -> DaemonProcess:
    return start_daemon(HOST1)


def test_fixtures_from_the_command_line(pytester: pytest.Pytester, host: DaemonProcess) -> None:
    pytester.makepyfile(
        """
        def test_switch(labpower_client, labpower_target):
            assert labpower_target.name == "dut1"
            assert labpower_target.on().state == "on"
            assert labpower_client.get("dut1").state == "on"
        """
    )
    result = pytester.runpytest(
        *ARGS, "--labpower-socket", host.socket_path, "--labpower-target", "dut1"
    )
    result.assert_outcomes(passed=1)
    with host.client() as lab:
        assert lab.get("dut1").state == "on"


def test_fixtures_from_the_ini_file(pytester: pytest.Pytester, host: DaemonProcess) -> None:
    pytester.makeini(f"[pytest]\nlabpower_socket = {host.socket_path}\nlabpower_target = dut2\n")
    pytester.makepyfile(
        """
        def test_switch(labpower_target):
            assert labpower_target.name == "dut2"
            labpower_target.on()
        """
    )
    pytester.runpytest(*ARGS).assert_outcomes(passed=1)
    with host.client() as lab:
        assert lab.get("dut2").state == "on"


def test_marker_switches_before_the_test(pytester: pytest.Pytester, host: DaemonProcess) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.labpower("cycle", delay=0.05)
        def test_cycled(labpower_target):
            assert labpower_target.state().state == "on"

        @pytest.mark.labpower("on", target="dut2")
        def test_on(labpower_client):
            assert labpower_client.get("dut2").state == "on"
        """
    )
    result = pytester.runpytest(
        *ARGS, "--labpower-socket", host.socket_path, "--labpower-target", "dut1"
    )
    result.assert_outcomes(passed=2)
    with host.client() as lab:
        messages = [(e.target, e.message) for e in lab.history(["dut1"])]
    # power-cycled: off, then on again
    last_off = max(i for i, m in enumerate(messages) if m == ("dut1", "power off"))
    assert ("dut1", "power on") in messages[last_off:]


def test_daemon_log_in_captured_logs_and_failure_report(
    pytester: pytest.Pytester, host: DaemonProcess
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        from labpower.client import Client

        @pytest.mark.labpower("off")
        def test_fails(labpower_target, caplog):
            labpower_target.on()
            # a target the test does not use: its entries stay out of this test's log
            with Client({host.socket_path!r}) as other:
                other.on("dut2")
            messages = [(r.name, r.getMessage()) for r in caplog.records]
            assert ("labpower.remote.dut1", "power on") in messages
            assert not any(name.endswith("dut2") for name, _ in messages)
            assert False, "the board did not boot"
        """
    )
    result = pytester.runpytest(
        *ARGS, "--labpower-socket", host.socket_path, "--labpower-target", "dut1"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the board did not boot*",
            "*Captured log setup*",
            "INFO     labpower.remote.dut1:*power off",
            "*Captured log call*",
            "INFO     labpower.remote.dut1:*power on",
        ]
    )
    assert "labpower.remote.dut2" not in result.stdout.str()


def test_without_a_target_the_fixture_says_what_to_configure(
    pytester: pytest.Pytester, host: DaemonProcess
) -> None:
    pytester.makepyfile("def test_it(labpower_target): pass\n")
    result = pytester.runpytest(*ARGS, "--labpower-socket", host.socket_path)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no labpower target: give --labpower-target*"])


def test_bad_marker_fails_the_test(pytester: pytest.Pytester, host: DaemonProcess) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.labpower("reboot")
        def test_it(): pass
        """
    )
    result = pytester.runpytest(*ARGS, "--labpower-socket", host.socket_path)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.labpower: expected (cycle|on|off*"])


def test_plugin_stays_out_of_the_way(pytester: pytest.Pytester) -> None:
    """Without its fixtures or marker, the plugin asks for no daemon at all."""
    pytester.makepyfile("def test_plain(): assert True\n")
    result = pytester.runpytest(*ARGS, "--strict-markers", "--labpower-socket", "/nonexistent")
    result.assert_outcomes(passed=1)
    assert "labpower" in pytester.runpytest("--markers").stdout.str()

"""``labpower`` list/status/on/off/cycle/read, help and exit codes: the real command, run as a
process, against a real labpowerd child process on the standard mock lab."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

Run = Callable[..., subprocess.CompletedProcess[str]]

COMMANDS = ("list", "status", "on", "off", "cycle", "read", "logs")
COLUMNS = ["TARGET", "STATE", "VERIFIED", "DEVICE", "CHANNEL", "AVAILABLE", "SINCE"]
#: why the standard lab's unplugged mock device is unavailable
GONE_REASON = "mock device unplugged is unplugged"


def assert_failed(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 1, with one line per failure on stderr naming every needle, no traceback."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("labpower: "), result.stderr
    for needle in needles:
        assert needle in result.stderr


# -- help and usage


def test_help_documents_every_command(run_labpower: Run) -> None:
    result = run_labpower("--help")
    assert result.returncode == 0
    for name in COMMANDS:  # listed with a summary
        assert re.search(rf"^\s+{name}\s+\w", result.stdout, re.MULTILINE), name
    for words in ("--socket", "--json", "--timeout", "$LABPOWER_SOCKET", "exit status"):
        assert words in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_documents_itself(run_labpower: Run, name: str) -> None:
    result = run_labpower(name, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: labpower {name}")
    assert "--json" in result.stdout


def test_the_installed_script_is_the_command(run_labpower: Run) -> None:
    script = Path(sys.executable).with_name("labpower")
    result = run_labpower("--help", command=[str(script)])
    assert result.returncode == 0
    assert result.stdout.startswith("usage: labpower")


#: What a plain switch does without (issue #18: they were four fifths of its start).
HEAVY = {"asyncio", "anyio", "argparse", "collections", "dataclasses", "enum", "inspect"}
HEAVY |= {"json", "re", "socket", "typing", "logging", "threading", "subprocess"}


def test_a_switch_loads_nothing_heavy(daemon: DaemonProcess, lab: Client) -> None:
    # the installed script itself, against a real daemon, as the benchmark row runs it;
    # -X importtime lists every module it imported on stderr
    script = str(Path(sys.executable).with_name("labpower"))
    result = subprocess.run(
        [sys.executable, "-X", "importtime", script, "--socket", daemon.socket_path, "on", "dut1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "dut1: on (verified)\n"), result.stderr
    assert lab.get("dut1").state == "on"
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[1].strip() for line in lines[1:]}
    assert "labpower.client.sync" in imported  # the probe sees imports
    assert sorted(imported & HEAVY) == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="no-command"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["on"], id="on-without-target"),
        pytest.param(["read"], id="read-without-target"),
        pytest.param(["read", "dut1", "dut2"], id="read-two-targets"),
        pytest.param(["read", "-n", "-1", "dut1"], id="negative-count"),
        pytest.param(["read", "--interval", "0", "dut1"], id="zero-interval"),
        pytest.param(["cycle", "--delay", "soon", "dut1"], id="bad-delay"),
        pytest.param(["logs", "--level", "loud"], id="unknown-level"),
        pytest.param(["--timeout", "-1", "list"], id="negative-timeout"),
        pytest.param(["list", "--colour"], id="unknown-option"),
    ],
)
def test_bad_usage_exits_2(run_labpower: Run, tmp_path: Path, args: list[str]) -> None:
    # refused before any connection: the socket does not even exist
    result = run_labpower("--socket", str(tmp_path / "none.sock"), *args)
    assert result.returncode == 2, result
    assert "usage: labpower" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# -- list and status


def test_list_is_an_aligned_table(labpower: Run, lab: Client) -> None:
    since = lab.on("dut2").since
    result = labpower("list")
    assert (result.returncode, result.stderr) == (0, "")
    table, _, notes = result.stdout.partition("\n\n")
    header, *lines = table.splitlines()
    assert header.split() == COLUMNS
    rows = {line.split()[0]: line.split() for line in lines}
    assert list(rows) == [t.name for t in lab.targets()]
    assert rows["dut1"] == ["dut1", "off", "yes", "bench", "1", "yes", "-"]
    assert rows["dut2"] == ["dut2", "on", "yes", "bench", "2", "yes", since]
    assert rows["router"] == ["router", "off", "yes", "rack", "1", "yes", "-"]
    assert rows["gone"][1:3] + rows["gone"][5:6] == ["unknown", "no", "no"]
    assert rows["blind"][1:3] == ["unknown", "no"]
    # why a device is unavailable, once per device, under the table
    assert notes.splitlines() == [f"device {rows['gone'][3]} unavailable: {GONE_REASON}"]
    for line in lines:  # each column starts under its heading
        for column in COLUMNS[1:]:
            start = header.index(column)
            assert line[start - 2 : start] == "  ", (column, line)
            assert line[start] != " ", (column, line)


def test_list_json_is_an_array_of_targets(labpower: Run, lab: Client) -> None:
    lab.on("router")
    for args in (["--json", "list"], ["list", "--json"]):
        result = labpower(*args)
        assert (result.returncode, result.stderr) == (0, "")
        assert json.loads(result.stdout) == [t.to_dict() for t in lab.targets()]
    router = json.loads(result.stdout)[4]
    assert {
        k: router[k] for k in ("name", "device", "channel", "state", "verified", "available")
    } == {
        "name": "router",
        "device": "rack",
        "channel": 1,
        "state": "on",
        "verified": True,
        "available": True,
    }


def test_status_without_targets_is_list(labpower: Run) -> None:
    assert labpower("status").stdout == labpower("list").stdout
    assert labpower("status", "--json").stdout == labpower("list", "--json").stdout


def test_status_prints_each_state(labpower: Run, lab: Client) -> None:
    lab.on("dut1")
    result = labpower("status", "dut1", "dut2", "blind", "gone")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "dut1: on (verified)",
        "dut2: off (verified)",
        "blind: unknown (not verified)",
        f"gone: unknown (not verified, device unavailable: {GONE_REASON})",
    ]
    as_json = json.loads(labpower("status", "--json", "dut1", "dut2").stdout)
    assert as_json == [lab.get("dut1").to_dict(), lab.get("dut2").to_dict()]


# -- switching


def test_on_and_off(labpower: Run, lab: Client) -> None:
    on = labpower("on", "dut1", "dut2")
    assert (on.returncode, on.stdout, on.stderr) == (
        0,
        "dut1: on (verified)\ndut2: on (verified)\n",
        "",
    )
    assert [lab.get("dut1").state, lab.get("dut2").state] == ["on", "on"]
    assert lab.get("spare").state == "off", "only the targets named are switched"
    off = labpower("off", "dut2")
    assert (off.returncode, off.stdout, off.stderr) == (0, "dut2: off (verified)\n", "")
    assert [lab.get("dut1").state, lab.get("dut2").state] == ["on", "off"]


def test_a_board_without_read_back_is_not_verified(labpower: Run, lab: Client) -> None:
    result = labpower("on", "blind")
    assert (result.returncode, result.stdout) == (0, "blind: on (not verified)\n")


def test_switching_json(labpower: Run, lab: Client) -> None:
    result = labpower("--json", "on", "dut1", "blind")
    assert (result.returncode, result.stderr) == (0, "")
    targets = json.loads(result.stdout)
    assert [(t["name"], t["state"], t["verified"]) for t in targets] == [
        ("dut1", "on", True),
        ("blind", "on", False),
    ]
    assert targets[0] == lab.get("dut1").to_dict()


def test_cycle(labpower: Run, lab: Client) -> None:
    lab.on("dut2")
    result = labpower("cycle", "--delay", "0.01", "dut2")
    assert (result.returncode, result.stdout, result.stderr) == (0, "dut2: on (verified)\n", "")
    power = [e.message for e in lab.history(["dut2"]) if e.message.startswith("power ")]
    assert power == ["power on", "power off", "power on"]
    # without --delay: the target's cycle_delay from the config
    result = labpower("--json", "cycle", "dut1")
    assert result.returncode == 0
    assert json.loads(result.stdout) == [lab.get("dut1").to_dict()]
    assert lab.get("dut1").state == "on"


# -- failures


def test_unknown_target(labpower: Run, lab: Client) -> None:
    for args in (
        ["on", "nosuch"],
        ["off", "nosuch"],
        ["cycle", "nosuch"],
        ["status", "nosuch"],
        ["read", "nosuch"],
    ):
        result = labpower(*args)
        assert_failed(result, "nosuch")
        assert len(result.stderr.splitlines()) == 1
        assert result.stdout == ""


def test_a_failing_target_does_not_stop_the_others(labpower: Run, lab: Client) -> None:
    result = labpower("on", "nosuch", "gone", "stuck", "faulty", "dut1")
    assert_failed(result, "nosuch", "gone", "unplugged", "stuck", "faulty")
    assert len(result.stderr.splitlines()) == 4
    assert result.stdout == "dut1: on (verified)\n"
    assert lab.get("dut1").state == "on"
    as_json = labpower("--json", "off", "dut1", "nosuch")
    assert_failed(as_json, "nosuch")
    assert [t["name"] for t in json.loads(as_json.stdout)] == ["dut1"]


def test_a_target_that_cannot_measure(labpower: Run) -> None:
    assert_failed(labpower("read", "nometer"), "nometer", "read")


def test_no_daemon_fails_naming_the_socket(run_labpower: Run, tmp_path: Path) -> None:
    path = str(tmp_path / "labpower.sock")
    for args in (
        ["list"],
        ["status", "dut1"],
        ["on", "dut1"],
        ["read", "-n", "0", "dut1"],
        ["logs"],
        ["logs", "-f"],
    ):
        result = run_labpower("--socket", path, *args)
        assert_failed(result, path)
        assert len(result.stderr.splitlines()) == 1
        assert result.stdout == ""


def test_labpower_socket_environment_variable(
    run_labpower: Run, daemon: DaemonProcess, lab: Client, tmp_path: Path
) -> None:
    result = run_labpower("on", "dut1", env={"LABPOWER_SOCKET": daemon.socket_path})
    assert (result.returncode, result.stdout) == (0, "dut1: on (verified)\n"), result.stderr
    assert lab.get("dut1").state == "on"
    missing = str(tmp_path / "missing.sock")
    assert_failed(run_labpower("list", env={"LABPOWER_SOCKET": missing}), missing)
    # --socket wins over the environment, before or after the command name
    for args in (
        ["--socket", daemon.socket_path, "status", "dut1"],
        ["status", "--socket", daemon.socket_path, "dut1"],
    ):
        result = run_labpower(*args, env={"LABPOWER_SOCKET": missing})
        assert (result.returncode, result.stdout) == (0, "dut1: on (verified)\n")


# -- read


def test_read_prints_the_mock_readings(labpower: Run) -> None:
    result = labpower("read", "-n", "3", "--interval", "0.01", "dut1")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "dut1: 0.000 V  0.000 A  0.000 VA",
        "dut1: 5.000 V  2.000 A  10.000 VA",
        "dut1: 5.000 V  2.000 A  10.000 VA",
    ]
    single = labpower("read", "dut1")  # one reading by default
    assert single.stdout == "dut1: 5.000 V  2.000 A  10.000 VA\n"


def test_read_json_lines(labpower: Run) -> None:
    result = labpower("--json", "read", "-n", "2", "--interval", "0.01", "dut2")
    assert (result.returncode, result.stderr) == (0, "")
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"target": "dut2", "voltage": 0.0, "current": 0.0, "apparent_power": 0.0},
        {"target": "dut2", "voltage": 5.0, "current": 2.0, "apparent_power": 10.0},
    ]


def test_main_returns_the_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labpower.client.cli import main

    assert main(["--socket", str(tmp_path / "none.sock"), "list"]) == 1
    assert main(["list", "--colour"]) == 2
    assert main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert "usage: labpower" in out
    assert str(tmp_path / "none.sock") in err


def test_the_command_needs_only_the_client_distribution(tmp_path: Path) -> None:
    # labpower-client installs alone: running a command loads nothing of the daemon's or the
    # backends' distributions
    script = (
        "import sys\n"
        "from labpower.client.cli import main\n"
        f"code = main(['--socket', {str(tmp_path / 'none.sock')!r}, 'list'])\n"
        "print(code, sorted(m for m in sys.modules\n"
        "      if m.startswith(('labpower.daemon', 'labpower.backends'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.stdout == "1 []\n", result.stderr

"""Config validation: every error names the file, the key and the reason; a bad file is
refused before any backend exists; ``labpowerd --check-config`` exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from labpower.backends.mock import MockBackend, MockOptions
from labpower.daemon import config as config_mod
from labpower.daemon import main as main_mod
from labpower.daemon.config import ConfigError, load

GOOD = """\
[daemon]
log_level = "debug"
history = 50

[devices.bench]
backend = "mock"
channels = 4
delay = 0.5
fail = ["read"]

[devices.rack]
backend = "mock"

[targets.dut1]
device = "bench"
channel = 1
invert = true
cycle_delay = 2

[targets.dut2]
device = "rack"
channel = 1
description = "the router"
"""

#: A valid first device followed by a mistake further down.
BAD_LATER = """\
[devices.bench]
backend = "mock"
channels = 2

[targets.dut1]
device = "bench"
channel = 1

[targets.dut2]
device = "bench"
channel = 1
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labpowerd.toml"
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> ConfigError:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    return info.value


def _labpowerd() -> list[str]:
    """The installed ``labpowerd`` command of this environment."""
    script = Path(sys.executable).with_name("labpowerd")
    assert script.exists(), f"{script} is not installed: run uv sync"
    return [str(script)]


def test_valid_config(tmp_path: Path) -> None:
    cfg = load(_write(tmp_path, GOOD))
    assert cfg.daemon.log_level == "debug"
    assert cfg.daemon.history == 50
    assert cfg.daemon.socket is None
    bench = cfg.devices["bench"]
    assert (bench.backend, bench.backend_class, bench.channels, bench.timeout) == (
        "mock",
        MockBackend,
        4,
        5.0,
    )
    assert bench.options == MockOptions(delay=0.5, fail=["read"])
    assert cfg.devices["rack"].channels == 1
    dut1 = cfg.targets["dut1"]
    assert (dut1.device, dut1.channel, dut1.invert, dut1.cycle_delay) == ("bench", 1, True, 2.0)
    assert isinstance(dut1.cycle_delay, float)
    assert cfg.targets["dut2"].description == "the router"
    assert cfg.targets["dut2"].cycle_delay == 1.0


def test_loading_creates_no_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []
    original = MockBackend.__init__

    def spy(self: MockBackend, *args: object, **kwargs: object) -> None:
        created.append("created")
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(MockBackend, "__init__", spy)
    load(_write(tmp_path, GOOD))
    assert created == []


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (
            '[devices.bench]\nbackend = "nosuch"\n',
            "devices.bench.backend",
            "unknown backend 'nosuch'",
        ),
        ("[devices.bench]\nchannels = 2\n", "devices.bench.backend", "required key missing"),
        (
            '[devices.bench]\nbackend = "mock"\ndelay = "x"\n',
            "devices.bench.delay",
            "must be a number",
        ),
        (
            '[devices.bench]\nbackend = "mock"\ndelay = -1\n',
            "devices.bench.delay",
            "must be 0..3600 seconds",
        ),
        (
            '[devices.bench]\nbackend = "mock"\nfail = "set"\n',
            "devices.bench.fail",
            "must be a list",
        ),
        (
            '[devices.bench]\nbackend = "mock"\nfail = ["explode"]\n',
            "devices.bench.fail[0]",
            "must be one of",
        ),
        (
            '[devices.bench]\nbackend = "mock"\nunavailable = 1\n',
            "devices.bench.unavailable",
            "must be a boolean",
        ),
        (
            '[devices.bench]\nbackend = "mock"\nspeed = 9600\n',
            "devices.bench.speed",
            "unknown option",
        ),
        (
            '[devices.bench]\nbackend = "mock"\nchannels = "4"\n',
            "devices.bench.channels",
            "must be int",
        ),
        (
            '[devices.bench]\nbackend = "mock"\nchannels = 0\n',
            "devices.bench.channels",
            "supports 1..4096 channels",
        ),
        (
            '[devices.bench]\nbackend = "mock"\ntimeout = 0\n',
            "devices.bench.timeout",
            "must be more than 0",
        ),
        ("[devices.bench]\nbackend = true\n", "devices.bench.backend", "must be str"),
        ('[devices."bad name"]\nbackend = "mock"\n', "devices.bad name", "must be letters, digits"),
        ("devices = 3\n", "devices", "must be a table"),
        ('[devices]\nbench = "mock"\n', "devices.bench", "must be a table"),
        (
            '[devices.bench]\nbackend = "mock"\n[targets.dut1]\ndevice = "bnch"\nchannel = 1\n',
            "targets.dut1.device",
            "no device named 'bnch'",
        ),
        (
            '[targets.dut1]\ndevice = "bench"\nchannel = 1\n',
            "targets.dut1.device",
            "no device named 'bench'",
        ),
        (
            '[devices.bench]\nbackend = "mock"\n[targets.dut1]\nchannel = 1\n',
            "targets.dut1.device",
            "required key missing",
        ),
        (
            '[devices.bench]\nbackend = "mock"\n[targets.dut1]\ndevice = "bench"\n',
            "targets.dut1.channel",
            "required key missing",
        ),
        (
            '[devices.bench]\nbackend = "mock"\nchannels = 2\n'
            '[targets.dut1]\ndevice = "bench"\nchannel = 3\n',
            "targets.dut1.channel",
            "has channels 1..2, not 3",
        ),
        (
            '[devices.bench]\nbackend = "mock"\nchannels = 2\n'
            '[targets.dut1]\ndevice = "bench"\nchannel = 0\n',
            "targets.dut1.channel",
            "has channels 1..2, not 0",
        ),
        (BAD_LATER, "targets.dut2.channel", "already targets.dut1"),
        (
            '[devices.bench]\nbackend = "mock"\n'
            '[targets.dut1]\ndevice = "bench"\nchannel = 1\ninvert = "yes"\n',
            "targets.dut1.invert",
            "must be bool",
        ),
        (
            '[devices.bench]\nbackend = "mock"\n'
            '[targets.dut1]\ndevice = "bench"\nchannel = 1\ncycle_delay = -1\n',
            "targets.dut1.cycle_delay",
            "must be 0..3600",
        ),
        (
            '[devices.bench]\nbackend = "mock"\n'
            '[targets.dut1]\ndevice = "bench"\nchannel = 1\nport = 1\n',
            "targets.dut1.port",
            "unknown key",
        ),
        ('[daemon]\nsocket = "/tmp/x.sock"\nlisten = 1\n', "daemon.listen", "unknown key"),
        ('[daemon]\nlog_level = "loud"\n', "daemon.log_level", "must be one of"),
        ("[daemon]\nhistory = -1\n", "daemon.history", "must be between"),
        ("[daemon]\nsocket = 5\n", "daemon.socket", "must be str"),
        ('[deamon]\nlog_level = "info"\n', "deamon", "unknown key"),
    ],
    ids=lambda v: v if isinstance(v, str) and "\n" not in v and " " not in v else None,
)
def test_error_names_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    error = _error(tmp_path, text)
    assert error.key == key
    assert reason in error.reason
    assert f": {key}: " in str(error)


def test_unknown_backend_lists_the_installed_ones(tmp_path: Path) -> None:
    error = _error(tmp_path, '[devices.bench]\nbackend = "nosuch"\n')
    assert "mock" in error.reason


def test_unknown_option_lists_the_known_ones(tmp_path: Path) -> None:
    error = _error(tmp_path, '[devices.bench]\nbackend = "mock"\nspeed = 9600\n')
    assert "delay" in error.reason


def test_invalid_toml(tmp_path: Path) -> None:
    error = _error(tmp_path, "[devices.bench\nbackend = mock\n")
    assert "not valid TOML" in error.reason
    assert "line 1" in error.reason


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.toml"
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.path == str(path)
    assert "cannot read" in info.value.reason


def test_empty_config_is_valid(tmp_path: Path) -> None:
    cfg = load(_write(tmp_path, ""))
    assert (dict(cfg.devices), dict(cfg.targets)) == ({}, {})


def test_default_paths_follow_systemd_directories(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONFIGURATION_DIRECTORY", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    assert config_mod.default_config_path() == "/etc/labpower/labpowerd.toml"
    assert config_mod.default_socket_path() == "/run/labpower/labpower.sock"
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", "/etc/lp:/etc/other")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/lp")
    assert config_mod.default_config_path() == "/etc/lp/labpowerd.toml"
    assert config_mod.default_socket_path() == "/run/lp/labpower.sock"


# -- labpowerd --check-config, as a real process


def test_check_config_ok(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    result = subprocess.run(
        [*_labpowerd(), "--check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert str(path) in result.stdout
    assert "2 devices" in result.stdout
    assert "2 targets" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[devices.bench]\nbackend = "mock"\ndelay = "x"\n', "devices.bench.delay", "number"),
        ('[devices.bench]\nbackend = "nosuch"\n', "devices.bench.backend", "unknown backend"),
        (BAD_LATER, "targets.dut2.channel", "already"),
        ("[devices.bench\n", "", "not valid TOML"),
    ],
    ids=["bad-option", "unknown-backend", "duplicate-channel", "invalid-toml"],
)
def test_check_config_error(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = _write(tmp_path, text)
    result = subprocess.run(
        [*_labpowerd(), "--check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert str(path) in result.stderr
    assert key in result.stderr
    assert reason in result.stderr


def test_check_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    result = subprocess.run(
        [*_labpowerd(), "--check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert str(path) in result.stderr


# -- a bad config is refused before any backend is opened


def test_bad_config_refused_before_any_backend_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bench`` is a valid mock device, the mistake comes after it: no backend is created,
    let alone opened, and the socket never appears."""
    events: list[str] = []
    original_init, original_open = MockBackend.__init__, MockBackend.open

    def init(self: MockBackend, *args: object, **kwargs: object) -> None:
        events.append("created")
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]

    async def open_(self: MockBackend) -> None:
        events.append("opened")
        await original_open(self)

    monkeypatch.setattr(MockBackend, "__init__", init)
    monkeypatch.setattr(MockBackend, "open", open_)
    socket_path = tmp_path / "labpower.sock"
    code = main_mod.main(
        ["--config", str(_write(tmp_path, BAD_LATER)), "--socket", str(socket_path)]
    )
    assert code != 0
    assert events == []
    assert not socket_path.exists()
    err = capsys.readouterr().err
    assert "targets.dut2.channel" in err
    assert str(tmp_path / "labpowerd.toml") in err


def test_labpowerd_with_bad_config_exits_without_a_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "run" / "labpower.sock"
    path = _write(tmp_path, BAD_LATER)
    result = subprocess.run(
        [*_labpowerd(), "--config", str(path), "--socket", str(socket_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "targets.dut2.channel" in result.stderr
    assert str(path) in result.stderr
    assert not os.path.exists(socket_path.parent)


def test_labpowerd_usage_error_exits_2() -> None:
    result = subprocess.run(
        [*_labpowerd(), "--no-such-flag"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "usage" in result.stderr

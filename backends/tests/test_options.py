"""Backend options: a config table checked against a frozen dataclass, errors naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
from labpower.backends import NoOptions, OptionError, parse_options
from labpower.backends.errors import BackendError


@dataclass(frozen=True, slots=True)
class BoardOptions:
    port: str
    baud: int = 9600
    settle: float = 0.1
    reset: bool = False
    parity: Literal["N", "E", "O"] = "N"
    serial: str | None = None
    channels_map: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.baud <= 0:
            raise ValueError(f"baud: must be positive, not {self.baud}")
        if self.port == "both":
            raise ValueError("cannot combine everything")


def test_defaults_fill_in() -> None:
    opts = parse_options(BoardOptions, {"port": "/dev/ttyUSB0"})
    assert opts == BoardOptions("/dev/ttyUSB0")


def test_every_type() -> None:
    opts = parse_options(
        BoardOptions,
        {
            "port": "/dev/ttyUSB0",
            "baud": 115200,
            "settle": 1,
            "reset": True,
            "parity": "E",
            "serial": "A1B2",
            "channels_map": [2, 1],
        },
    )
    assert opts == BoardOptions("/dev/ttyUSB0", 115200, 1.0, True, "E", "A1B2", [2, 1])
    assert isinstance(opts.settle, float)


def test_optional_may_be_none() -> None:
    assert parse_options(BoardOptions, {"port": "p", "serial": None}).serial is None


@pytest.mark.parametrize(
    ("table", "key", "reason"),
    [
        ({}, "port", "required option missing"),
        ({"port": "p", "speed": 1}, "speed", "unknown option"),
        ({"port": 1}, "port", "must be a string"),
        ({"port": "p", "baud": "fast"}, "baud", "must be an integer"),
        ({"port": "p", "baud": True}, "baud", "must be an integer"),
        ({"port": "p", "baud": 1.5}, "baud", "must be an integer"),
        ({"port": "p", "settle": "x"}, "settle", "must be a number"),
        ({"port": "p", "settle": False}, "settle", "must be a number"),
        ({"port": "p", "reset": 1}, "reset", "must be a boolean"),
        ({"port": "p", "reset": "yes"}, "reset", "must be a boolean"),
        ({"port": "p", "parity": "X"}, "parity", "must be one of 'N', 'E', 'O'"),
        ({"port": "p", "serial": 5}, "serial", "must be a string"),
        ({"port": "p", "channels_map": 1}, "channels_map", "must be a list"),
        ({"port": "p", "channels_map": [1, "2"]}, "channels_map[1]", "must be an integer"),
        ({"port": "p", "baud": -1}, "baud", "must be positive"),
        ({"port": "both"}, "(options)", "cannot combine everything"),
    ],
)
def test_errors_name_the_key(table: dict[str, object], key: str, reason: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_options(BoardOptions, table)
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{key}: ")


def test_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(OptionError) as info:
        parse_options(BoardOptions, {"port": "p", "bauds": 1})
    assert "baud" in info.value.reason
    assert "port" in info.value.reason


def test_option_error_is_a_backend_error_and_a_value_error() -> None:
    assert issubclass(OptionError, BackendError)
    assert issubclass(OptionError, ValueError)


def test_no_options() -> None:
    assert parse_options(NoOptions, {}) == NoOptions()
    with pytest.raises(OptionError, match="takes: none"):
        parse_options(NoOptions, {"port": "x"})


def test_unsupported_option_type_is_a_backend_bug() -> None:
    @dataclass(frozen=True)
    class Weird:
        mapping: dict[str, int] = field(default_factory=dict)

    with pytest.raises(TypeError, match="unsupported option type"):
        parse_options(Weird, {"mapping": {}})

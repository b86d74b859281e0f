"""The frozen value classes (frozen.py): what ``@dataclass(frozen=True, slots=True)`` gave
them, kept without the dataclasses module; and jsoncodec.py, json's own output without the
json package."""

from __future__ import annotations

import codecs
import copy
import inspect
import json
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from labpower.client import jsoncodec
from labpower.client._protocol import Op, targets_result
from labpower.client.frozen import Frozen, FrozenInstanceError
from labpower.client.transport import Address
from labpower.client.types import Lease, LogEntry, Reading, Target
from labpower.client.wire import Call, Reply

LEASE = Lease(1000, 42, "ci job", "2026-12-08T01:00:00Z")
TARGET = Target("dut1", "bench", 1, "on", True, True, None, LEASE, None, "pdu1:1", ("a", "b"))
VALUES: list[Frozen] = [
    TARGET,
    LEASE,
    Reading(5.0, 2.0, 10.0),
    LogEntry("t", "info", "power on", 7, "dut1", "bench", {"op": "on"}),
    Call("io.labpower.Power.On", {"target": "dut1"}, more=True),
    Reply({"log_seq": 1}, continues=True),
    Address("/run/x.sock"),
    Op(Call("io.labpower.Power.List"), targets_result),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_fields_are_the_constructors_parameters_in_order(value: Frozen) -> None:
    parameters = list(inspect.signature(type(value)).parameters)
    assert parameters == list(value.__match_args__)
    assert type(value).__slots__ == value.__match_args__
    assert not hasattr(value, "__dict__")


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_frozen(value: Frozen) -> None:
    field = value.__match_args__[0]
    with pytest.raises(FrozenInstanceError, match=f"cannot assign to field '{field}'"):
        setattr(value, field, None)
    with pytest.raises(FrozenInstanceError):
        delattr(value, field)
    with pytest.raises(AttributeError):  # no new attributes either
        value.other = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_equal_by_value_copied_and_pickled(value: Frozen) -> None:
    same = type(value)(*(getattr(value, f) for f in value.__match_args__))
    assert same == value
    assert same is not value
    assert copy.copy(value) == value
    assert copy.deepcopy(value) == value
    if not isinstance(value, Op):  # holds a function
        assert pickle.loads(pickle.dumps(value)) == value
    assert value != object()
    assert (value == object()) is False


def test_hash_repr_and_match() -> None:
    assert hash(LEASE) == hash(Lease(1000, 42, "ci job", "2026-12-08T01:00:00Z"))
    assert {TARGET: 1}[Target(*(getattr(TARGET, f) for f in Target.__match_args__))] == 1
    assert Target("dut1", "bench", 1, "off", True, True) != TARGET
    assert repr(Reading(5.0, 2.0, 10.0)) == "Reading(voltage=5.0, current=2.0, apparent_power=10.0)"
    match TARGET:
        case Target(name, device, channel, state):
            assert (name, device, channel, state) == ("dut1", "bench", 1, "on")
        case _:
            pytest.fail("Target does not match positionally")


def test_a_class_whose_slots_are_not_its_fields_is_refused() -> None:
    with pytest.raises(TypeError, match="__slots__ must be __match_args__"):

        class Broken(Frozen):
            __match_args__ = ("a", "b")
            __slots__ = ("a",)


def test_no_parameters_is_a_new_empty_object_each() -> None:
    assert Call("a.B").parameters == {}
    assert Reply().parameters == {}
    assert Call("a.B").parameters is not Call("a.B").parameters  # each its own dict


# -- jsoncodec against json

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_dumps_is_jsons(value: Any) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert jsoncodec.dumps(value) == expected
    assert jsoncodec.loads(expected.encode()) == json.loads(expected)


def _outcome(loads: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "value", loads(data)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


@given(
    st.binary(max_size=40).filter(lambda b: b"\0" not in b and not b.startswith(codecs.BOM_UTF8))
    | st.from_regex(rb"\A[ \t\n\r]*(\{\"a\": ?\[1, ?2\.5e3\]\}|\"x\"|-0|\[\]|\{)[ \t\n\r]*\Z")
)
def test_loads_is_jsons_on_any_frame(data: bytes) -> None:
    # a frame never holds a NUL (it ends one), so json's UTF-16/32 guessing never applies
    assert _outcome(jsoncodec.loads, data) == _outcome(json.loads, data)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"x": float("nan")}, ValueError),
        ({"x": {1, 2}}, TypeError),
        (b"bytes", TypeError),
    ],
)
def test_dumps_refuses_what_json_refuses(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        jsoncodec.dumps(value)
    with pytest.raises(error):
        json.dumps(value, allow_nan=False)
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        jsoncodec.dumps(circular)

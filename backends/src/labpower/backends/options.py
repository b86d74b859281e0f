"""Backend options: a frozen dataclass per backend, checked against the config table.

A backend declares ``Options = SomeDataclass``; :func:`parse_options` turns the TOML table of a
device into an instance, refusing unknown keys, missing keys and wrong types with an
:class:`OptionError` that names the key. ``__post_init__`` of the dataclass may raise
``ValueError("key: reason")`` or :class:`OptionError` for checks beyond the type.

An option typed :class:`~labpower.backends.secret.Secret` (``password: Secret | None = None``)
is given as ``password``, ``password_file`` or ``password_credential``; see
:mod:`labpower.backends.secret`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from labpower.backends.errors import OptionError
from labpower.backends.secret import SUFFIXES, Secret, resolve

T = TypeVar("T")

_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


@dataclasses.dataclass(frozen=True, slots=True)
class NoOptions:
    """For backends that take no options of their own."""


def _check(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _check(key, value, args[0])
        # ``int | str`` (a GPIO line by offset or by name): the first type the value is
        for arg in args:
            try:
                return _check(key, value, arg)
            except OptionError:
                continue
        names = " or ".join(_NAMES.get(a, repr(a)) for a in args)
        raise OptionError(key, f"must be {names}, not {value!r}")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise OptionError(key, f"must be a list of {_NAMES.get(item, item)}s, not {value!r}")
        return [_check(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if typing.get_origin(hint) is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise OptionError(key, f"must be one of {', '.join(map(repr, allowed))}, not {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in _NAMES:
        if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
            raise OptionError(key, f"must be {_NAMES[hint]}, not {value!r}")
        return value
    raise TypeError(f"option {key}: unsupported option type {hint!r}")  # a backend bug


def _is_secret(hint: Any) -> bool:
    return hint is Secret or Secret in typing.get_args(hint)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    # evaluating the annotations costs milliseconds: once per class, not once per device
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def secret_fields(cls: type[Any]) -> list[str]:
    """The names of the options of ``cls`` (a dataclass) that are secrets."""
    hints = _hints(cls)
    return [f.name for f in dataclasses.fields(cls) if _is_secret(hints[f.name])]


def parse_options(cls: type[T], table: Mapping[str, Any]) -> T:
    """Build ``cls`` (a dataclass) from a config table.

    :raises OptionError: unknown, missing or mistyped key, or a value ``cls`` refuses.
    """
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    secrets = {name for name in fields if _is_secret(hints[name])}
    keys = {*fields, *(s + suffix for s in secrets for suffix, _ in SUFFIXES)}
    unknown = sorted(set(table) - keys)
    if unknown:
        known = ", ".join(sorted(keys)) or "none"
        raise OptionError(unknown[0], f"unknown option (this backend takes: {known})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in secrets:
            secret = resolve(name, dict(table))
            if secret is not None:
                values[name] = secret
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise OptionError(
                    name, f"required option missing (or {name}_file, {name}_credential)"
                )
        elif name in table:
            values[name] = _check(name, table[name], hints[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise OptionError(name, "required option missing")
    try:
        return cls(**values)
    except OptionError:
        raise
    except ValueError as exc:
        key, sep, reason = str(exc).partition(": ")
        if sep and key in fields:
            raise OptionError(key, reason) from exc
        raise OptionError("(options)", str(exc)) from exc

"""Run-time stand-ins for what the modules on the ``labpower`` command's path would
otherwise import at start: parts of ``typing``, and ``contextlib.contextmanager``.

Importing ``typing`` costs as much as all of ``labpower on``'s own code, and ``contextlib``
(with ``collections`` and ``functools``) a third of that (issue #18). Annotations need
neither at run time (``from __future__ import annotations``); what a module evaluates while
it is imported (a generic base class, a decorator) comes from here instead, in the pattern::

    TYPE_CHECKING = False  # the type checker reads it as true
    if TYPE_CHECKING:
        from typing import Generic, TypeVar
    else:
        from labpower.client._standins import Generic, TypeVar
    T = TypeVar("T")

The type checker reads the real names, and checks the code against them. At run time the
typing stand-ins take any arguments and add nothing (a subclass of ``Generic[T]`` is a plain
class), and :func:`contextmanager` is contextlib's, applied at the first call.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any
    from typing import TypeVar as _TypeVar

    _C = _TypeVar("_C")


class Generic:
    """``typing.Generic``, subscriptable, adding nothing."""

    __slots__ = ()

    def __class_getitem__(cls, parameters: object) -> type[Generic]:
        return cls


def TypeVar(name: str, *constraints: object, **options: object) -> str:
    """``typing.TypeVar``: the name alone (only ``Generic[...]`` sees it at run time)."""
    return name


def dataclass_transform(**options: object) -> Callable[[_C], _C]:
    """``typing.dataclass_transform``: returns the class unchanged."""

    def unchanged(cls: _C) -> _C:
        return cls

    return unchanged


def contextmanager(func: Callable[..., Any]) -> Callable[..., Any]:
    """``contextlib.contextmanager``, which is imported and applied at the first call."""
    made: Callable[..., Any] | None = None

    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal made
        if made is None:
            from contextlib import contextmanager

            made = contextmanager(func)
        return made(*args, **kwargs)

    call.__name__, call.__qualname__, call.__doc__ = func.__name__, func.__qualname__, func.__doc__
    call.__module__ = func.__module__
    call.__wrapped__ = func  # type: ignore[attr-defined]  # as functools.wraps sets it
    return call

"""Frozen, slotted value classes without the ``dataclasses`` module.

The values every ``labpower`` command creates on its way (the call, the reply, the target it
switched) would, as ``@dataclass(frozen=True, slots=True)`` classes, make the command import
``dataclasses``, which imports ``inspect`` (and with it ``ast``, ``dis``, ``enum``, ``re``...)
and compiles every class's methods with ``exec``: more than a third of ``labpower on``'s
instructions (issue #18).

A subclass of :class:`Frozen` lists its fields in order in ``__match_args__`` (its
``__slots__`` is the same tuple), annotates them, and sets them in its own ``__init__``
(which validates) through :meth:`Frozen._fill`. This base then gives what the dataclass
would: equality and hash by the fields' values, a repr naming them, copying and pickling,
and :class:`FrozenInstanceError` on assignment. Type checkers treat subclasses as frozen
dataclasses (``dataclass_transform``): an assignment is an error there too.

What it does not give: ``dataclasses.fields()``, ``asdict()`` and ``replace()``; each class
has ``to_dict()`` where a dict is wanted.
"""

from __future__ import annotations

# typing is not imported at run time (it is another tenth of the command's start); the
# type checker reads this block as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar, NoReturn, dataclass_transform
else:
    from labpower.client._standins import dataclass_transform


__all__ = ["Frozen", "FrozenInstanceError"]


class FrozenInstanceError(AttributeError):
    """A field of a frozen value was assigned or deleted (as dataclasses' error of that
    name)."""


@dataclass_transform(frozen_default=True)
class Frozen:
    """Base of the frozen value classes (see the module's docstring)."""

    #: the fields, in order (a subclass's ``__slots__`` is the same tuple)
    __match_args__: ClassVar[tuple[str, ...]] = ()
    __slots__ = ()

    def _fill(self, *values: object) -> None:
        """Set the fields, in their order; for ``__init__`` only."""
        setter = object.__setattr__
        for name, value in zip(self.__match_args__, values, strict=True):
            setter(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Frozen)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{self.__class__.__qualname__}({fields})"

    # copy and pickle set the state back through these, not through __setattr__
    def __getstate__(self) -> tuple[object, ...]:
        return self._values()

    def __setstate__(self, state: tuple[object, ...]) -> None:
        self._fill(*state)

    if not TYPE_CHECKING:  # hidden from the checker, which knows these of a dataclass itself

        def __init_subclass__(cls) -> None:
            super().__init_subclass__()
            if cls.__dict__.get("__slots__") != cls.__match_args__:
                raise TypeError(f"{cls.__name__}: __slots__ must be __match_args__")

        def __setattr__(self, name: str, value: object) -> NoReturn:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self, name: str) -> NoReturn:
            raise FrozenInstanceError(f"cannot delete field {name!r}")

"""Find backend classes by name through the ``labpower.backends`` entry-point group."""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

from labpower.backends.base import Backend
from labpower.backends.usbmatch import UsbMatch

GROUP = "labpower.backends"


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    # scanning the installed distributions is slow: once per process, not once per device
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    """Every backend name installed."""
    return sorted(_entry_points())


def load(name: str) -> type[Backend]:
    """The backend class registered as ``name``.

    :raises LookupError: no such backend is installed (the message lists those that are).
    :raises ImportError: the backend's hardware library is missing.
    """
    eps = _entry_points()
    if name not in eps:
        raise LookupError(f"unknown backend {name!r} (installed: {', '.join(sorted(eps))})")
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise LookupError(f"entry point {name!r} of {GROUP} is not a Backend subclass")
    return cls


#: The distribution whose backends the shipped udev rules are made from.
OWN_DISTRIBUTION = "labpower-backends"


def declared(own_only: bool = False) -> list[tuple[str, type[Backend], UsbMatch]]:
    """Every installed backend that declares a USB match (:attr:`Backend.usb`), by name.

    ``own_only``: only labpower-backends' own, for the udev rules labpower ships (a third
    party's backend installed beside it would otherwise change them); then a backend that
    cannot be imported is an error. Otherwise (discovery) it is left out: a backend whose
    library is missing drives no board here.

    :raises ImportError: ``own_only`` and one of labpower's backends cannot be imported.
    """
    out = []
    for name, ep in sorted(_entry_points().items()):
        if own_only and (ep.dist is None or ep.dist.name != OWN_DISTRIBUTION):
            continue
        try:
            cls = load(name)
        except ImportError:
            if own_only:
                raise
            continue
        if cls.usb is not None:
            out.append((name, cls, cls.usb))
    return out

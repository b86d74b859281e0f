"""Target handles: ``client.target("dut1")``, one class for both clients.

A handle binds a target name to a client; each method is the client's method of the same
name for that target, so it returns what the client returns (a result from
:class:`~labpower.client.Client`, an awaitable from :class:`~labpower.client.AsyncClient`).
"""

from __future__ import annotations

# typing is not imported at run time (see frozen.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Generic, Protocol, TypeVar
else:
    from labpower.client._standins import Generic, TypeVar

#: what a switch or state call returns, a read, a lease
R = TypeVar("R", covariant=True)
Reads = TypeVar("Reads", covariant=True)
Lease = TypeVar("Lease", covariant=True)

if TYPE_CHECKING:

    class TargetOps(Protocol[R, Reads, Lease]):
        """The per-target methods a client offers."""

        @property
        def path(self) -> str: ...
        def on(self, target: str) -> R: ...
        def off(self, target: str) -> R: ...
        def cycle(self, target: str, delay: float | None = None) -> R: ...
        def get(self, target: str, *, refresh: bool = False) -> R: ...
        def read(
            self, target: str, count: int | None = 1, interval: float | None = None
        ) -> Reads: ...
        def lease(
            self, target: str, name: str | None = None, timeout: float | None = None
        ) -> Lease: ...


class Handle(Generic[R, Reads, Lease]):
    """One target of a client; every method is one call to the daemon."""

    __slots__ = ("client", "name")

    def __init__(self, client: TargetOps[R, Reads, Lease], name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self.client.path}>"

    def on(self) -> R:
        return self.client.on(self.name)

    def off(self) -> R:
        return self.client.off(self.name)

    def cycle(self, delay: float | None = None) -> R:
        return self.client.cycle(self.name, delay)

    def state(self, *, refresh: bool = False) -> R:
        """The target's state; ``refresh``: read its board again."""
        return self.client.get(self.name, refresh=refresh)

    def read(self, count: int | None = 1, interval: float | None = None) -> Reads:
        """``count`` readings (forever if None), ``interval`` seconds apart."""
        return self.client.read(self.name, count, interval)

    def lease(self, name: str | None = None, timeout: float | None = None) -> Lease:
        """``with dut.lease(): ...`` holds the target exclusively for the block."""
        return self.client.lease(self.name, name, timeout)

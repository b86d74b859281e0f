"""The lab: devices and the targets on them, and the power operations on targets.

What the daemon knows of a target (state, verified, since) lives here. Switching reads the
state back wherever the board can tell; where it cannot, the state is what was commanded and
``verified`` is false. Nothing here switches a relay except On, Off and Cycle.

Get and List answer from what the daemon knows (read back at start, at every switch) and ask
the board again only when the caller says ``refresh``, or for a target whose state the
daemon does not know (``unknown``: a switch failed, the board never answered); reads of one
board asked for at once are shared (:mod:`labpower.daemon.shared`), and a board serves a
switch before any read still waiting (:class:`labpower.backends.Device`): reading never
starves switching.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from labpower.backends import (
    BackendError,
    Device,
    DeviceUnavailableError,
    HardwareTimeout,
    NotSupportedError,
)
from labpower.client.escape import escape
from labpower.daemon.access import Leases, check_readable, readable
from labpower.daemon.api import ApiError
from labpower.daemon.config import Config, TargetConfig
from labpower.daemon.connection import Connection
from labpower.daemon.locks import FairLock
from labpower.daemon.logbus import CallContext, current_call, log_entry, rfc3339
from labpower.daemon.shared import SharedReads
from labpower.daemon.state import Remembered, StateStore
from labpower.daemon.stats import SwitchStats

log = logging.getLogger("labpower.daemon.lab")


@dataclass(slots=True)
class TargetState:
    config: TargetConfig
    device: Device
    state: str = "unknown"
    verified: bool = False
    since: str | None = None
    #: serialises operations on the target (a cycle holds it through its off-time)
    lock: FairLock = field(default_factory=FairLock)
    #: its switches, for monitoring (:mod:`labpower.daemon.stats`)
    stats: SwitchStats = field(default_factory=SwitchStats)

    @property
    def name(self) -> str:
        return self.config.name

    def to_wire(self, leases: Leases) -> dict[str, Any]:
        lease = leases.holder(self.config.name)
        return {
            "name": self.config.name,
            "device": self.config.device,
            "channel": self.config.channel,
            "state": self.state,
            "verified": self.verified,
            "available": self.device.available,
            "since": self.since,
            "lease": None if lease is None else lease.to_wire(),
            "problem": None if self.device.available else self.device.problem,
            "pdudaemon": self.config.pdudaemon,
            "aliases": list(self.config.aliases),
        }

    def record(self, physical: bool | None, commanded: bool | None) -> None:
        """Note a state read from the board (``physical``) or, failing that, commanded."""
        before = self.state
        if physical is not None:
            self.state = "on" if physical != self.config.invert else "off"
            self.verified = True
        elif commanded is not None:
            self.state = "on" if commanded else "off"
            self.verified = False
        else:
            self.verified = False
        if commanded is not None and self.state != before:
            self.since = rfc3339(time.time())


def _api_error(t: TargetState, exc: BackendError, device: str | None = None) -> ApiError:
    """A backend error as the interface's error (``device``: the name to report, when not
    the target's device)."""
    name = t.device.name if device is None else device
    if isinstance(exc, HardwareTimeout):
        return ApiError("Timeout", target=t.name, seconds=exc.seconds)
    if isinstance(exc, DeviceUnavailableError):
        return ApiError("DeviceUnavailable", device=name, reason=str(exc))
    if isinstance(exc, NotSupportedError):
        return ApiError("NotSupported", target=t.name, operation=exc.operation)
    return ApiError("DeviceError", device=name, reason=str(exc))


def _who(ctx: CallContext | None) -> str:
    return "labpowerd" if ctx is None else f"uid {ctx.uid} pid {ctx.pid}"


def _refusal(exc: ApiError) -> str:
    """Why a guard refused, for the log: who holds the lease, or the error's name."""
    holder = exc.parameters.get("holder")
    if isinstance(holder, dict):
        name = holder.get("name")
        return f"leased by uid {holder.get('uid')} (pid {holder.get('pid')})" + (
            f" for {escape(name)}" if isinstance(name, str) and name else ""
        )
    return exc.name.rpartition(".")[2]


def _doing(op: str, wanted: str) -> str:
    """What a switch was for, in a log line: ``on``, ``off``, ``cycle (off)``, ``start (on)``."""
    return wanted if op == wanted else f"{op} ({wanted})"


class Lab:
    """Every device and target of one configuration."""

    def __init__(self, config: Config, store: StateStore | None = None) -> None:
        self.config = config
        self.store = store
        self.leases = Leases()
        self._shared: SharedReads[Any] = SharedReads()
        self.devices: dict[str, Device] = {
            name: Device(dc.create(), dc.timeout) for name, dc in config.devices.items()
        }
        self.targets: dict[str, TargetState] = {
            name: TargetState(tc, self.devices[tc.device]) for name, tc in config.targets.items()
        }

    async def open(self) -> None:
        """Open every board at once; absent ones are marked unavailable, not fatal."""
        async with anyio.create_task_group() as tg:
            for device in self.devices.values():
                tg.start_soon(self._open, device)

    @staticmethod
    async def _open(device: Device) -> None:
        if not await device.open():
            log.warning(
                "device %s unavailable: %s",
                device.name,
                device.problem,
                extra={"device": device.name},
            )

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for device in self.devices.values():
                    tg.start_soon(device.close)

    def target(self, name: str) -> TargetState:
        try:
            return self.targets[name]
        except KeyError:
            raise ApiError("TargetNotFound", target=name) from None

    @contextmanager
    def _hardware(self, t: TargetState, device: str | None = None) -> Iterator[None]:
        """Backend errors as the interface's errors; ``device``: the name to report, when
        not the target's device (its meter)."""
        try:
            yield
        except BackendError as exc:
            raise _api_error(t, exc, device) from exc

    # -- who may read
    def read_policy(self, target: TargetConfig) -> str:
        return target.read or self.config.daemon.read

    def readable(self, target: TargetConfig, conn: Connection) -> bool:
        return readable(target, conn, self.read_policy(target))

    def check_readable(self, name: str, conn: Connection, op: str) -> None:
        """:raises ApiError: TargetNotFound; PermissionDenied (logged) when ``conn`` may not
        read the target."""
        t = self.target(name).config
        check_readable(t, conn, self.read_policy(t), op)

    def visible_to(self, conn: Connection) -> Callable[[str | None], bool] | None:
        """Which targets' log entries ``conn`` may see (entries of no target: all); None
        when it may see every one. Decided at each entry, so a reload applies at once."""
        if conn.uid == 0:
            return None

        def visible(name: str | None) -> bool:
            if name is None:
                return True
            t = self.targets.get(name)  # a target since removed: only root sees it
            return t is not None and self.readable(t.config, conn)

        return visible

    # -- operations
    async def list(
        self,
        refresh: bool = False,
        visible: Callable[[str | None], bool] | None = None,
        known_only: bool = False,
    ) -> list[dict[str, Any]]:
        """The targets ``visible`` lets through (all by default), as the daemon knows them
        (``known_only``: no board is read, an unknown state stays unknown), or, with
        ``refresh``, as boards that can report their state say now."""
        if not known_only:
            await self.refresh(None if refresh else self._unknown_boards())
        return [
            t.to_wire(self.leases)
            for t in self.targets.values()
            if visible is None or visible(t.name)
        ]

    def _unknown_boards(self) -> Iterable[Device]:
        return {t.device: None for t in self.targets.values() if t.state == "unknown"}.keys()

    async def refresh(self, devices: Iterable[Device] | None = None) -> None:
        """Read back every board (or those of ``devices``) that can report its state, all
        boards at once."""
        async with anyio.create_task_group() as tg:
            for device in self.devices.values() if devices is None else devices:
                if not device.readback:
                    continue
                # a health-checked device that is down is left to its checks: an unreachable
                # PDU must not hold up every List by its deadline
                if device.available or not device.health_interval:
                    tg.start_soon(self.refresh_device, device)
                else:
                    self._unverified(device)

    async def refresh_device(self, device: Device) -> None:
        """Read back the states of one board (shared with a read of it in progress)."""
        await self._shared.run(("states", device), lambda: self._refresh_device(device))

    async def _refresh_device(self, device: Device) -> None:
        on_device = [t for t in self.targets.values() if t.device is device]
        if not on_device:
            return
        try:
            states = await device.states()
        except BackendError:
            self._unverified(device)
            return
        for t in on_device:
            t.record(states.get(t.config.channel), None)
            self._observed(t)

    def _unverified(self, device: Device) -> None:
        for t in self.targets.values():
            if t.device is device:
                t.verified = False

    async def get(self, name: str, refresh: bool = False) -> dict[str, Any]:
        """The target as the daemon knows it or, with ``refresh`` (or where it does not know
        its state), as its board says now."""
        t = self.target(name)
        if (refresh or t.state == "unknown") and t.device.readback:
            channel = t.config.channel
            try:
                state = await self._shared.run(
                    ("state", t.device, channel), lambda: t.device.state(channel)
                )
                t.record(state, None)
                self._observed(t)
            except BackendError:
                t.verified = False
        return t.to_wire(self.leases)

    async def switch(
        self, name: str, on: bool, op: str, guard: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Switch a target; ``guard`` (permission, lease) runs once the target is ours."""
        t = self.target(name)
        async with t.lock:
            if guard is not None:
                guard()
            return await self._switch(t, on, op)

    async def cycle(
        self, name: str, delay: float | None, guard: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        t = self.target(name)
        off_time = t.config.cycle_delay if delay is None else delay
        async with t.lock:
            if guard is not None:
                guard()
            await self._switch(t, False, "cycle")
            try:
                await anyio.sleep(off_time)
            except anyio.get_cancelled_exc_class():
                # only a stopping daemon cancels a call: it waited its grace time for the
                # cycle; the "on" is not made (that could come after a replacement daemon's
                # own switch), and the file says so
                self._aborted(t)
                raise
            if guard is not None:
                # a lease taken (or a permission withdrawn) during the off-time stops the on
                try:
                    guard()
                except ApiError as exc:
                    log.error(
                        "cycle (on) by %s stopped after the off-time: %s",
                        _who(current_call.get()),
                        _refusal(exc),
                        extra={"target": t.name, "op": "cycle", "state": t.state},
                    )
                    raise
            return await self._switch(t, True, "cycle")

    def _aborted(self, t: TargetState) -> None:
        note = "cycle aborted: the daemon stopped in its off-time"
        log.error(
            "%s: %s; it stays off",
            t.name,
            note,
            extra={"target": t.name, "device": t.config.device, "op": "cycle", "state": t.state},
        )
        if self.store is not None:
            known = self.store.remembered(t.name)
            if known is not None:
                self.store.update(t.name, replace(known, note=note))

    async def _switch(self, t: TargetState, on: bool, op: str) -> dict[str, Any]:
        ctx = current_call.get()
        if ctx is not None:
            ctx.target, ctx.device, ctx.channel, ctx.op = (
                t.name,
                t.config.device,
                t.config.channel,
                op,
            )
        who = _who(ctx)
        before = t.state
        wanted = "on" if on else "off"
        # the entries name the target even where no call is served (a switch at start)
        where = {"target": t.name, "device": t.config.device, "channel": t.config.channel, "op": op}
        durable = self.store is not None and t.config.start == "restore"
        if durable:
            await self._save_intent(t, wanted, ctx, where)
        started = time.monotonic()
        try:
            # not self._hardware(): a generator-based context manager costs a switch more
            # than the rest of its bookkeeping
            try:
                physical = await t.device.switch(t.config.channel, on != t.config.invert)
            except BackendError as hw:
                raise _api_error(t, hw) from hw
        except ApiError as exc:
            t.stats.record(op, exc.name, time.monotonic() - started)
            t.state, t.verified = "unknown", False
            self._remember(t, ctx)
            if durable:
                await self._save(t, where)
            log.error(
                "%s by %s failed: %s",
                _doing(op, wanted),
                who,
                exc.parameters.get("reason", exc.name.rpartition(".")[2]),
                extra={**where, "state": t.state, "before": before},
            )
            raise
        t.record(physical, on)
        mismatch = t.verified and t.state != wanted
        t.stats.record(op, "StateMismatch" if mismatch else None, time.monotonic() - started)
        self._remember(t, ctx)
        if durable:
            await self._save(t, where)
        if mismatch:
            log.error(
                "%s by %s: the board reports %s",
                _doing(op, wanted),
                who,
                t.state,
                extra={**where, "state": t.state, "before": before},
            )
            raise ApiError("StateMismatch", target=t.name, expected=wanted, actual=t.state)
        # the audit line: who, what, before, after
        log_entry(
            log,
            logging.INFO,
            f"{op} by {who}: {before} -> {t.state}{'' if t.verified else ' (not verified)'}",
            **where,
            state=t.state,
            before=before,
        )
        return t.to_wire(self.leases)

    async def _save_intent(
        self, t: TargetState, wanted: str, ctx: CallContext | None, where: dict[str, Any]
    ) -> None:
        """Before a target that restores is switched: save that a switch to ``wanted`` began,
        so that a daemon killed before the outcome is saved does not restore the state from
        before it. :raises ApiError: StateNotSaved (nothing switched)."""
        assert self.store is not None
        self.store.update(t.name, self._record(t, ctx, wanted, pending=True))
        try:
            await self.store.save()
        except OSError as exc:
            log.error(
                "%s by %s refused: the state file cannot be written (%s), and %s restores "
                "its state at start",
                _doing(where["op"], wanted),
                _who(ctx),
                exc.strerror or exc,
                t.name,
                extra={**where, "state": t.state},
            )
            raise ApiError("StateNotSaved", target=t.name, reason=str(exc.strerror or exc)) from exc

    async def _save(self, t: TargetState, where: dict[str, Any]) -> None:
        """The outcome of a switch of a target that restores: saved before the reply. If it
        cannot be, the record stays pending (restore will not act on it) and the store keeps
        trying."""
        assert self.store is not None
        try:
            await self.store.save()
        except OSError as exc:
            log.error(
                "%s: the new state %s could not be saved (%s): until it is, a restart will "
                "not restore this target",
                t.name,
                t.state,
                exc.strerror or exc,
                extra={**where, "state": t.state},
            )

    def _observed(self, t: TargetState) -> None:
        """Persist a state read back from the board that differs from the remembered one:
        a switch whose write a SIGKILL overtook, or a relay switched behind our back. Who
        made it so is unknown then. Not while a switch holds the target: its own record
        (perhaps a pending one) comes next, and must not be overtaken."""
        if self.store is None or not t.verified or t.lock.locked():
            return
        known = self.store.remembered(t.name)
        if known is None or known.state != t.state:
            self._remember(t, None)

    def _remember(self, t: TargetState, ctx: CallContext | None) -> None:
        if self.store is not None:
            self.store.update(t.name, self._record(t, ctx, t.state))

    @staticmethod
    def _record(
        t: TargetState, ctx: CallContext | None, state: str, pending: bool = False
    ) -> Remembered:
        return Remembered(
            state,
            t.since,
            ctx.uid if ctx else None,
            ctx.pid if ctx else None,
            ctx.client if ctx else None,
            pending,
        )

    async def start(self, remembered: Mapping[str, Remembered]) -> None:
        """Apply each target's start policy. ``keep`` switches nothing: the state is what
        the board reports (read on the next Get/List) or else the remembered one, not
        verified. ``off``/``on`` switch to that state; ``restore`` to the remembered one."""
        async with anyio.create_task_group() as tg:
            for t in self.targets.values():
                known = remembered.get(t.name)
                policy = t.config.start
                if known is not None:
                    t.state, t.since, t.verified = known.state, known.since, False
                    if known.note:
                        log.warning(
                            "%s: %s (%s); it was left %s",
                            t.name,
                            known.note,
                            known.since or "time unknown",
                            known.state,
                            extra={"target": t.name, "device": t.config.device},
                        )
                    if known.pending:
                        t.state = "unknown"
                        if policy == "restore":
                            self._distrust(t, known)
                            policy = "keep"
                if policy == "restore":
                    policy = known.state if known is not None else "keep"
                if policy in ("on", "off"):
                    tg.start_soon(self._start_switch, t, policy == "on")

    @staticmethod
    def _distrust(t: TargetState, known: Remembered) -> None:
        message = (
            f"start = restore refused for {t.name}: the outcome of its last switch (to "
            f"{known.state}) was never saved, so the state file cannot be trusted; "
            "switching nothing"
        )
        log.error(message, extra={"target": t.name, "device": t.config.device, "op": "start"})

    async def _start_switch(self, t: TargetState, on: bool) -> None:
        try:
            async with t.lock:
                await self._switch(t, on, "start")
        except ApiError:
            pass  # logged by _switch; the daemon serves anyway

    async def read(self, name: str) -> dict[str, float]:
        """A reading of the target, shared with every caller asking at the same time."""
        t = self.target(name)
        device, channel, meter = t.device, t.config.channel, t.config.meter
        if meter is not None:
            with self._hardware(t, str(meter)):
                m = await self._shared.run(("meter", meter), lambda: meter.measure(device.timeout))
        else:
            with self._hardware(t):
                m = await self._shared.run(
                    ("measure", device, channel), lambda: device.measure(channel)
                )
        return {"voltage": m.voltage, "current": m.current, "apparent_power": m.apparent_power}

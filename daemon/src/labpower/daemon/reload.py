"""Reloading the configuration in place (SIGHUP, ``systemctl reload``).

A new file is validated whole first; a bad one is refused and the running configuration keeps
serving. Otherwise the lab is changed in place:

- a device whose settings are the same (its description aside) keeps its open board, its
  :class:`~labpower.backends.Device` and the state of its targets: nothing touches it;
- a changed device is closed and opened again with the new settings, a removed one closed,
  a new one opened; opening and closing never switch a relay;
- a target keeps what the daemon knows of it while its device, channel and wiring (invert)
  are unchanged; otherwise its state becomes unknown (until read back), since the relay it
  names is another one now.

Calls in flight on affected targets finish first (the reload takes their locks), and a target's
:class:`~labpower.daemon.lab.TargetState` object is updated in place, so a call already waiting
for it goes to the new board. A call waiting on a removed target fails as unavailable instead
of re-opening a board that is no longer configured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace

import anyio
from labpower.backends import Backend, Device, DeviceUnavailableError
from labpower.daemon.config import Config, DeviceConfig, TargetConfig
from labpower.daemon.lab import Lab, TargetState

log = logging.getLogger("labpower.daemon.reload")


@dataclass(frozen=True, slots=True)
class Plan:
    """What a reload changes; device and target names."""

    unchanged_devices: frozenset[str]
    changed_devices: frozenset[str]
    added_devices: frozenset[str]
    removed_devices: frozenset[str]
    kept_targets: frozenset[str]
    reset_targets: frozenset[str]
    added_targets: frozenset[str]
    removed_targets: frozenset[str]

    def summary(self) -> str:
        parts = []
        for what, names in (
            ("reopened", self.changed_devices),
            ("added", self.added_devices),
            ("removed", self.removed_devices),
        ):
            if names:
                parts.append(f"devices {what}: {', '.join(sorted(names))}")
        for what, names in (
            ("added", self.added_targets),
            ("removed", self.removed_targets),
            ("reset to unknown", self.reset_targets),
        ):
            if names:
                parts.append(f"targets {what}: {', '.join(sorted(names))}")
        return "; ".join(parts) or "no device or target changed"


def _same_device(a: DeviceConfig, b: DeviceConfig) -> bool:
    # a new description changes nothing on the board
    return replace(a, description="") == replace(b, description="")


def _same_relay(a: TargetConfig, b: TargetConfig) -> bool:
    return (a.device, a.channel, a.invert) == (b.device, b.channel, b.invert)


def plan(old: Config, new: Config) -> Plan:
    """Compare two configurations."""
    unchanged = {
        n
        for n in old.devices.keys() & new.devices.keys()
        if _same_device(old.devices[n], new.devices[n])
    }
    changed = (old.devices.keys() & new.devices.keys()) - unchanged
    kept = {
        n
        for n in old.targets.keys() & new.targets.keys()
        if _same_relay(old.targets[n], new.targets[n]) and new.targets[n].device in unchanged
    }
    return Plan(
        unchanged_devices=frozenset(unchanged),
        changed_devices=frozenset(changed),
        added_devices=frozenset(new.devices.keys() - old.devices.keys()),
        removed_devices=frozenset(old.devices.keys() - new.devices.keys()),
        kept_targets=frozenset(kept),
        reset_targets=frozenset((old.targets.keys() & new.targets.keys()) - kept),
        added_targets=frozenset(new.targets.keys() - old.targets.keys()),
        removed_targets=frozenset(old.targets.keys() - new.targets.keys()),
    )


class _Removed(Backend):
    """Stands in for the board of a target that a reload removed."""

    async def open(self) -> None:
        raise DeviceUnavailableError(f"target removed from the configuration ({self.name})")

    async def set(self, channel: int, on: bool) -> None:
        raise DeviceUnavailableError("target removed from the configuration")


async def apply(lab: Lab, new: Config) -> Plan:
    """Change ``lab`` to ``new`` in place (see the module docstring). Devices that do not
    open are marked unavailable, as at start; nothing here raises for them."""
    p = plan(lab.config, new)
    affected = sorted(p.reset_targets | p.removed_targets)
    async with AsyncExitStack() as stack:
        # in a fixed order, so two reloads cannot deadlock; calls hold one lock only
        for name in affected:
            await stack.enter_async_context(lab.targets[name].lock)
        await _close(lab.devices[n] for n in p.changed_devices | p.removed_devices)
        devices = {n: d for n, d in lab.devices.items() if n in p.unchanged_devices}
        fresh = {
            n: Device(new.devices[n].create(), new.devices[n].timeout)
            for n in p.changed_devices | p.added_devices
        }
        async with anyio.create_task_group() as tg:
            for device in fresh.values():
                tg.start_soon(_open, device)
        devices.update(fresh)
        targets: dict[str, TargetState] = {}
        for name, tc in new.targets.items():
            t = lab.targets.get(name)
            if t is None:
                targets[name] = TargetState(tc, devices[tc.device])
                continue
            t.config, t.device = tc, devices[tc.device]
            if name in p.reset_targets:
                t.state, t.verified, t.since = "unknown", False, None
            targets[name] = t
        for name in p.removed_targets:
            gone = lab.targets[name]
            gone.device = Device(_Removed(name, gone.config.channel, None), 1.0)
            gone.state, gone.verified = "unknown", False
        lab.config, lab.devices, lab.targets = new, devices, targets
    return p


async def _close(devices: Iterable[Device]) -> None:
    with anyio.CancelScope(shield=True):
        async with anyio.create_task_group() as tg:
            for device in devices:
                tg.start_soon(device.close)


async def _open(device: Device) -> None:
    if not await device.open():
        log.warning(
            "device %s unavailable: %s", device.name, device.problem, extra={"device": device.name}
        )

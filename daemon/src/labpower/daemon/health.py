"""Health checks: network devices are asked every ``health_interval`` seconds whether they
still answer, so that one that stops answering becomes unavailable (with the reason:
refused, timeout, authentication) within one interval, and one that comes back becomes
available by itself, without anyone calling.

Each check runs in its own task under the device's deadline, so a device that hangs delays
neither the others' checks nor anything else. A check never switches a relay. USB boards have
no interval: hot-plug events tell of them (:mod:`labpower.daemon.hotplug`).
"""

from __future__ import annotations

import logging

import anyio
from labpower.backends import Device
from labpower.daemon.lab import Lab

log = logging.getLogger("labpower.daemon.health")
#: the longest the loop sleeps, so that devices added by a reload are picked up
MAX_NAP = 1.0


def log_change(device: Device, was_available: bool) -> None:
    """Log a device coming back or going away (nothing if its availability is unchanged)."""
    if device.available and not was_available:
        log.info("device %s is back", device.name, extra={"device": device.name})
    elif not device.available and was_available:
        log.warning(
            "device %s is gone: %s", device.name, device.problem, extra={"device": device.name}
        )


class HealthChecks:
    """Checks the lab's devices that have a health interval, each on its own schedule."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        #: checks done so far (tests wait on :attr:`checked`)
        self.checks = 0
        self.checked = anyio.Event()

    async def run(self) -> None:
        """Check until cancelled."""
        due: dict[Device, float] = {}
        busy: set[Device] = set()
        async with anyio.create_task_group() as tg:
            while True:
                now = anyio.current_time()
                devices = [d for d in self.lab.devices.values() if d.health_interval]
                for stale in set(due) - set(devices):
                    del due[stale]
                for device in devices:
                    interval = device.health_interval or 0.0
                    when = due.setdefault(device, now + interval)
                    if when <= now and device not in busy:
                        due[device] = now + interval
                        busy.add(device)
                        tg.start_soon(self._check, device, busy)
                nap = min([MAX_NAP, *(when - now for when in due.values())])
                await anyio.sleep(max(nap, 0.001))

    async def _check(self, device: Device, busy: set[Device]) -> None:
        try:
            was_available = device.available
            await device.check()
            if device.available and not was_available and device.readback:
                # back: its outlets may have changed meanwhile (a power cut, a button)
                await self.lab.refresh_device(device)
            log_change(device, was_available)
        finally:
            busy.discard(device)
            self.checks += 1
            self.checked.set()
            self.checked = anyio.Event()

"""Every place the daemon's side polls instead of sleeping, and for how long: one module, so
that the trade (CPU for latency) is made in one place and can be read at a glance.

Polling pays where a reply is due at a moment the code can predict, and a process woken by
the kernel for it would come a tenth to a quarter of a millisecond late on a virtual
machine. It does not pay where nothing is due: there it only burns CPU that a client or a
board's worker thread could use. The benchmark table (``benchmarks/``) shows each figure
with and without it. The blocking client has its own, opt-in, policy:
:mod:`labpower.client.timing` (the client never imports the backends).

- The daemon's event loop (``labpower.daemon.eventloop``): no idle polling
  (:data:`LOOP_IDLE_SPIN` is 0: the loop sleeps in epoll when it has nothing to do); a
  timer (a serial board's answer, a cycle's off time) is waited for in ``select()`` with
  microsecond timeouts until :data:`TIMER_EARLY` before it is due, then polled for, so it
  fires on time rather than up to a millisecond late (row "serial: timer_late_median_ms").
- A serial board's answer, due after its wire time (``serial.port``): polled for from
  :data:`SERIAL_POLL_BEFORE` before until :data:`SERIAL_POLL_AFTER` after the predicted
  moment (row "serial: overhead_median_ms").
- The simulators emulate wire time: the last :data:`SIM_WIRE_SPIN` of a wait is spun,
  because ``sleep()`` overshoots by 0.1-0.25 ms; a simulator's ``listen`` (off by default)
  keeps it polling for the next command, like a board's microcontroller.
"""

from __future__ import annotations

#: Seconds the daemon's event loop polls for more work before it sleeps (0: never).
LOOP_IDLE_SPIN = 0.0
#: How long before a timer is due the event loop wakes up to poll for it, seconds.
TIMER_EARLY = 300e-6
#: A serial answer due at a known moment is polled for from this long before it is due...
SERIAL_POLL_BEFORE = 150e-6
#: ... until this long after.
SERIAL_POLL_AFTER = 500e-6
#: The last part of an emulated wire-time wait that a simulator spins rather than sleeps.
SIM_WIRE_SPIN = 300e-6

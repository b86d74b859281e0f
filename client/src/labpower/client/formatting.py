"""How the ``labpower`` command shows targets, readings and log entries to people."""

from __future__ import annotations

# typing is not imported at run time (see frozen.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from labpower.client.lab import HostTargets  # the inventory: read only where one is used
    from labpower.client.types import LogEntry, Reading, Target


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


_HEADER = ("TARGET", "STATE", "VERIFIED", "DEVICE", "CHANNEL", "AVAILABLE", "SINCE")


def _row(t: Target) -> tuple[str, ...]:
    return (
        t.name,
        t.state,
        _yes_no(t.verified),
        t.device,
        str(t.channel),
        _yes_no(t.available),
        t.since or "-",
    )


def format_table(targets: Sequence[Target]) -> str:
    """Targets as an aligned text table with a header line; then, after a blank line, a line
    for each unavailable device saying why."""
    table = _align([_HEADER] + [_row(t) for t in targets])
    problems = {t.device: t.problem for t in targets if not t.available and t.problem}
    if not problems:
        return table
    notes = [f"device {device} unavailable: {why}" for device, why in problems.items()]
    return "\n".join([table, "", *notes])


def format_lab_table(hosts: Sequence[HostTargets]) -> str:
    """Every host's targets, with a HOST column; an unreachable host is one row saying so."""
    rows: list[tuple[str, ...]] = [("HOST", *_HEADER)]
    for h in hosts:
        if not h.reachable:
            rows.append((h.host.name, "-", "unreachable", *("-" * (len(_HEADER) - 2))))
        rows.extend((h.host.name, *_row(t)) for t in h.targets)
    return _align(rows)


def _align(rows: Sequence[tuple[str, ...]]) -> str:
    header = rows[0]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    # rstrip: the last column is not padded, so no line ends in blanks
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def format_state(target: Target) -> str:
    """``dut1: on (verified)``; notes an unavailable device."""
    notes = ["verified" if target.verified else "not verified"]
    if not target.available:
        notes.append(
            f"device unavailable: {target.problem}" if target.problem else "device unavailable"
        )
    return f"{target.name}: {target.state} ({', '.join(notes)})"


def format_reading(target: str, reading: Reading) -> str:
    return (
        f"{target}: {reading.voltage:.3f} V  {reading.current:.3f} A"
        f"  {reading.apparent_power:.3f} VA"
    )


def format_entry(entry: LogEntry) -> str:
    """``2026-11-27T07:00:00.123456Z info dut1: power on``; the device stands in for an
    entry without a target, and a daemon-wide entry has neither."""
    source = entry.target or entry.device
    where = f"{source}: " if source else ""
    return f"{entry.time} {entry.level} {where}{entry.message}"


# -- commands

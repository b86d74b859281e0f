"""``labpower-discover --probe snmp://HOST`` / ``http://HOST``: ask a network device what it
is, its outlets and their names, and describe it for a config snippet. Switches nothing.

``snmp://[COMMUNITY@]HOST[:PORT]`` (community ``public`` when none is given) tries the
vendor profiles in turn; ``http://[USER:PASSWORD@]HOST[:PORT]`` tries Shelly (``/shelly``),
NETIO (``/netio.json``), Gude (``/status.json``) and Tasmota (``/cm?cmnd=State``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
from labpower.backends.base import Backend
from labpower.backends.errors import BackendError, OptionError
from labpower.backends.options import parse_options
from labpower.backends.registry import load

#: the most outlets probed on a PDU
MAX_OUTLETS = 48
SNMP_ORDER = ("apc", "raritan", "eaton", "sentry", "cyberpower")
HTTP_ORDER = ("shelly", "netio", "gude", "tasmota")


def parse_url(url: str) -> tuple[str, str, str | None, str | None]:
    """(scheme, host[:port], user, secret) of a probe URL.

    :raises ValueError: not snmp:// or http://, or no host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("snmp", "http") or not parts.hostname:
        raise ValueError(f"{url!r}: expected snmp://[COMMUNITY@]HOST[:PORT] or http://HOST")
    host = parts.netloc.rpartition("@")[2]
    user = unquote(parts.username) if parts.username else None
    secret = unquote(parts.password) if parts.password else None
    return parts.scheme, host, user, secret


async def _try(backend: str, channels: int, table: dict[str, Any], deadline: float) -> Backend:
    cls = load(backend)
    device = cls(backend, channels, parse_options(cls.Options, table), deadline)
    try:
        with anyio.fail_after(deadline):
            await device.open()
    except TimeoutError as exc:
        raise BackendError(f"no answer within {deadline:g} s") from exc
    return device


async def probe(url: str, deadline: float = 3.0) -> Any:
    """A ``discover.Found`` describing the device at ``url``.

    :raises ValueError: a bad URL. :raises BackendError: nothing answered as a known device.
    """
    from labpower.backends.discover import Found

    scheme, host, user, secret = parse_url(url)
    failures: list[str] = []
    if scheme == "snmp":
        community = user or secret or "public"
        for profile in SNMP_ORDER:
            snmp_table = {"host": host, "profile": profile, "community": community}
            try:
                device = await _try("snmp", 1, snmp_table, deadline)
            except (BackendError, OptionError) as exc:
                failures.append(f"{profile}: {exc}")
                continue
            try:
                count, names, state = await _snmp_outlets(device)
            finally:
                await device.close()
            chosen = device.profile.name if device.profile else profile  # type: ignore[attr-defined]
            return Found(
                "snmp",
                f"SNMP PDU, profile {chosen}, at {host}",
                {f"outlet {ch}": name for ch, name in names.items()},
                {"host": host, "profile": chosen, "version": "2c"},
                count,
                ['give the community with community_file = "/etc/labpower/NAME.community"'],
                _known(state),
            )
        raise BackendError(f"no SNMP PDU profile answered at {host}: {'; '.join(failures)}")
    for backend in HTTP_ORDER:
        table: dict[str, Any] = {"host": host}
        if secret is not None:
            table.update(user=user or "admin", password=secret)
        try:
            device = await _try(backend, 1, table, deadline)
        except (BackendError, OptionError) as exc:
            failures.append(f"{backend}: {exc}")
            continue
        try:
            count = await _http_outlets(device)
            device.channels = count
            state = await device.get_all()
        finally:
            await device.close()
        notes = ["give the password with password_file = ..."] if secret else []
        return Found(
            backend, f"{backend} device at {host}", {}, {"host": host}, count, notes, _known(state)
        )
    raise BackendError(f"no known HTTP device answered at {host}: {'; '.join(failures)}")


def _known(state: dict[int, bool | None]) -> dict[str, bool]:
    return {str(ch): on for ch, on in state.items() if on is not None}


async def _snmp_outlets(device: Any) -> tuple[int, dict[int, str], dict[int, bool | None]]:
    """How many outlets answer (state OIDs 1..MAX_OUTLETS), their names and states."""
    profile = device.profile
    values = await device._call(
        "get", [(profile.oid(profile.state, n), None) for n in range(1, MAX_OUTLETS + 1)]
    )
    count = next((i for i, v in enumerate(values) if v is None), len(values)) or 1
    device.channels = count
    await device._read_names()
    return count, dict(device.outlet_names), await device.get_all()


async def _http_outlets(device: Any) -> int:
    """How many outlets the device reports (1 where it does not say)."""
    backend = device.__class__.__name__
    if backend == "NetioBackend":
        return len((await device.status())["Outputs"])
    if backend == "GudeBackend":
        device.channels = 0
        return len(await device.outputs())
    if backend == "ShellyBackend" and device.generation > 1:
        status = await device.rpc("Shelly.GetStatus")
        return sum(1 for key in status if key.startswith("switch:")) or 1
    if backend == "ShellyBackend":
        relays = (await device.call("/status")).get("relays")
        return len(relays) if isinstance(relays, list) and relays else 1
    reply = await device.command("State")
    return sum(1 for key in reply if key.startswith("POWER")) or 1

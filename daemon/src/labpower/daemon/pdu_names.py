"""The targets' pdudaemon names (``pdudaemon = "pdu01:19"``, ``aliases = [...]``), checked
when the config is loaded: well formed, and each name given to one target only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labpower.client.pdudaemon.address import (
    AddressError,
    check_name,
    format_address,
    parse_address,
)

if TYPE_CHECKING:
    from labpower.daemon.config import _Checker


class PduNames:
    """Collects the names of one config's targets; refuses a name used twice."""

    def __init__(self, checker: _Checker) -> None:
        self._c = checker
        self._addresses: dict[str, str] = {}
        self._aliases: dict[str, str] = {}

    def check(
        self, target: str, table: Mapping[str, Any], key: str
    ) -> tuple[str | None, tuple[str, ...]]:
        """The target's normalised ``pdudaemon`` address and its aliases.

        :raises ConfigError: malformed, or already another target's.
        """
        c = self._c
        address: str | None = None
        raw = c.value(table, "pdudaemon", str, key, None)
        if raw is not None:
            try:
                address = format_address(*parse_address(raw))
            except AddressError as exc:
                raise c.fail(f"{key}.pdudaemon", str(exc)) from None
            self._claim(self._addresses, address, target, f"{key}.pdudaemon", address)
        aliases = table.get("aliases", [])
        if not isinstance(aliases, list):
            raise c.fail(f"{key}.aliases", f"must be a list of names, not {aliases!r}")
        for alias in aliases:
            if not isinstance(alias, str):
                raise c.fail(f"{key}.aliases", f"{alias!r} is not a name")
            try:
                check_name(alias, "alias")
            except AddressError as exc:
                raise c.fail(f"{key}.aliases", str(exc)) from None
            self._claim(self._aliases, alias, target, f"{key}.aliases", f"alias {alias!r}")
        return address, tuple(aliases)

    def _claim(self, owners: dict[str, str], name: str, target: str, key: str, what: str) -> None:
        """:raises ConfigError: ``name`` is another target's already."""
        if name in owners:
            raise self._c.fail(key, f"{what} is already targets.{owners[name]}'s")
        owners[name] = target

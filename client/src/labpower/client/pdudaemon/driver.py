"""A pdudaemon driver for labs that keep pdudaemon: pdudaemon switches labpower targets.

In pdudaemon.conf (labpower-client installed where pdudaemon runs)::

    "pdus": {"pdu01": {"driver": "labpower", "socket": "/run/labpower/labpower.sock"}}

pdudaemon finds it through its ``pdudaemon.driver`` entry point. A request for port N of
``pdu01`` switches the target whose labpowerd.toml says ``pdudaemon = "pdu01:N"`` (``pdu``
names another PDU hostname to look up instead of pdudaemon's own). ``socket`` may be an
``ssh://`` address: pdudaemon on one host, labpowerd on another. pdudaemon calls drivers
from a worker thread: the blocking client is the right one here.

Nothing here imports pdudaemon: the class has the surface pdudaemon's runner calls
(``accepts``, ``handle``, ``_bombout``, ``_cleanup``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from labpower.client.pdudaemon.address import find_target, port_number
from labpower.client.sync import Client

log = logging.getLogger("labpower.pdudaemon.driver")


class TargetLookupError(LookupError):
    """No labpower target answers to the PDU port pdudaemon asked for."""


class LabpowerDriver:
    """pdudaemon driver ``labpower``."""

    def __init__(self, hostname: str, settings: Mapping[str, Any]) -> None:
        self.hostname = hostname
        self.pdu = str(settings.get("pdu", hostname))
        socket = settings.get("socket")
        self.socket = str(socket) if socket is not None else None
        self.timeout = float(settings.get("timeout", 60.0))

    @classmethod
    def accepts(cls, drivername: str) -> bool:
        return drivername == "labpower"

    def handle(self, request: str, port_number_: int | str) -> None:
        """Switch the target of ``port_number_`` on or off; returns once it switched.

        :raises TargetLookupError: no target has this PDU port.
        :raises ValueError: a request other than on or off.
        :raises LabpowerError: the daemon refused or failed.
        """
        if request not in ("on", "off"):
            raise ValueError(f"labpower driver: unknown request {request!r}")
        with Client(self.socket, timeout=self.timeout) as lab:
            port = port_number(str(port_number_))
            target = None
            if port is not None:
                target = find_target(lab.targets(), self.pdu, port)
            if target is None:
                raise TargetLookupError(
                    f"no labpower target has pdudaemon = {self.pdu!r}:{port_number_!r}"
                )
            result = lab.on(target.name) if request == "on" else lab.off(target.name)
        log.info("%s %s:%s: %s is %s", request, self.pdu, port, result.name, result.state)

    def _bombout(self) -> None:
        """pdudaemon calls this after a failed request: nothing is held between requests."""

    def _cleanup(self) -> None:
        """pdudaemon's drivers call this after each request: nothing to clean up."""

"""pytest plugin: lab power for tests (installed with labpower-client, entry point ``pytest11``).

Nothing happens unless a test asks for it:

- ``labpower_client``: a connected :class:`~labpower.client.Client`. The daemon's log entries
  about the test's targets (the configured one, the marker's, and every target the test
  switches or takes a handle of through this client) are forwarded to Python logging while
  the test runs, so they land in the test's captured logs and in its failure report; a
  switching call returns only after its own entries arrived.
- ``labpower_target``: a :class:`~labpower.client.TargetHandle` of the test's target.
- ``@pytest.mark.labpower("cycle" | "on" | "off", target=None, delay=None)``: switch the target
  before the test (default: power-cycle the configured target).

Configuration: ``--labpower-socket ADDRESS`` (a socket path or ``ssh://...``; default: the ini
option ``labpower_socket``, else $LABPOWER_SOCKET, else the system socket),
``--labpower-target NAME`` (else ``labpower_target``), and the ini option
``labpower_log_level`` (the least level of forwarded entries; default ``info``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from labpower.client import _protocol as p
from labpower.client.sync import Client, LogStream, TargetHandle
from labpower.client.types import LEVELS, LogEntry, Target

MARKER = "labpower"
ACTIONS = ("cycle", "on", "off")
_POWER_FIXTURE = "_labpower_power"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labpower", "labpower: lab power for tests")
    group.addoption(
        "--labpower-socket",
        dest="labpower_socket",
        metavar="ADDRESS",
        default=None,
        help="labpowerd's socket: a path or ssh://[user@]host[:port][/path] "
        "(default: ini labpower_socket, else $LABPOWER_SOCKET, else the system socket)",
    )
    group.addoption(
        "--labpower-target",
        dest="labpower_target",
        metavar="TARGET",
        default=None,
        help="the target of the labpower_target fixture (default: ini labpower_target)",
    )
    parser.addini("labpower_socket", "labpowerd's socket (see --labpower-socket)", default=None)
    parser.addini("labpower_target", "the target of the labpower_target fixture", default=None)
    parser.addini(
        "labpower_log_level",
        f"least level of daemon log entries in the captured logs ({', '.join(LEVELS)})",
        default="info",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(action='cycle', target=None, delay=None): switch a lab target before the "
        "test: 'cycle' (default), 'on' or 'off'; target defaults to --labpower-target",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The marker's work is a fixture, so it runs in setup (its log lands in the setup
    # section) and only for marked tests: no autouse fixture that every test would carry.
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and item.get_closest_marker(MARKER) is not None
            and _POWER_FIXTURE not in item.fixturenames
        ):
            item.fixturenames.append(_POWER_FIXTURE)


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the daemon is and which target a test uses (command line over ini file)."""

    socket: str | None
    target: str | None
    log_level: str

    @classmethod
    def of(cls, config: pytest.Config) -> Settings:
        """:raises pytest.UsageError: labpower_log_level is not a level name."""
        level = str(config.getini("labpower_log_level") or "info").lower()
        if level not in LEVELS:
            raise pytest.UsageError(
                f"labpower_log_level must be one of {', '.join(LEVELS)}, not {level!r}"
            )
        return cls(
            config.getoption("labpower_socket") or config.getini("labpower_socket") or None,
            config.getoption("labpower_target") or config.getini("labpower_target") or None,
            level,
        )


@dataclass(frozen=True, slots=True)
class _Marker:
    action: str
    target: str | None
    delay: float | None


def _marker(node: pytest.Item) -> _Marker | None:
    """The test's ``labpower`` marker, checked. :raises pytest.fail.Exception: malformed."""
    mark = node.get_closest_marker(MARKER)
    if mark is None:
        return None
    kwargs: dict[str, Any] = dict(mark.kwargs)
    action = mark.args[0] if mark.args else kwargs.pop("action", "cycle")
    target = kwargs.pop("target", None)
    delay = kwargs.pop("delay", None)
    if len(mark.args) > 1 or kwargs or action not in ACTIONS:
        pytest.fail(
            f"@pytest.mark.{MARKER}: expected ({'|'.join(ACTIONS)}, target=NAME, delay=S), "
            f"got args={mark.args!r} kwargs={mark.kwargs!r}",
            pytrace=False,
        )
    return _Marker(action, target, delay)


class _TestEntries(p.EntryFilter):
    """Accepts the entries of the test's targets, a set that grows as the test uses some."""

    __slots__ = ("names",)

    def __init__(self, level: str) -> None:
        super().__init__(None, level)
        self.names: set[str] = set()

    def __call__(self, entry: LogEntry) -> bool:
        return entry.levelno >= self.levelno and entry.target in self.names


class PytestClient(Client):
    """A :class:`Client` that adds every target it touches to the test's log filter."""

    def __init__(self, socket: str | None, entries: _TestEntries) -> None:
        super().__init__(socket)
        self.test_entries = entries

    def target(self, name: str) -> TargetHandle:
        self.test_entries.names.add(name)
        return super().target(name)

    def _switch(self, op: p.Op[tuple[Target, int]]) -> Target:
        self.test_entries.names.add(op.call.parameters["target"])
        return super()._switch(op)

    def acquire(
        self, target: str, name: str | None = None, timeout: float | None = None
    ) -> tuple[Target, str]:
        self.test_entries.names.add(target)
        return super().acquire(target, name, timeout)


def _test_target(request: pytest.FixtureRequest, settings: Settings) -> str | None:
    marker = _marker(request.node) if isinstance(request.node, pytest.Item) else None
    if marker is not None and marker.target is not None:
        return marker.target
    return settings.target


@pytest.fixture
def labpower_client(request: pytest.FixtureRequest) -> Iterator[Client]:
    """A connected client of the configured daemon, forwarding the log entries of the test's
    targets into the test's captured logs."""
    settings = Settings.of(request.config)
    entries = _TestEntries(settings.log_level)
    target = _test_target(request, settings)
    if target is not None:
        entries.names.add(target)
    # The forwarded records must pass their logger's level whatever the root logger's is.
    remote = logging.getLogger(p.REMOTE_LOGGER)
    saved = remote.level
    remote.setLevel(LEVELS[settings.log_level])
    try:
        with PytestClient(settings.socket, entries) as client:
            stream = LogStream(client, None, None)
            stream._filter = entries
            with stream:
                yield client
    finally:
        remote.setLevel(saved)


@pytest.fixture
def labpower_target(request: pytest.FixtureRequest, labpower_client: Client) -> TargetHandle:
    """The test's target: the marker's, else --labpower-target, else the ini file's."""
    name = _test_target(request, Settings.of(request.config))
    if name is None:
        pytest.fail(
            "no labpower target: give --labpower-target NAME or labpower_target in the ini file",
            pytrace=False,
        )
    return labpower_client.target(name)


@pytest.fixture
def _labpower_power(request: pytest.FixtureRequest, labpower_client: Client) -> None:
    """The work of the ``labpower`` marker (added to marked tests only)."""
    assert isinstance(request.node, pytest.Item)
    marker = _marker(request.node)
    assert marker is not None
    name = marker.target or Settings.of(request.config).target
    if name is None:
        pytest.fail(
            f"@pytest.mark.{MARKER}: no target: give target=NAME, --labpower-target or "
            "labpower_target in the ini file",
            pytrace=False,
        )
    handle = labpower_client.target(name)
    if marker.action == "cycle":
        handle.cycle(marker.delay)
    elif marker.action == "on":
        handle.on()
    else:
        handle.off()

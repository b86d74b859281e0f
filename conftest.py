"""Test-run options shared by every test tree (tests/, client/tests, backends/tests,
daemon/tests): which tests a run takes by the ``timing`` marker, and hypothesis' profiles.

``./dev test`` runs the suite in two phases on this 2-core machine: ``--timing-tests=none``
spreads every other test over pytest-xdist workers, then ``--timing-tests=only`` runs the
tests marked ``timing`` in one process, so a test that asserts a wall-clock bound never
shares the CPU with another test. Deselecting (not skipping) keeps each phase's summary
honest: a test is counted once, in the phase that ran it.

Hypothesis runs the ``labpower`` profile: hypothesis' defaults without its per-example
deadline (200 ms of wall-clock time, which a parallel run on 2 cores can exceed; each test's
pytest timeout still bounds it). ``LABPOWER_TEST_DEEP=1`` (or ``--hypothesis-profile=deep``)
runs the ``deep`` profile: ten times the examples, and the varlink fuzzer's full 55,000
messages (tests/robustness/test_fuzz.py) instead of its 20,000.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("labpower", deadline=None)
settings.register_profile("deep", settings.get_profile("labpower"), max_examples=1000)
settings.load_profile("deep" if os.environ.get("LABPOWER_TEST_DEEP") == "1" else "labpower")

CHOICES = ("all", "none", "only")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--timing-tests",
        choices=CHOICES,
        default="all",
        help="run the tests marked timing too (all, the default), not at all (none), or "
        "only them (only); ./dev test runs 'none' in parallel, then 'only' alone",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker
        _slow_modules_first(items)
    which = config.getoption("--timing-tests")
    if which == "all":
        return
    keep = which == "only"
    selected = [item for item in items if (item.get_closest_marker("timing") is not None) == keep]
    deselected = [item for item in items if (item.get_closest_marker("timing") is not None) != keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # both phases of ./dev test get the same options: the timing phase writes its JUnit XML
    # beside the first phase's (name.timing.xml), not over it
    xml = config.getoption("xmlpath", None)
    if xml and config.getoption("--timing-tests") == "only":
        path = Path(xml)
        config.option.xmlpath = str(path.with_name(f"{path.stem}.timing{path.suffix}"))


def _slow_modules_first(items: list[pytest.Item]) -> None:
    """Put the modules that hold a test marked ``slow`` first, each kept whole and in order.

    --dist loadfile hands modules to the workers in collection order: the minutes-long ones
    (the fuzzer, the floods, the VM, the .deb) last left one worker busy while the other
    idled; first, the many short modules fill in beside them.
    """
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow)  # stable: the rest keeps its order

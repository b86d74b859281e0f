"""The pytest plugin of the backend contract suite (entry point ``pytest11``
``labpower-backends``): registers the markers the suite's tests carry, so that a project
running pytest with ``--strict-markers`` and without pytest-xdist can run them."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers it too when installed; a second registration is harmless
    config.addinivalue_line(
        "markers",
        "xdist_group(name): tests of one group run in one worker (timing-sensitive tests)",
    )

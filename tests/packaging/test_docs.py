"""The man pages render without warnings, and the package installs each of them."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import REPO

MAN = REPO / "docs" / "man"
PAGES = sorted(p.name for p in MAN.iterdir() if p.suffix[1:].isdigit())


def test_the_pages_the_issue_asks_for_exist() -> None:
    assert {"labpowerd.8", "labpower.1", "labpowerd.toml.5"} <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_man_renders_the_page_without_warnings(page: str) -> None:
    run = subprocess.run(
        ["man", "--warnings", "-l", str(MAN / page)],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0"},
        timeout=60,
        check=False,
    )
    assert run.returncode == 0
    assert run.stderr == ""
    assert len(run.stdout.splitlines()) > 20, "a page with content"


def test_the_package_installs_every_page() -> None:
    listed = (REPO / "packaging" / "debian" / "labpower.manpages").read_text().split()
    assert sorted(os.path.basename(p) for p in listed) == PAGES

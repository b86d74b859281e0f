"""The lab page in a real headless Chromium (Debian's package), in front of a real labpowerd
with mock boards and one simulated USB serial board (a real pty that can be unplugged).

Run: ``.venv/bin/pytest tests/web/test_page.py``; ``LABPOWER_DOCS_SCREENSHOTS=1`` also writes
the screenshot to docs/web-page.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labpower.backends.sim import Boards, PtySimulator
from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

from .browser import Browser
from .conftest import WebProcess

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: a lease holder name that would run code if the page built markup from it
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
CONFIG = {
    "daemon": {"log_level": "info"},
    "devices": {
        "bench": {"backend": "mock", "channels": 2},
        "usb1": {
            "backend": "lcus",
            "channels": 2,
            "timeout": 0.5,
            "gap": 0.0,
            "probe_timeout": 0.2,
        },
    },
    "targets": {
        "dut1": {"device": "bench", "channel": 1},
        "dut2": {"device": "bench", "channel": 2},
        "board1": {"device": "usb1", "channel": 1},
    },
}


@dataclass
class Setup:
    daemon: DaemonProcess
    web: WebProcess
    board: PtySimulator
    browser: Browser

    def row(self, target: str, attribute: str) -> str:
        """A JavaScript expression: an attribute of the target's row (null without one)."""
        return (
            f"document.querySelector('#targets tr[data-target=\"local/{target}\"]')"
            f"?.getAttribute('data-{attribute}')"
        )

    def cell(self, target: str, cls: str) -> str:
        return (
            f"document.querySelector('#targets tr[data-target=\"local/{target}\"] td.{cls}')"
            "?.textContent"
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """One daemon, one labpower-web and one browser on its page for the module (Chromium
    takes a second or two to start)."""
    directory = tmp_path_factory.mktemp("page")
    with Boards(directory) as boards:
        board = boards("lcus", "usb1", channels=2)
        config = json.loads(json.dumps(CONFIG))
        config["devices"]["usb1"]["port"] = str(board.link)
        (directory / "daemon").mkdir()
        daemon = DaemonProcess(config, directory=str(directory / "daemon"))
        daemon.start()
        web_dir = directory / "web"
        web_dir.mkdir()
        web = WebProcess(
            [
                "--socket",
                daemon.socket_path,
                "--read-interval",
                "0.5",
                "--window",
                "10",
                "--poll",
                "30",
            ],
            web_dir,
        )
        try:
            with Browser() as browser:
                browser.navigate(web.url + "/")
                browser.wait_for("document.getElementById('status').dataset.status === 'live'")
                yield Setup(daemon, web, board, browser)
                assert not browser.console, browser.console
        finally:
            assert web.stop() == 0, web.stderr()
            assert daemon.stop() == 0, daemon.stderr()


def test_the_page_shows_every_target_as_the_daemon_has_it(setup: Setup) -> None:
    b = setup.browser
    b.wait_for("document.querySelectorAll('#targets tbody tr').length === 3")
    with setup.daemon.client(timeout=10) as lab:
        targets = lab.targets()
    for t in targets:
        assert b.evaluate(setup.row(t.name, "state")) == t.state
        assert b.evaluate(setup.row(t.name, "available")) == "true"
    # a plot of each target that can measure (the mock's; the USB relay board cannot)
    plotted = b.wait_for(
        "(() => { const p = [...document.querySelectorAll('#plots .plot')]"
        ".filter(p => p.querySelector('polyline.power')).map(p => p.dataset.target);"
        " return p.length === 2 && p; })()"
    )
    assert sorted(plotted) == ["local/dut1", "local/dut2"]


@pytest.mark.timing
def test_labpower_on_shows_on_the_page_and_in_the_live_log_within_a_second(
    setup: Setup,
) -> None:
    b = setup.browser
    assert b.evaluate(setup.row("dut1", "state")) == "off"
    seen = b.evaluate("document.querySelectorAll('#log li').length")
    cli = Path(sys.executable).with_name("labpower")
    env = {**os.environ, "LABPOWER_SOCKET": setup.daemon.socket_path}
    done = subprocess.run(
        [str(cli), "on", "dut1"], env=env, capture_output=True, text=True, timeout=30
    )
    returned = time.monotonic()
    assert done.returncode == 0, done.stderr
    b.wait_for(f"{setup.row('dut1', 'state')} === 'on'", timeout=1.0)
    entry = b.wait_for(
        f"[...document.querySelectorAll('#log li')].slice({seen})"
        ".map(li => li.textContent).find(t => t.includes('local/dut1: on by uid'))",
        timeout=1.0,
    )
    latency = time.monotonic() - returned
    assert latency < 1.0
    assert "off -> on" in entry
    # the switch heads the last switches, with who made it
    first = b.evaluate("document.querySelector('#switches tbody tr')?.textContent")
    assert "dut1" in first
    assert f"uid {os.getuid()}" in first
    assert "off → on" in first


def test_a_hostile_lease_holder_name_shows_as_text(setup: Setup) -> None:
    b = setup.browser
    with Client(setup.daemon.socket_path, timeout=10) as holder:
        holder.acquire("dut2", name=HOSTILE)
        shown = b.wait_for(f"{setup.cell('dut2', 'lease')}", timeout=5.0)
        assert shown.startswith(HOSTILE)
        b.wait_for(
            "[...document.querySelectorAll('#log li')].some(li => "
            f"li.textContent.includes({json.dumps('lease taken by uid')}) && "
            f"li.textContent.includes({json.dumps(HOSTILE)}))",
            timeout=5.0,
        )
        assert b.evaluate("window.__pwned === undefined")
        assert b.evaluate("document.querySelectorAll('script').length") == 1  # app.js
        assert b.evaluate("document.querySelectorAll('main img').length") == 0
    b.wait_for(f"{setup.cell('dut2', 'lease')} === ''", timeout=5.0)  # ended with its client


@pytest.mark.timing
def test_an_unplugged_board_shows_unavailable_and_available_again_when_back(
    setup: Setup, tmp_path: Path
) -> None:
    b = setup.browser
    assert b.evaluate(setup.row("board1", "available")) == "true"
    with Client(setup.daemon.socket_path, timeout=10) as lab:
        lab.on("dut1")
        lab.acquire("dut2", name="nightly-ci")
        setup.board.drop()
        # the daemon notices the link go (inotify), logs it, and the page follows
        b.wait_for(f"{setup.row('board1', 'available')} === 'false'", timeout=5.0)
        assert b.evaluate(setup.cell("board1", "available")).startswith("no")
        b.wait_for(f"{setup.cell('dut2', 'lease')}.startsWith('nightly-ci')", timeout=5.0)
        # what the docs show: a switch made, a lease held, a board missing
        shot = tmp_path / "web-page.png"
        b.screenshot(shot)
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        if os.environ.get("LABPOWER_DOCS_SCREENSHOTS"):
            (DOCS / "web-page.png").write_bytes(shot.read_bytes())
        setup.board.come_back()
        b.wait_for(f"{setup.row('board1', 'available')} === 'true'", timeout=5.0)

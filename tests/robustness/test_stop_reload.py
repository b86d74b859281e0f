"""Stopping during a cycle, and a reload that would remove every target.

- SIGTERM while a ``Cycle(delay=30)`` is in its off-time: the daemon waits its grace time
  (10 s) for calls in flight, then stops without making the "on" (it would come long after
  anyone asked for it, perhaps after a replacement daemon's own switch). It says so loudly,
  the state file records the target as off with a note that the cycle was aborted, and the
  next start repeats that note.
- SIGHUP with an empty file, or one without targets: refused, the old configuration keeps
  serving and the log says why; ``[daemon] allow_empty = true`` lets it through.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from labpower.client import TargetNotFound
from labpower.daemon.state import FILENAME, decode

from ..conftest import StartDaemon, mock_config
from .conftest import POWER, Raw, wait_until

#: the daemon's grace time for calls in flight at stop (labpowerd's default), seconds
GRACE = 10.0


@pytest.mark.timing
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_during_a_cycle_leaves_it_off_and_says_so(start_daemon: StartDaemon) -> None:
    daemon = start_daemon(
        mock_config({"bench": {"channels": 1}}, {"t": {"device": "bench", "channel": 1}})
    )
    with daemon.client(timeout=10.0) as lab:
        lab.on("t")
        with Raw(daemon.socket_path, timeout=60.0) as raw:
            raw.call(f"{POWER}.Logs", {"targets": ["t"]}, more=True)
            assert raw.receive() == {"parameters": {}, "continues": True}
            with Raw(daemon.socket_path, timeout=60.0) as cycler:
                cycler.call(f"{POWER}.Cycle", {"target": "t", "delay": 30.0})
                # the cycle's "off" is logged: it is in its off-time now
                while True:
                    reply = raw.receive(time.monotonic() + 10)
                    assert reply is not None
                    if reply["parameters"]["entry"]["message"].startswith("cycle by"):
                        break
                assert lab.get("t").state == "off"
                stopped = time.monotonic()
                daemon.signal(signal.SIGTERM)
                assert daemon.proc is not None
                assert daemon.proc.wait(GRACE + 10) == 0
                took = time.monotonic() - stopped
                # the caller gets no reply: its call was not done
                assert cycler.closed_without_reply(5.0)
    assert took < GRACE + 5, f"stopping took {took:.1f} s"
    stderr = daemon.stderr()
    assert "t: cycle aborted: the daemon stopped in its off-time; it stays off" in stderr
    record = decode((daemon.directory / "state" / FILENAME).read_bytes())["t"]
    assert record.state == "off"
    assert record.note is not None
    assert "cycle aborted" in record.note
    assert not record.pending

    # the next start says it again; the target is off (keep: nothing switched)
    since = len(stderr)
    daemon.start()
    assert "t: cycle aborted: the daemon stopped in its off-time" in daemon.stderr()[since:]
    with daemon.client(timeout=10.0) as lab:
        assert lab.get("t").state == "off"


def test_reload_refuses_a_file_without_targets(start_daemon: StartDaemon, tmp_path: Path) -> None:
    daemon = start_daemon(
        mock_config({"bench": {"channels": 1}}, {"t": {"device": "bench", "channel": 1}})
    )

    def said(text: str, count: int) -> Callable[[], bool]:
        return lambda: daemon.stderr().count(text) >= count

    with daemon.client(timeout=10.0) as lab:
        lab.on("t")
        for attempt, text in enumerate(("", "[devices.bench]\nbackend = 'mock'\n"), 1):
            daemon.config_path.write_text(text)
            daemon.signal(signal.SIGHUP)
            assert wait_until(said("reload refused", attempt), 10.0)
            assert lab.get("t").state == "on"  # the old configuration keeps serving
        assert "the file defines no targets" in daemon.stderr()
        assert "daemon.allow_empty = true" in daemon.stderr()

        # asked for explicitly: every target goes
        daemon.config_path.write_text("[daemon]\nallow_empty = true\n")
        daemon.signal(signal.SIGHUP)
        assert wait_until(said("reloaded ", 1), 10.0)
        assert lab.targets() == []
        with pytest.raises(TargetNotFound):
            lab.get("t")

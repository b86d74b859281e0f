"""The daemon's log output against a datagram socket that stops reading, as journald's does
when journald is stopped, busy or restarting behind its socket unit.

The kernel queues a few datagrams (net.unix.max_dgram_qlen) and then refuses more with
EAGAIN; the daemon must hold what it could not send, in order, send it once the socket takes
datagrams again, and never lose an entry: one beyond the backlog, or one still held at stop,
goes to stderr.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from labpower.daemon import journal
from labpower.daemon.journal import LogOutput

LOGGER = logging.getLogger("labpower.test_journal_output")


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A socket in journald's place that reads only when the test says so."""
    path = str(tmp_path / "socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield sock, path
    sock.close()


@pytest.fixture
def output(journald: tuple[socket.socket, str]) -> Iterator[LogOutput]:
    """The daemon's log output, sending to ``journald``."""
    out = LogOutput("journal", journald[1])
    yield out
    out.close()


def record(n: int) -> logging.LogRecord:
    return LOGGER.makeRecord(LOGGER.name, logging.INFO, __file__, 1, "entry %d", (n,), None, "test")


def received(sock: socket.socket) -> list[int]:
    """The entry numbers of every datagram queued on ``sock``, in order."""
    out = []
    while True:
        try:
            datagram = sock.recv(65536)
        except BlockingIOError:
            return out
        match = re.search(rb"^MESSAGE=entry (\d+)$", datagram, re.M)
        assert match, datagram
        out.append(int(match[1]))


def fill(output: LogOutput, first: int) -> int:
    """Emit entries until one is held; return the number of the next one."""
    n = first
    while not output._held:
        output.handle(record(n))
        n += 1
        assert n - first < 10_000, "the socket never refused a datagram"
    return n


def stderr_entries(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^info: entry (\d+)$", text, re.M)]


def test_held_entries_go_first_once_journald_reads_again(
    journald: tuple[socket.socket, str], output: LogOutput, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = journald[0]
    n = fill(output, 0)
    for m in range(n, n + 5):  # journald still busy: these wait behind the first held
        output.handle(record(m))
    n += 5
    got = received(sock)  # journald runs again and empties its queue
    output.handle(record(n))
    got += received(sock)
    assert got == list(range(n + 1)), "every entry, once, in order"
    assert output.fallbacks == 0
    err = capsys.readouterr().err
    assert "journald cannot take entries (EAGAIN" in err
    assert "holding up to 4096 until it can" in err
    assert err.rstrip().endswith("info: journald takes entries again")


def test_entries_beyond_the_backlog_go_to_stderr(
    journald: tuple[socket.socket, str],
    output: LogOutput,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock = journald[0]
    monkeypatch.setattr(journal, "BACKLOG", 3)
    n = fill(output, 0)
    for m in range(n, n + 4):
        output.handle(record(m))
    n += 4
    err = capsys.readouterr().err
    assert "3 entries held); logging to stderr until it can" in err
    overflow = stderr_entries(err)
    assert overflow == list(range(n - 2, n)), "the two the backlog had no room for"
    assert output.fallbacks == 2
    got = received(sock)
    output.handle(record(n))
    got += received(sock)
    assert got + overflow == [*range(n - 2), n, n - 2, n - 1]


def test_entries_still_held_at_stop_go_to_stderr(
    journald: tuple[socket.socket, str], output: LogOutput, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = journald[0]
    n = fill(output, 0)
    output.handle(record(n))
    output.close()
    sent = received(sock)
    err = capsys.readouterr().err
    assert "stopping); writing held entries to stderr" in err
    assert sent + stderr_entries(err) == list(range(n + 1))


def test_held_entries_go_to_stderr_when_journald_is_gone(
    journald: tuple[socket.socket, str], output: LogOutput, capsys: pytest.CaptureFixture[str]
) -> None:
    sock, path = journald
    n = fill(output, 0)
    sent = received(sock)
    Path(path).unlink()  # journald died and its socket went with it
    output.handle(record(n))
    err = capsys.readouterr().err
    assert "journald cannot take entries (ENOENT" in err
    assert sent + stderr_entries(err) == list(range(n + 1))
    assert output._held == type(output._held)()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_the_loop_retries_held_entries_without_new_ones(
    journald: tuple[socket.socket, str], output: LogOutput, anyio_backend: str
) -> None:
    sock = journald[0]
    async with anyio.create_task_group() as tg:
        tg.start_soon(output.run)
        await anyio.lowlevel.checkpoint()
        n = 0
        while not output._held:  # logged on the loop: written by run(), after a yield
            output.handle(record(n))
            n += 1
            await anyio.lowlevel.checkpoint()
        got = received(sock)
        with anyio.fail_after(5):
            while len(got) < n:  # nothing else is logged: run()'s timer sends the rest
                await anyio.sleep(journal.RETRY_SECONDS / 2)
                got += received(sock)
        assert got == list(range(n))
        tg.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_entries_held_by_another_thread_are_sent_by_the_loop(
    journald: tuple[socket.socket, str],
    output: LogOutput,
    anyio_backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock = journald[0]
    monkeypatch.setattr(journal, "HELD_CHECK_SECONDS", 0.05)
    async with anyio.create_task_group() as tg:
        tg.start_soon(output.run)
        await anyio.lowlevel.checkpoint()
        # a backend's worker thread logs until journald's queue is full
        n = await anyio.to_thread.run_sync(fill, output, 0)
        got = received(sock)
        with anyio.fail_after(5):
            while len(got) < n:  # nothing else is logged: the loop sends the held one
                await anyio.sleep(0.01)
                got += received(sock)
        assert got == list(range(n))
        tg.cancel_scope.cancel()

"""Fixtures of the pdudaemon tests: a labpowerd with pdudaemon names, and
``labpower-pdudaemon`` processes in front of it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from labpower.daemon.testing import DaemonProcess

from .peers import wait_listening

BIN = Path(sys.executable).parent

#: the lab behind the listener: pdudaemon names for some targets, none for others
LAB: dict[str, Any] = {
    "devices": {
        "bench": {"backend": "mock", "channels": 4},
        "slow": {"backend": "mock", "channels": 2, "delay": 0.2},
        "faulty": {"backend": "mock", "channels": 1, "fail": ["set"]},
    },
    "targets": {
        "dut1": {"device": "bench", "channel": 1, "pdudaemon": "pdu01:19", "aliases": ["lava-1"]},
        "dut2": {"device": "bench", "channel": 2, "pdudaemon": "pdu01:08"},
        "hidden": {"device": "bench", "channel": 3},
        "dut4": {"device": "bench", "channel": 4, "aliases": ["only-alias"]},
        "slow1": {"device": "slow", "channel": 1, "pdudaemon": "pdu02:1"},
        "slow2": {"device": "slow", "channel": 2, "pdudaemon": "pdu02:2"},
        "broken": {"device": "faulty", "channel": 1, "pdudaemon": "pdu03:1"},
    },
}

StartListener = Callable[..., int]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def listening(
    socket_path: str,
    port: int,
    log: Path | None = None,
    debug: bool = False,
    prefix: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """``labpower-pdudaemon`` on 127.0.0.1:``port`` (in the current network namespace),
    logging to ``log`` (else to nowhere); ``prefix``: a command that runs it (setpriv)."""
    with open(log or os.devnull, "wb") as out:
        proc = subprocess.Popen(
            [
                *prefix,
                str(BIN / "labpower-pdudaemon"),
                "--listen",
                f"127.0.0.1:{port}",
                "--socket",
                socket_path,
                "--log-level",
                "debug" if debug else "info",
            ],
            stderr=out,
        )
    try:
        wait_listening(port, proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def pdu_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A labpowerd serving :data:`LAB` for a whole module (tests put targets back off)."""
    proc = DaemonProcess(LAB, directory=str(tmp_path_factory.mktemp("pdulab")))
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.stderr()


@pytest.fixture(scope="module")
def listener(pdu_lab: DaemonProcess) -> Iterator[int]:
    """The port of a ``labpower-pdudaemon`` in front of :func:`pdu_lab`."""
    port = free_port()
    with listening(pdu_lab.socket_path, port):
        yield port

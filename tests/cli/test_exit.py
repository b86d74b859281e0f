"""The command ends its process without the interpreter's teardown (``cli.run``): what it
printed still reaches a file or a pipe in full, and its exit status is the command's."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

from .conftest import LABPOWER, RUN_TIMEOUT, command_env


def test_buffered_output_reaches_a_file_in_full(daemon: DaemonProcess, tmp_path: Path) -> None:
    # a file is block-buffered: nothing is written until the flush at the end
    out = tmp_path / "out.json"
    with open(out, "w") as f:
        code = subprocess.run(
            [*LABPOWER, "--socket", daemon.socket_path, "--json", "list"],
            stdout=f,
            stdin=subprocess.DEVNULL,
            env=command_env(),
            timeout=RUN_TIMEOUT,
            check=False,
        ).returncode
    assert code == 0
    with Client(daemon.socket_path) as client:
        names = [t.name for t in client.targets()]
    assert [t["name"] for t in json.loads(out.read_text())] == names


def test_a_failure_keeps_its_status_and_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [*LABPOWER, "--socket", str(tmp_path / "none.sock"), "on", "dut1"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=command_env(),
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 1
    assert str(tmp_path / "none.sock") in done.stderr


def test_a_reader_gone_before_the_output_is_written_gives_141(daemon: DaemonProcess) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader has gone before anything was written
    try:
        done = subprocess.run(
            # one JSON document, left in the buffer until the end
            [*LABPOWER, "--socket", daemon.socket_path, "--json", "status", "dut1"],
            stdout=write,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=command_env(),
            timeout=RUN_TIMEOUT,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 141
    assert done.stderr == b""  # no "Exception ignored" from the interpreter

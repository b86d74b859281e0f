"""Run a real labpowerd for tests: ``with serve(config) as lab: lab.target("dut1").on()``.

``config`` is a path to a TOML file, TOML text, or a mapping shaped like the TOML document.
By default the daemon is a child process (the real ``labpowerd``, on a temporary socket),
and ``serve`` returns once it reported READY=1 over a private sd_notify socket: no polling,
no sleeping. ``in_process=True`` runs it on an event loop in a thread instead, which starts
faster and lets a test reach the daemon's objects (``DaemonThread.daemon``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from labpower.client import Client
from labpower.daemon import config as config_mod
from labpower.daemon.daemon import Daemon
from labpower.daemon.logbus import SOURCES

ConfigSource = str | os.PathLike[str] | Mapping[str, Any]
START_TIMEOUT = 20.0


def to_toml(doc: Mapping[str, Any]) -> str:
    """TOML text for a config mapping (tables of tables of scalars and lists)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # a JSON string is a valid TOML basic string
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    lines: list[str] = []

    def table(name: str, t: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in t.items() if not isinstance(v, Mapping)}
        if scalars or not any(isinstance(v, Mapping) for v in t.values()):
            lines.append(f"[{name}]")
            lines.extend(f"{json.dumps(k)} = {value(v)}" for k, v in scalars.items())
        for k, v in t.items():
            if isinstance(v, Mapping):
                table(f"{name}.{json.dumps(k)}", v)

    for key, sub in doc.items():
        table(json.dumps(key), sub)
    return "\n".join(lines) + "\n"


def write_config(source: ConfigSource, directory: str | os.PathLike[str]) -> Path:
    """Put the config in a file in ``directory`` (unless it is a path already)."""
    if isinstance(source, Mapping):
        path = Path(directory, "labpowerd.toml")
        path.write_text(to_toml(source))
        return path
    if isinstance(source, str) and "\n" in source:
        path = Path(directory, "labpowerd.toml")
        path.write_text(source)
        return path
    return Path(source)


class DaemonProcess:
    """A ``labpowerd`` child process on a temporary socket."""

    def __init__(
        self,
        config: ConfigSource,
        *,
        args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        directory: str | None = None,
        launcher: tuple[str, ...] = ("-m",),
    ) -> None:
        """``launcher``: the interpreter arguments before the daemon's module name (default
        ``-m``); e.g. ``labpower.backends.fakes.launcher(bus_file)`` runs it among fake USB
        boards."""
        self._own_dir = directory is None
        self.launcher = launcher
        self.directory = Path(directory or tempfile.mkdtemp(prefix="labpowerd-"))
        self.config_path = write_config(config, self.directory)
        self.socket_path = str(self.directory / "labpower.sock")
        self.stderr_path = self.directory / "stderr.log"
        self.args = args
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start and wait for READY=1. :raises RuntimeError: it exited or never got ready."""
        notify_path = str(self.directory / "notify.sock")
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(notify_path)
            env = {
                **os.environ,
                "STATE_DIRECTORY": str(self.directory / "state"),
                **self.env,
                "NOTIFY_SOCKET": notify_path,
            }
            env.pop("LISTEN_FDS", None)
            with open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen(
                    [
                        sys.executable,
                        *self.launcher,
                        "labpower.daemon",
                        "--config",
                        str(self.config_path),
                        "--socket",
                        self.socket_path,
                        *self.args,
                    ],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                )
            notify.settimeout(0.2)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    msg = notify.recv(4096).decode()
                except TimeoutError:
                    if self.proc.poll() is not None:
                        break
                    continue
                if "READY=1" in msg.split("\n"):
                    return
        code = self.proc.poll()
        self.stop()
        raise RuntimeError(f"labpowerd did not get ready (exit code {code}):\n{self.stderr()}")

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, **kwargs: Any) -> Client:
        return Client(self.socket_path, **kwargs)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, and return the exit code (SIGKILL after ``timeout``)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


class DaemonThread:
    """A daemon on its own event loop in a thread of this process."""

    def __init__(self, config: ConfigSource, *, backend: str = "asyncio") -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="labpowerd-"))
        path = write_config(config, self.directory)
        self.config = config_mod.load(path)
        self.socket_path = str(self.directory / "labpower.sock")
        self.backend = backend
        self.daemon: Daemon | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="labpowerd", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._token = anyio.lowlevel.current_token()
            # what the daemon logs must not depend on this process's root logger level
            for name in SOURCES:
                logging.getLogger(name).setLevel(self.config.daemon.log_level.upper())
            self.daemon = Daemon(
                self.config, self.socket_path, state_directory=str(self.directory / "state")
            )
            async with anyio.create_task_group() as tg:
                await tg.start(
                    lambda task_status: self.daemon.run(  # type: ignore[union-attr]
                        handle_signals=False, task_status=task_status
                    )
                )
                self._ready.set()

        try:
            anyio.run(run, backend=self.backend)
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(START_TIMEOUT)
        if self._error is not None or self.daemon is None:
            raise RuntimeError(f"in-process labpowerd failed to start: {self._error!r}")

    def call_soon(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the daemon's loop and return its result."""
        return anyio.from_thread.run_sync(fn, *args, token=self._token)

    def stop(self) -> None:
        if self.daemon is not None and self._thread.is_alive():
            self.call_soon(self.daemon.stop)
        self._thread.join(START_TIMEOUT)
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def serve(
    config: ConfigSource, *, in_process: bool = False, timeout: float | None = 60.0
) -> Iterator[Client]:
    """Run a daemon on a temporary socket for the length of the block; yield a connected
    :class:`Client`. The daemon is stopped (SIGTERM) and its socket removed afterwards.

    :raises RuntimeError: the daemon did not start (the message has its stderr).
    :raises ConfigError: the config is invalid (in-process mode).
    """
    if in_process:
        thread = DaemonThread(config)
        thread.start()
        try:
            with Client(thread.socket_path, timeout=timeout) as client:
                yield client
        finally:
            thread.stop()
        return
    proc = DaemonProcess(config)
    try:
        proc.start()
        with proc.client(timeout=timeout) as client:
            yield client
    finally:
        proc.cleanup()

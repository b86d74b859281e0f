"""The blocking ssh channel of ``ssh://`` addresses (see :mod:`labpower.client.transport`):
the client speaks varlink over the stdin and stdout of ``ssh ... labpower bridge``."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from typing import IO

from labpower.client.errors import DaemonUnreachable

#: Seconds a closed SSH connection gets to end by itself before it is terminated.
SSH_EXIT_WAIT = 5.0
#: The bytes of ssh's own stderr quoted in an error, at most.
_STDERR_TAIL = 2000


def stderr_file() -> IO[bytes]:
    # A file, not a pipe: nobody has to drain it while the connection lives, and what ssh
    # said is still there when the connection fails.
    return tempfile.TemporaryFile(prefix="labpower-ssh-")


def stderr_text(err: IO[bytes]) -> str:
    try:
        size = err.seek(0, os.SEEK_END)
        err.seek(max(0, size - _STDERR_TAIL))
        return err.read().decode(errors="replace").strip()
    except (OSError, ValueError):
        return ""


def ended(code: int | None, stderr: str) -> str:
    """Why an SSH connection ended, in the words ssh and the bridge left on stderr."""
    said = stderr.splitlines()[-1] if stderr else ""
    if code is None:
        return said or "ssh closed the connection"
    status = f"ssh exited with status {code}" if code >= 0 else f"ssh killed by signal {-code}"
    return f"{status}: {said}" if said else status


class SshChannel:
    """A blocking channel over the stdin and stdout of an ``ssh ... labpower bridge`` process.

    Reads wait with ``select`` (honouring the timeout), so no thread is needed.
    """

    def __init__(self, address: str, command: Sequence[str], timeout: float | None) -> None:
        self.address = address
        self._timeout = timeout
        self._stderr = stderr_file()
        try:
            self.proc = subprocess.Popen(
                list(command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                bufsize=0,
                # its own session: Ctrl-C at the terminal interrupts the caller, which then
                # closes the connection in order, rather than killing ssh under it (and a
                # lease with it). So ssh cannot prompt on the terminal: use keys.
                start_new_session=True,
            )
        except OSError as exc:
            self._stderr.close()
            raise DaemonUnreachable(address, f"cannot run {command[0]}: {exc}") from exc
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def sendall(self, data: bytes) -> None:
        """:raises OSError: ssh is gone."""
        view = memoryview(data)
        while view:
            written = os.write(self._in, view)
            view = view[written:]

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes; b"" when ssh ended cleanly.

        :raises TimeoutError: nothing arrived in time.
        :raises ConnectionError: ssh failed; the message has what it said.
        """
        ready, _, _ = select.select([self._out], [], [], self._timeout)
        if not ready:
            raise TimeoutError("no data in time")
        data = os.read(self._out, size)
        if data:
            return data
        try:
            code: int | None = self.proc.wait(SSH_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            code = None
        stderr = stderr_text(self._stderr)
        if code == 0 and not stderr:
            return b""
        raise ConnectionError(ended(code, stderr))

    def shutdown(self, how: int) -> None:
        # Closing ssh's stdin ends the remote bridge, which closes the daemon connection.
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def close(self) -> None:
        self.shutdown(socket.SHUT_RDWR)
        try:
            self.proc.wait(SSH_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(SSH_EXIT_WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

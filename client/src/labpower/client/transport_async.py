"""The async side of :mod:`labpower.client.transport`: anyio byte streams to a daemon, local
or over an ssh bridge. A module of its own so that the blocking client and the ``labpower``
command never import anyio."""

from __future__ import annotations

import subprocess
from typing import IO

import anyio
from anyio.abc import ByteStream, Process
from labpower.client.errors import DaemonUnreachable
from labpower.client.ssh import SSH_EXIT_WAIT, ended, stderr_file, stderr_text
from labpower.client.transport import Address


async def connect_async(address: str) -> ByteStream:
    """An anyio byte stream to the daemon at ``address`` (see :func:`connect`).

    :raises DaemonUnreachable: as :func:`connect`.
    """
    try:
        parsed = Address.parse(address)
    except ValueError as exc:
        raise DaemonUnreachable(address, str(exc)) from exc
    if not parsed.is_ssh:
        try:
            return await anyio.connect_unix(parsed.path or "")
        except OSError as exc:
            raise DaemonUnreachable(address, exc.strerror or str(exc)) from exc
    command = parsed.ssh_command()
    stderr = stderr_file()
    try:
        proc = await anyio.open_process(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
    except OSError as exc:
        stderr.close()
        raise DaemonUnreachable(address, f"cannot run {command[0]}: {exc}") from exc
    return SshStream(proc, stderr)


class SshStream(ByteStream):
    """An anyio byte stream over the stdin and stdout of an ssh bridge process."""

    def __init__(self, proc: Process, stderr: IO[bytes]) -> None:
        assert proc.stdin is not None
        assert proc.stdout is not None
        self.proc = proc
        self._stdin = proc.stdin
        self._stdout = proc.stdout
        self._stderr = stderr

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """:raises anyio.EndOfStream: ssh ended cleanly.
        :raises ConnectionError: ssh failed; the message has what it said."""
        try:
            return await self._stdout.receive(max_bytes)
        except anyio.EndOfStream:
            code: int | None = None
            with anyio.move_on_after(SSH_EXIT_WAIT):
                code = await self.proc.wait()
            stderr = stderr_text(self._stderr)
            if code == 0 and not stderr:
                raise
            raise ConnectionError(ended(code, stderr)) from None

    async def send(self, item: bytes) -> None:
        await self._stdin.send(item)

    async def send_eof(self) -> None:
        await self._stdin.aclose()

    async def aclose(self) -> None:
        # shielded: closing must finish (and reap ssh) even when the caller was cancelled
        with anyio.CancelScope(shield=True):
            await self._stdin.aclose()
            with anyio.move_on_after(SSH_EXIT_WAIT) as scope:
                await self.proc.wait()
            if scope.cancelled_caught:
                self.proc.terminate()
                with anyio.move_on_after(SSH_EXIT_WAIT) as scope:
                    await self.proc.wait()
                if scope.cancelled_caught:
                    self.proc.kill()
                    await self.proc.wait()
            await self._stdout.aclose()
            if self.proc.stderr is not None:
                await self.proc.stderr.aclose()
            self._stderr.close()

"""How a client reaches a daemon: a local Unix socket, or one on another host over SSH.

An address is either a socket path (``/run/labpower/labpower.sock``) or
``ssh://[user@]host[:port][/path/to/socket]``. For SSH the client runs::

    ssh [-p PORT] [user@]host labpower bridge [--socket PATH]

and speaks varlink over that process's stdin and stdout: OpenSSH does authentication and
encryption, the remote ``labpower bridge`` relays the bytes to the daemon's local socket, and
no new port is opened (docker's ``ssh://`` transport works the same way). The daemon sees the
bridge as its peer, so access control and leases apply to the SSH user on the lab host.

Environment:

- ``$LABPOWER_SSH``: the ssh program (default ``ssh``).
- ``$LABPOWER_SSH_OPTIONS``: extra ssh arguments, split like a shell would
  (``-F ~/.ssh/lab_config -o BatchMode=yes``).
- ``$LABPOWER_REMOTE_COMMAND``: the command that starts the bridge on the lab host (default
  ``labpower``), for hosts where it is not on the PATH.

ssh runs in a session of its own (Ctrl-C at the terminal must not kill the connection, and a
lease with it, under the caller), so it cannot ask for a password or a host key on the
terminal: use keys (an agent) and known host keys.

On the lab host, a key can be restricted to the bridge alone in ``authorized_keys``::

    command="labpower bridge",restrict ssh-ed25519 AAAA...
"""

from __future__ import annotations

import os
import select
import shlex
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Protocol
from urllib.parse import unquote, urlsplit

import anyio
from anyio.abc import ByteStream, Process
from labpower.client.errors import DaemonUnreachable

SSH_ENV = "LABPOWER_SSH"
SSH_OPTIONS_ENV = "LABPOWER_SSH_OPTIONS"
REMOTE_COMMAND_ENV = "LABPOWER_REMOTE_COMMAND"
#: Seconds a closed SSH connection gets to end by itself before it is terminated.
SSH_EXIT_WAIT = 5.0
#: The bytes of ssh's own stderr quoted in an error, at most.
_STDERR_TAIL = 2000


@dataclass(frozen=True, slots=True)
class Address:
    """Where a daemon listens: ``path`` on this host, or (``host`` set) over SSH.

    For SSH, ``path`` is the socket on the lab host (None: the bridge's default there).
    """

    path: str | None
    host: str | None = None
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str | os.PathLike[str]) -> Address:
        """:raises ValueError: not a path nor ``ssh://[user@]host[:port][/path]``."""
        text = os.fspath(text)
        if "://" not in text:
            if not text:
                raise ValueError("empty socket address")
            return cls(text)
        url = urlsplit(text)
        if url.scheme != "ssh":
            raise ValueError(
                f"unsupported socket address {text!r}: use a socket path or "
                "ssh://[user@]host[:port][/path/to/socket]"
            )
        try:
            port = url.port
        except ValueError as exc:
            raise ValueError(f"bad port in socket address {text!r}") from exc
        if not url.hostname or url.password is not None or url.query or url.fragment:
            raise ValueError(
                f"bad socket address {text!r}: the form is ssh://[user@]host[:port][/path/to/socket]"
            )
        path = unquote(url.path) or None
        if path == "/":
            path = None
        return cls(
            path, host=url.hostname, user=unquote(url.username) if url.username else None, port=port
        )

    @property
    def is_ssh(self) -> bool:
        return self.host is not None

    def __str__(self) -> str:
        if self.host is None:
            return self.path or ""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"ssh://{user}{host}{port}{self.path or ''}"

    def ssh_command(self) -> list[str]:
        """The command line that opens a bridge to this address's daemon."""
        if self.host is None:
            raise ValueError(f"{self} is not an ssh:// address")
        cmd = [os.environ.get(SSH_ENV) or "ssh", *shlex.split(os.environ.get(SSH_OPTIONS_ENV, ""))]
        # -T: no terminal, the channel carries binary varlink; the escape character would
        # otherwise be live on a terminal
        cmd += ["-T", "-e", "none"]
        if self.port is not None:
            cmd += ["-p", str(self.port)]
        if self.user:
            cmd += ["-l", self.user]
        # "--": a host name starting with "-" is not an option
        cmd += ["--", self.host]
        # ssh joins the remote words with spaces and hands them to the remote shell: quote them
        remote = [*shlex.split(os.environ.get(REMOTE_COMMAND_ENV) or "labpower"), "bridge"]
        if self.path is not None:
            remote += ["--socket", self.path]
        cmd.append(" ".join(shlex.quote(word) for word in remote))
        return cmd


class Channel(Protocol):
    """The part of a blocking socket that the sync client uses."""

    def settimeout(self, timeout: float | None, /) -> None: ...
    def sendall(self, data: bytes, /) -> None: ...
    def recv(self, size: int, /) -> bytes: ...
    def shutdown(self, how: int, /) -> None: ...
    def close(self) -> None: ...


def connect(address: str, timeout: float | None) -> Channel:
    """A blocking channel to the daemon at ``address`` (see :class:`Address`).

    An SSH channel fails only at its first read when the host or its daemon is unreachable:
    the bridge is a plain byte relay and says nothing of its own.

    :raises DaemonUnreachable: no daemon at the socket path, ssh could not be started, or the
        address is malformed.
    """
    try:
        parsed = Address.parse(address)
    except ValueError as exc:
        raise DaemonUnreachable(address, str(exc)) from exc
    if parsed.is_ssh:
        return SshChannel(address, parsed.ssh_command(), timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(parsed.path or "")
    except OSError as exc:
        sock.close()
        raise DaemonUnreachable(address, exc.strerror or str(exc)) from exc
    return sock


def _stderr_file() -> IO[bytes]:
    # A file, not a pipe: nobody has to drain it while the connection lives, and what ssh
    # said is still there when the connection fails.
    return tempfile.TemporaryFile(prefix="labpower-ssh-")


def _stderr_text(err: IO[bytes]) -> str:
    try:
        size = err.seek(0, os.SEEK_END)
        err.seek(max(0, size - _STDERR_TAIL))
        return err.read().decode(errors="replace").strip()
    except (OSError, ValueError):
        return ""


def _ended(code: int | None, stderr: str) -> str:
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
        self._stderr = _stderr_file()
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
        stderr = _stderr_text(self._stderr)
        if code == 0 and not stderr:
            return b""
        raise ConnectionError(_ended(code, stderr))

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
    stderr = _stderr_file()
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
            stderr = _stderr_text(self._stderr)
            if code == 0 and not stderr:
                raise
            raise ConnectionError(_ended(code, stderr)) from None

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


def relay(stdin: int, stdout: int, sock: socket.socket) -> None:
    """Copy bytes both ways between two file descriptors and a socket until the socket
    closes, or either side breaks (``labpower bridge``, the far end of ``ssh://``
    addresses). The end of stdin is passed on as the end of the socket's sending side."""
    poller = select.poll()
    poller.register(stdin, select.POLLIN)
    poller.register(sock, select.POLLIN)
    # No events asked: poll still reports an error or hang-up, i.e. the reader went away
    poller.register(stdout, 0)
    sock_fd = sock.fileno()
    try:
        while True:
            for fd, _ in poller.poll():
                if fd == stdout:
                    return
                if fd == stdin:
                    data = os.read(stdin, 65536)
                    if not data:
                        # the caller has said all it will: replies still owed to it come
                        # back until the daemon closes (as socat does)
                        poller.unregister(stdin)
                        sock.shutdown(socket.SHUT_WR)
                        continue
                    sock.sendall(data)
                elif fd == sock_fd:
                    data = sock.recv(65536)
                    if not data:
                        return
                    view = memoryview(data)
                    while view:
                        view = view[os.write(stdout, view) :]
    except OSError:
        return  # one side broke off: the relay ends like on a close

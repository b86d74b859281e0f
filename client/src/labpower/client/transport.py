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

# _socket, not socket: socket.py builds its address families and flags as enums, with enum
# itself, at import: a sixth of ``labpower on``'s start (issue #18). A local channel is the
# same C socket object that socket.socket derives from.
import _socket
import os

from labpower.client.errors import DaemonUnreachable
from labpower.client.frozen import Frozen

# typing is not imported at run time (see frozen.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Protocol

# The ssh side (ssh.py: subprocess, tempfile...) and URL parsing are imported when an ssh://
# address is used, so that a local command starts without them.

SSH_ENV = "LABPOWER_SSH"
SSH_OPTIONS_ENV = "LABPOWER_SSH_OPTIONS"
REMOTE_COMMAND_ENV = "LABPOWER_REMOTE_COMMAND"


class Address(Frozen):
    """Where a daemon listens: ``path`` on this host, or (``host`` set) over SSH.

    For SSH, ``path`` is the socket on the lab host (None: the bridge's default there).
    """

    __match_args__ = ("path", "host", "user", "port")
    __slots__ = __match_args__
    path: str | None
    host: str | None
    user: str | None
    port: int | None

    def __init__(
        self,
        path: str | None,
        host: str | None = None,
        user: str | None = None,
        port: int | None = None,
    ) -> None:
        self._fill(path, host, user, port)

    @classmethod
    def parse(cls, text: str | os.PathLike[str]) -> Address:
        """:raises ValueError: not a path nor ``ssh://[user@]host[:port][/path]``."""
        text = os.fspath(text)
        if "://" not in text:
            if not text:
                raise ValueError("empty socket address")
            return cls(text)
        from urllib.parse import unquote, urlsplit

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
        import shlex

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


if TYPE_CHECKING:

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
        from labpower.client.ssh import SshChannel

        return SshChannel(address, parsed.ssh_command(), timeout)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(parsed.path or "")
    except OSError as exc:
        sock.close()
        raise DaemonUnreachable(address, exc.strerror or str(exc)) from exc
    return sock


def kernel_timeout(sock: _socket.socket, timeout: float | None) -> None:
    """Make ``sock`` blocking, with ``timeout`` kept by the kernel (SO_RCVTIMEO and
    SO_SNDTIMEO; None: no timeout) rather than by Python.

    Python keeps a socket's timeout by polling before every send and receive: two system
    calls more per call to the daemon, the poll a sleep and a wake-up of its own. With the
    kernel's timeout a receive that finds nothing in time raises :class:`BlockingIOError`
    (EAGAIN) instead of :class:`TimeoutError`.
    """
    sock.settimeout(None)
    if timeout is None:
        return
    import _struct

    seconds = int(timeout)
    microseconds = max(int((timeout - seconds) * 1e6), 1 if seconds == 0 else 0)
    timeval = _struct.pack("@ll", seconds, microseconds)  # struct timeval
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDTIMEO, timeval)


def relay(stdin: int, stdout: int, sock: socket.socket) -> None:
    """Copy bytes both ways between two file descriptors and a socket until the socket
    closes, or either side breaks (``labpower bridge``, the far end of ``ssh://``
    addresses). The end of stdin is passed on as the end of the socket's sending side."""
    import select

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
                        sock.shutdown(_socket.SHUT_WR)
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

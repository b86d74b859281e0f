"""The HTTP machinery every network device simulator shares: a real HTTP/1.1 server on
loopback (keep-alive, one thread per connection), basic and digest auth as the devices do
them, relay state, and faults.

Faults a test (or a user trying a config) can switch on and off at any time:

- :meth:`HttpSimulator.refuse` / :meth:`HttpSimulator.come_back`: the port is closed
  (connection refused) and open connections are cut; then it listens again on the same port;
- :meth:`HttpSimulator.hang`: requests get no reply at all until :meth:`HttpSimulator.heal`;
- :meth:`HttpSimulator.fail`: every reply is an HTTP error status (500 by default);
- :meth:`HttpSimulator.truncate`: replies are cut in half (invalid JSON, consistent headers);
- :meth:`HttpSimulator.ignore_next_switch`: the next switching command changes nothing.

``latency`` (seconds) makes every reply take that long, as a real device's firmware does
(tens of milliseconds for most PDUs): with it, several simulated devices show whether their
calls overlap.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

from labpower.backends.models import Switch

AuthScheme = Literal["basic", "digest"]
#: the largest request body a simulator reads (devices take small JSON commands)
MAX_BODY = 64 * 1024
_DIGEST_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


@dataclass(frozen=True, slots=True)
class Reply:
    """What the device answers: status, body and content type."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def compact(obj: Any) -> bytes:
    """JSON as the devices' firmware writes it: no spaces."""
    return json.dumps(obj, separators=(",", ":")).encode()


class HttpSimulator:
    """A network device's HTTP API on ``host:port`` (port 0: any free port; see :attr:`port`).
    Subclasses answer in :meth:`route`."""

    kind: ClassVar[str] = ""
    max_channels: ClassVar[int] = 8
    #: the scheme the device uses when a password is set
    auth_scheme: ClassVar[AuthScheme] = "basic"
    #: paths the device answers without authentication
    public_paths: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        channels: int = 1,
        user: str = "admin",
        password: str | None = None,
        latency: float = 0.0,
    ) -> None:
        if not 0 <= latency <= 60:
            raise ValueError(f"latency: 0..60 seconds, not {latency}")
        if not 1 <= channels <= self.max_channels:
            raise ValueError(
                f"{self.kind} devices have 1..{self.max_channels} channels, not {channels}"
            )
        self.host = host
        self.port = port
        self.channels = channels
        self.user = user
        self.password = password
        self.latency = latency
        self.realm = f"{self.kind}-{secrets.token_hex(3)}"
        #: relay states, channel 1 first
        self.relays: dict[int, bool] = dict.fromkeys(range(1, channels + 1), False)
        #: every switching command received, in order (applied or not)
        self.switches: list[Switch] = []
        #: the last requests: (method, path with query); bounded
        self.requests: deque[tuple[str, str]] = deque(maxlen=10_000)
        #: called with a short text for every switching command (the CLI prints them)
        self.on_event: Callable[[str], None] | None = None
        self.error_status: int | None = None
        self.truncated = False
        self._ignore = 0
        self._healed = threading.Event()
        self._healed.set()
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """What a config's ``host`` says to reach the simulator."""
        return f"{self.host}:{self.port}"

    def start(self) -> HttpSimulator:
        """Listen and serve in a thread. :raises OSError: the port is taken."""
        simulator = self

        class Handler(_Handler):
            sim = simulator

        server = _Server((self.host, self.port), Handler)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"{self.kind}-sim",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every connection."""
        server, self._server = self._server, None
        self._healed.set()
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> HttpSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults
    def refuse(self) -> None:
        """Close the port: connections are refused (and open ones cut) until :meth:`come_back`."""
        self.stop()

    def come_back(self) -> None:
        """Listen again on the same port."""
        self.start()

    def hang(self) -> None:
        """Read requests but never answer them (until :meth:`heal`)."""
        self._healed.clear()

    def fail(self, status: int = 500) -> None:
        """Answer every request with this HTTP status (until :meth:`heal`)."""
        self.error_status = status

    def truncate(self) -> None:
        """Cut every reply in half (until :meth:`heal`)."""
        self.truncated = True

    def heal(self) -> None:
        """End :meth:`hang`, :meth:`fail` and :meth:`truncate`."""
        self.error_status = None
        self.truncated = False
        self._healed.set()

    def ignore_next_switch(self, count: int = 1) -> None:
        """The next ``count`` switching commands are answered but change nothing."""
        with self._lock:
            self._ignore += count

    # -- for subclasses
    def apply(self, channel: int, on: bool) -> None:
        """A switching command for relay ``channel`` (1-based): recorded, and applied unless
        the device is told to ignore it."""
        with self._lock:
            self.switches.append(Switch(channel, on))
            if self._ignore:
                self._ignore -= 1
                ignored = " (ignored)"
            else:
                self.relays[channel] = on
                ignored = ""
        if self.on_event is not None:
            self.on_event(f"channel {channel} {'on' if on else 'off'}{ignored}")

    def route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:
        """The device's answer to one request (auth already checked)."""
        raise NotImplementedError

    def not_found(self) -> Reply:
        return Reply(b"Not Found", 404, "text/plain")

    # -- auth
    def challenge(self) -> str:
        if self.auth_scheme == "basic":
            return f'Basic realm="{self.realm}"'
        nonce = secrets.token_hex(8)
        return f'Digest qop="auth", realm="{self.realm}", nonce="{nonce}", algorithm=SHA-256'

    def authorized(self, method: str, header: str | None) -> bool:
        if self.password is None:
            return True
        if header is None:
            return False
        scheme, _, value = header.partition(" ")
        if self.auth_scheme == "basic" and scheme.lower() == "basic":
            import base64

            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return False
            return secrets.compare_digest(f"{user}:{password}", f"{self.user}:{self.password}")
        if self.auth_scheme == "digest" and scheme.lower() == "digest":
            p = {m[1]: m[2] or m[3] for m in _DIGEST_PARAM.finditer(value)}
            algorithm = p.get("algorithm", "MD5").upper()
            hash_name = {"SHA-256": "sha256", "MD5": "md5"}.get(algorithm)
            if hash_name is None or p.get("username") != self.user or p.get("realm") != self.realm:
                return False

            def h(text: str) -> str:
                return hashlib.new(hash_name, text.encode()).hexdigest()

            ha1 = h(f"{self.user}:{self.realm}:{self.password}")
            ha2 = h(f"{method}:{p.get('uri', '')}")
            expected = h(f"{ha1}:{p.get('nonce')}:{p.get('nc')}:{p.get('cnonce')}:auth:{ha2}")
            return secrets.compare_digest(expected, p.get("response", ""))
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up mid-request (a deadline passed) is normal for a device;
        # anything else is a simulator bug and is reported as such
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    sim: ClassVar[HttpSimulator]
    protocol_version = "HTTP/1.1"  # keep-alive, as the devices' web servers do
    server_version = "labpower-sim"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body for the client's delayed ACK (40 ms), which no device's web server does
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.sim._lock:
            self.sim._connections.add(self.connection)

    def finish(self) -> None:
        with self.sim._lock:
            self.sim._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the CLI prints switching commands; access lines would drown them

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        sim = self.sim
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY:
            self._send(Reply(b"Request Entity Too Large", 413, "text/plain"))
            return
        body = self.rfile.read(length) if length else b""
        sim.requests.append((method, self.path))
        sim._healed.wait()
        if sim.latency:
            time.sleep(sim.latency)
        if sim._server is None:  # stopped while hanging: the connection is cut
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        if parts.path not in sim.public_paths and not sim.authorized(
            method, self.headers.get("Authorization")
        ):
            self._send(
                Reply(b"401 Unauthorized", 401, "text/plain", {"WWW-Authenticate": sim.challenge()})
            )
            return
        if sim.error_status is not None:
            status = HTTPStatus(sim.error_status)
            self._send(Reply(status.phrase.encode(), status.value, "text/plain"))
            return
        try:
            reply = sim.route(method, parts.path, dict(parse_qsl(parts.query)), body)
        except (ValueError, KeyError):
            reply = Reply(b"Bad Request", 400, "text/plain")
        if sim.truncated:
            reply = Reply(reply.body[: len(reply.body) // 2], reply.status, reply.content_type)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)


def mac(sim: HttpSimulator) -> str:
    """A stable made-up MAC address for a simulator (locally administered)."""
    digest = hashlib.sha256(f"{sim.kind}{os.getpid()}{sim.realm}".encode()).hexdigest()
    return "02" + digest[:10].upper()

"""Just enough HTTP/1.1 for a read-only page and a metrics endpoint: GET and HEAD, one
request per connection, bounded heads, answers built in one piece (or a Server-Sent Events
stream). The parsing is sans I/O; :func:`read_request` reads a head from a byte stream.

Why not a framework: the service needs four routes and nothing of what a framework brings
(sessions, forms, templates), and the project keeps its dependencies to what a task names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import anyio
from anyio.abc import ByteStream

#: the most bytes of a request head read; a longer one is refused (431)
MAX_HEAD = 8192

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    421: "Misdirected Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}

#: sent with every answer: the page loads only its own files, is never framed, and the
#: browser takes each answer as the type it says (no sniffing a JSON answer into HTML)
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)


class BadRequest(Exception):
    """The client sent something that is not an HTTP request we take; ``status`` says how
    to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def head_only(self) -> bool:
        return self.method == "HEAD"


def parse_head(data: bytes) -> Request:
    """A request head (up to and without its blank line). :raises BadRequest:"""
    try:
        text = data.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(400, "undecodable head") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "not an HTTP/1.x request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "malformed header line")
        headers[name.lower()] = value.strip()
    if method not in ("GET", "HEAD"):
        raise BadRequest(405, f"method {method[:20]!r} not allowed (read-only service)")
    if not target.startswith("/"):
        raise BadRequest(400, "the request target must be a path")
    split = urlsplit(target)
    return Request(method, split.path, parse_qs(split.query), headers)


def host_allowed(header: str | None, allowed: Collection[str]) -> bool:
    """Whether a request's ``Host`` names this service: an IP address, ``localhost``, or a
    name in ``allowed`` (lower case). Any other name is what a DNS rebinding attack sends: a
    page on another site whose name the attacker points at 127.0.0.1, to read ours."""
    if not header:
        return True  # HTTP/1.0 without Host: no browser sends that
    host = header.strip().lower()
    if host.startswith("[") and "]" in host:  # [v6]:port
        host = host[1 : host.index("]")]
    elif host.count(":") == 1:  # name:port, v4:port
        host = host.partition(":")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.rstrip(".") in allowed
    return True


async def read_request(stream: ByteStream) -> Request:
    """Read one request head. :raises BadRequest: :raises anyio.EndOfStream:"""
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            end = data.find(b"\n\n")
        if end >= 0:
            return parse_head(data[:end])
        if len(data) >= MAX_HEAD:
            raise BadRequest(431, "request head too long")
        data += await stream.receive(MAX_HEAD - len(data))


def response_head(
    status: int, content_type: str | None, length: int | None, extra: tuple[tuple[str, str], ...]
) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    lines.extend(f"{name}: {value}" for name, value in (*SECURITY_HEADERS, *extra))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True, slots=True)
class Response:
    """An answer sent in one piece."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, head_only: bool = False) -> bytes:
        head = response_head(self.status, self.content_type, len(self.body), self.headers)
        return head if head_only else head + self.body


def error(status: int, text: str) -> Response:
    return Response(status, f"{status} {_REASONS.get(status, 'Error')}: {text}\n".encode())


def sse_event(event: str, data: str) -> bytes:
    """One Server-Sent Event (``data`` is JSON, so it has no newline to split)."""
    return f"event: {event}\ndata: {data}\n\n".encode()


SSE_HEAD = response_head(
    200, "text/event-stream; charset=utf-8", None, (("X-Accel-Buffering", "no"),)
)
#: a comment line that keeps idle proxies from closing the stream
SSE_KEEPALIVE = b": keepalive\n\n"


async def send_all(stream: ByteStream, data: bytes) -> None:
    """Send, treating a client that went away as the end of the conversation."""
    try:
        await stream.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        raise anyio.EndOfStream from exc

"""pdudaemon's two wire protocols, sans I/O: what a request says, and the bytes answered.

Both arrive on one port. TCP: one message ``<pdu> <port> <on|off|reboot>[ <delay>]`` with no
newline needed, taken from the first read as pdudaemon does, answered ``ack\\n`` or
``nack\\n`` (or, for a message it cannot parse, the parse error's text, as pdudaemon does).
HTTP: ``GET /power/control/<on|off|reboot>?hostname=&port=[&delay=]`` or ``?alias=``,
answered 200 ``OK - accepted request`` or 500 ``Invalid request``. labpower adds
``GET /power/status?...`` (the state), and for labgrid's NetworkPowerDriver ``rest`` model
(``PUT`` ``1`` / ``0``, ``GET`` answers ``1`` / ``0``) ``/power/rest/<pdu>/<port>`` (its
index is a number) and ``/targets/<target or alias>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

Command = Literal["on", "off", "reboot", "status", "get", "put"]
COMMANDS = ("on", "off", "reboot")
#: pdudaemon's delays: before on/off, between off and on for reboot (whole seconds)
DEFAULT_DELAY = {"on": 0, "off": 0, "reboot": 5}
#: the longest delay taken; pdudaemon has no bound (a request could hold a port for days)
MAX_DELAY = 3600
#: pdudaemon reads at most this much of a TCP message; an HTTP head is refused beyond it
MAX_REQUEST = 16384
#: a REST body is "0" or "1": anything longer is refused unread
MAX_BODY = 64

_HTTP_START = re.compile(rb"[A-Z]{3,7} (/|\*|https?://)")
_ROUTES = ("/power/control/on", "/power/control/off", "/power/control/reboot")
_REST = "/targets/"
_REST_PDU = "/power/rest/"

OK = b"OK - accepted request\n"
INVALID = b"Invalid request\n"
ACK = b"ack\n"
NACK = b"nack\n"


@dataclass(frozen=True, slots=True)
class Request:
    """One thing a client asked for. ``port`` is pdudaemon's as sent (compared as a number
    later); ``target`` is a target name or alias (``/targets/<name>``)."""

    command: Command
    hostname: str | None = None
    port: str | None = None
    alias: str | None = None
    delay: int = 0
    target: str | None = None
    #: for ``put``: switch on (True) or off
    value: bool = False


@dataclass(frozen=True, slots=True)
class Refused:
    """A request refused before anything was looked up: the reply and why (for the log)."""

    reply: bytes
    reason: str


def looks_like_http(first: bytes) -> bool:
    """Whether the first bytes of a connection start an HTTP request (else: pdudaemon TCP)."""
    return _HTTP_START.match(first) is not None


def parse_tcp(data: bytes) -> Request | Refused:
    """A pdudaemon TCP message, parsed as pdudaemon parses it (the port and delay with
    Python's ``int``, so ``08`` is 8; a parse error's text is the reply)."""
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        return Refused(str(exc).encode(), "not UTF-8")
    words = text.split(" ")
    if not 3 <= len(words) <= 4:
        return Refused(b"Unexpected data", f"{len(words)} words, not 3 or 4")
    try:
        delay = int(words[3]) if len(words) == 4 else None
        port = int(words[1])
    except ValueError as exc:
        return Refused(str(exc).encode(), str(exc))
    command = words[2]
    if not words[0] or not port or command not in COMMANDS:
        return Refused(NACK, "hostname, port or command missing or unknown")
    return Request(
        command,  # type: ignore[arg-type]  # checked against COMMANDS just above
        hostname=words[0],
        port=str(port),
        delay=_delay(command, delay),
    )


def _delay(command: str, delay: int | None) -> int:
    if delay is None:
        return DEFAULT_DELAY.get(command, 0)
    # pdudaemon sleeps a negative delay as none at all
    return max(delay, 0)


@dataclass(frozen=True, slots=True)
class HttpHead:
    method: str
    target: str
    headers: Message

    @property
    def content_length(self) -> int:
        """:raises ValueError: not a number."""
        return int(self.headers.get("Content-Length", "0"))


def parse_head(head: bytes) -> HttpHead | None:
    """The request line and headers (up to the blank line), or None when malformed."""
    line, _, rest = head.partition(b"\n")
    parts = line.rstrip(b"\r").split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return None
    try:
        method, target = parts[0].decode("ascii"), parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None
    return HttpHead(method, target, BytesHeaderParser().parsebytes(rest))


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    reason: str = ""

    def encode(self, head_only: bool = False) -> bytes:
        phrase = _PHRASES.get(self.status, "Error")
        lines = [
            f"HTTP/1.1 {self.status} {phrase}",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(self.body)}",
            "Connection: close",
            "",
            "",
        ]
        return "\r\n".join(lines).encode() + (b"" if head_only else self.body)


_PHRASES = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}
NOT_FOUND = HttpReply(404, b"404: Not Found", "no such path")
NOT_ALLOWED = HttpReply(405, b"405: Method Not Allowed", "method not allowed")
BAD_REQUEST = HttpReply(400, b"400: Bad Request", "malformed HTTP request")


def parse_http(head: HttpHead, body: bytes) -> Request | HttpReply:
    """What an HTTP request asks for, or the reply refusing it."""
    url = urlsplit(head.target)
    path = unquote(url.path)
    reading = head.method in ("GET", "HEAD")
    rest: Request | None = None
    if path.startswith(_REST) and len(path) > len(_REST):
        rest = Request("get", target=path[len(_REST) :])
    elif path.startswith(_REST_PDU):
        pdu, _, number = path[len(_REST_PDU) :].rpartition("/")
        if pdu and number:
            rest = Request("get", hostname=pdu, port=number)
    if rest is not None:
        if reading:
            return rest
        if head.method != "PUT":
            return NOT_ALLOWED
        value = body.strip()
        if value not in (b"0", b"1"):
            return HttpReply(500, INVALID, "PUT body must be 0 or 1")
        return replace(rest, command="put", value=value == b"1")
    if path not in (*_ROUTES, "/power/status"):
        return NOT_FOUND
    if not reading:
        return NOT_ALLOWED
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    command = path.rsplit("/", 1)[1]
    alias, hostname, port = query.get("alias"), query.get("hostname"), query.get("port")
    raw_delay = query.get("delay")
    if alias and (hostname or port):
        return HttpReply(500, INVALID, "alias given with hostname or port")
    if not alias and not (hostname and port):
        return HttpReply(500, INVALID, "hostname and port (or alias) missing")
    delay: int | None = None
    if raw_delay is not None:
        try:
            delay = int(raw_delay)
        except ValueError:
            return HttpReply(500, INVALID, f"delay {raw_delay!r} is not a whole number")
    return Request(
        command,  # type: ignore[arg-type]  # one of _ROUTES' last parts, or "status"
        hostname=hostname,
        port=port,
        alias=alias,
        delay=_delay(command, delay),
    )

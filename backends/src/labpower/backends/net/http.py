"""HTTP devices (smart plugs, HTTP PDUs) over httpx: one transport per device with its
connection kept alive between calls, errors mapped to the backend contract, replies bounded
and checked.

Calls to one device never overlap (the device's lock), so a device that allows one
management session at a time gets one. A call goes to httpx's transport
(:class:`httpx.AsyncHTTPTransport`: httpcore's pool of one HTTP/1.1 connection, h11) with a
request built once and kept (:meth:`HttpBackend.request`): httpx's client would build the
URL, merge headers, cookies and auth and run its redirect and event-hook machinery per call,
about 0.3 ms of CPU per request on this project's benchmark machine, for nothing a device
needs. Basic and digest auth are httpx's own auth flows, driven here as httpx's client
drives them (:meth:`HttpBackend.exchange`); a digest challenge is kept by its auth object and
answered without a new round trip on the next call. What a transport costs is paid once, at
open: every transport shares one SSL context (:func:`_ssl_context`) that loads no
certificates, instead of loading the system's per device (about 45 ms and 0.9 MB each) for
devices reached over plain HTTP. Proxy variables from the environment are never read: a PDU
on the lab network is reached directly.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode

import httpx
from labpower.backends.errors import DeviceUnavailableError, HardwareTimeout, OperationError
from labpower.backends.net.base import NetOptions, NetworkBackend
from labpower.backends.secret import Secret

#: the largest reply body read from a device (a status of many outlets is a few KiB)
MAX_REPLY = 256 * 1024
#: the most requests a device keeps built (a PDU of 48 outlets asks about 100 kinds)
MAX_KEPT = 256
_JSON = {"Content-Type": "application/json"}
Auth = Literal["basic", "digest"]


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The one SSL context of every device's client (httpx would build one per client, with
    the system's certificates loaded).

    Every device is reached over plain ``http://`` (:meth:`HttpBackend.fetch`), so no
    certificate is ever checked with it and none is loaded: the context still demands a
    verified certificate and the host name, so TLS, were it ever used, would fail closed.
    """
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


@dataclass(frozen=True, slots=True)
class HttpOptions(NetOptions):
    """``user`` and ``password`` (``password_file``, ``password_credential``) where the device
    asks for them; ``auth`` picks the scheme where a device offers both."""

    user: str | None = None
    password: Secret | None = None
    auth: Auth | None = None

    def __post_init__(self) -> None:
        NetOptions.__post_init__(self)
        if self.user is not None and self.password is None:
            raise ValueError("password: required when user is given (or password_file, ...)")


def snippet(data: bytes, limit: int = 80) -> str:
    """A short, escaped piece of what a device sent, safe to log."""
    return repr(data[:limit]) + ("..." if len(data) > limit else "")


class HttpBackend(NetworkBackend):
    """A device that answers JSON over HTTP. Subclasses call :meth:`call`."""

    default_port = 80
    Options = HttpOptions
    #: the device's own user name, when the config gives a password but no user
    default_user: ClassVar[str] = "admin"
    #: the scheme the device uses, when the config does not say
    default_auth: ClassVar[Auth] = "basic"

    def __init__(self, name: str, channels: int, options: Any, timeout: float = 5.0) -> None:
        super().__init__(name, channels, options, timeout)
        self._transport: httpx.AsyncHTTPTransport | None = None
        #: the auth of every request (kept: a digest auth keeps its challenge)
        self._auth: httpx.Auth | None = None
        self._base = f"http://{self.address}"
        self._timeout = httpx.Timeout(timeout).as_dict()
        #: requests built so far: (method, URL, body) -> request
        self._requests: dict[tuple[str, str, bytes | None], httpx.Request] = {}

    def auth(self) -> httpx.Auth | None:
        """How requests authenticate, from the options (None: they don't)."""
        opts: HttpOptions = self.options
        if opts.password is None:
            return None
        user = opts.user or self.default_user
        if (opts.auth or self.auth_scheme()) == "digest":
            return httpx.DigestAuth(user, opts.password.reveal())
        return httpx.BasicAuth(user, opts.password.reveal())

    def auth_scheme(self) -> Auth:
        """The scheme the device uses when the config does not say."""
        return self.default_auth

    async def open(self) -> None:
        self._auth = self.auth()
        self._requests.clear()
        self._transport = httpx.AsyncHTTPTransport(
            verify=_ssl_context(),
            trust_env=False,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        try:
            await self.hello()
        except BaseException:
            await self.close()
            raise

    async def hello(self) -> None:
        """Check that the device is the kind the config says and answers (at open)."""

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    async def call(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        body: Any = None,
    ) -> Any:
        """GET ``path`` (POST ``body`` as JSON when given) and return the JSON reply.

        :raises DeviceUnavailableError: not reachable, or authentication failed.
        :raises HardwareTimeout: no reply within the deadline.
        :raises OperationError: an HTTP error status, a reply cut off, too long or not JSON.
        """
        data = await self.fetch(path, params, body=body)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise OperationError(
                f"{self.address}{path} answered with something that is not JSON "
                f"(cut off?): {snippet(data)}"
            ) from exc

    def request(self, method: str, url: str, body: bytes | None) -> httpx.Request:
        """The request for ``method`` ``url`` (with a JSON ``body``), built on first use and
        kept: a device is asked the same few requests again and again, and building one
        (parsing its URL, its headers) costs about as much as sending it."""
        key = (method, url, body)
        request = self._requests.get(key)
        if request is None:
            if len(self._requests) >= MAX_KEPT:
                self._requests.clear()
            request = self._requests[key] = httpx.Request(
                method,
                url,
                content=body,
                headers=None if body is None else _JSON,
                extensions={"timeout": self._timeout},
            )
        return request

    async def exchange(self, request: httpx.Request) -> tuple[httpx.Response, bytes]:
        """Send ``request`` through the auth flow (a digest challenge answered, as httpx's
        client does); the last response and its body. Raises httpx's errors."""
        if self._auth is None:
            return await self._send(request)
        flow = self._auth.async_auth_flow(request)
        request = await flow.__anext__()
        while True:
            response, data = await self._send(request)
            try:
                request = await flow.asend(response)
            except StopAsyncIteration:
                return response, data

    async def _send(self, request: httpx.Request) -> tuple[httpx.Response, bytes]:
        transport = self._transport
        if transport is None:
            raise DeviceUnavailableError(f"{self.address} is not open")
        response = await transport.handle_async_request(request)
        response.request = request  # an auth flow reads the cookies, which need it
        data = bytearray()
        try:
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)  # an async transport's
            async for chunk in stream:
                data += chunk
                if len(data) > MAX_REPLY:
                    raise OperationError(
                        f"{self.address}{request.url.raw_path.decode('ascii', 'replace')}: "
                        f"reply longer than {MAX_REPLY} bytes"
                    )
        finally:
            await response.aclose()
        return response, bytes(data)

    async def fetch(
        self, path: str, params: Mapping[str, str] | None = None, *, body: Any = None
    ) -> bytes:
        """The raw reply to GET (or POST of JSON ``body``) ``path``. Raises as :meth:`call`."""
        method = "GET" if body is None else "POST"
        url = self._base + path + ("?" + urlencode(params, quote_via=quote) if params else "")
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        try:
            response, data = await self.exchange(self.request(method, url, content))
        except httpx.TimeoutException as exc:
            raise HardwareTimeout(self.timeout, f"HTTP request to {self.address}") from exc
        except httpx.RemoteProtocolError as exc:
            raise OperationError(
                f"{self.address}{path}: the reply was cut off or malformed ({exc})"
            ) from exc
        except httpx.ProtocolError as exc:  # httpx's digest auth: a challenge it cannot answer
            raise DeviceUnavailableError(f"cannot log in to {self.address}: {exc}") from exc
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        status = response.status_code
        if status in (401, 403):
            raise DeviceUnavailableError(
                f"authentication failed at {self.address} (HTTP {status}): check user and "
                "password in the config"
            )
        if not 200 <= status < 300:
            raise OperationError(f"{self.address}{path}: HTTP {status}: {snippet(data)}")
        return data


def field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``obj[key]`` if ``obj`` is a JSON object and the value has the expected type.

    :raises OperationError: naming what the device sent instead.
    """
    if not isinstance(obj, dict):
        raise OperationError(f"{where}: expected a JSON object, got {snippet(repr(obj).encode())}")
    value = obj.get(key)
    if not isinstance(value, kind) or (
        isinstance(value, bool) and kind in (int, float, (int, float))
    ):
        raise OperationError(f"{where}: {key!r} missing or of the wrong type: {value!r:.80}")
    return value

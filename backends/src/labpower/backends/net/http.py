"""HTTP devices (smart plugs, HTTP PDUs) over httpx: one client per device with its
connection kept alive between calls, errors mapped to the backend contract, replies bounded
and checked.

Calls to one device never overlap (the device's lock), so a device that allows one
management session at a time gets one. What a client costs is paid once, at open: every
client shares one SSL context (:func:`_ssl_context`) that loads no certificates, instead of
loading the system's per device (about 45 ms and 0.9 MB each) for devices reached over plain
HTTP. Basic and digest auth are httpx's; a digest challenge is kept by its auth object and
answered without a new round trip on the next call. Proxy variables from the environment are
ignored: a PDU on the lab network is reached directly.
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
        self._client: httpx.AsyncClient | None = None
        #: the auth of every request (kept: a digest auth keeps its challenge)
        self._auth: httpx.Auth | None = None
        self._base = f"http://{self.address}"

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
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            verify=_ssl_context(),
            trust_env=False,
            follow_redirects=False,
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
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

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

    async def fetch(
        self, path: str, params: Mapping[str, str] | None = None, *, body: Any = None
    ) -> bytes:
        """The raw reply to GET (or POST of JSON ``body``) ``path``. Raises as :meth:`call`."""
        client = self._client
        if client is None:
            raise DeviceUnavailableError(f"{self.address} is not open")
        method = "GET" if body is None else "POST"
        # the whole URL as a string: httpx's merging of a base URL and params costs a tenth
        # of a millisecond more per request
        url = self._base + path + ("?" + urlencode(params, quote_via=quote) if params else "")
        data = bytearray()
        try:
            async with client.stream(method, url, json=body, auth=self._auth) as response:
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_REPLY:
                        raise OperationError(
                            f"{self.address}{path}: reply longer than {MAX_REPLY} bytes"
                        )
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
            raise OperationError(f"{self.address}{path}: HTTP {status}: {snippet(bytes(data))}")
        return bytes(data)


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

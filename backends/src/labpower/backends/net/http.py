"""HTTP devices (smart plugs, HTTP PDUs): one connection per device, kept alive between
calls (:mod:`labpower.backends.net.http_conn`), errors mapped to the backend contract,
replies bounded and checked.

Calls to one device never overlap (the device's lock), so a device that allows one
management session at a time gets one. Requests are built here from the path and the
query (a device's API is a handful of fixed URLs). httpx, which this began on, cost about
0.7 ms per request above the device's own reply time, and each of its clients an SSL
context with the system's certificates (about 45 ms and 0.9 MB a device) that plain HTTP
to a PDU never uses; h11 on an anyio stream costs a tenth of a millisecond or so. Proxy
variables from the environment are ignored: a PDU on the lab network is reached directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode

import anyio
import h11
from labpower.backends.errors import DeviceUnavailableError, HardwareTimeout, OperationError
from labpower.backends.net.base import NetOptions, NetworkBackend
from labpower.backends.net.http_auth import AuthError, Credentials
from labpower.backends.net.http_conn import Closed, HttpConnection, ReplyTooLong
from labpower.backends.secret import Secret

Auth = Literal["basic", "digest"]


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
        self._connection: HttpConnection | None = None
        self._credentials: Credentials | None = None
        self._host = str(self.address).encode()

    def auth(self) -> Credentials | None:
        """How requests authenticate, from the options (None: they don't)."""
        opts: HttpOptions = self.options
        if opts.password is None:
            return None
        user = opts.user or self.default_user
        return Credentials(opts.auth or self.auth_scheme(), user, opts.password.reveal())

    def auth_scheme(self) -> Auth:
        """The scheme the device uses when the config does not say."""
        return self.default_auth

    async def open(self) -> None:
        self._credentials = self.auth()
        self._connection = HttpConnection(self.address.host, self.address.port)
        try:
            await self.hello()
        except BaseException:
            await self.close()
            raise

    async def hello(self) -> None:
        """Check that the device is the kind the config says and answers (at open)."""

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

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
        target = f"{path}?{urlencode(params, quote_via=quote)}" if params else path
        method = "GET" if body is None else "POST"
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        status, headers, data = await self._request(method, target, content)
        credentials = self._credentials
        if status == 401 and credentials is not None:
            try:
                again = credentials.challenged(headers.get("www-authenticate"))
            except AuthError as exc:
                raise DeviceUnavailableError(f"cannot log in to {self.address}: {exc}") from exc
            if again:  # the first digest challenge, or a stale nonce: once more
                status, headers, data = await self._request(method, target, content)
        if status in (401, 403):
            raise DeviceUnavailableError(
                f"authentication failed at {self.address} (HTTP {status}): check user and "
                "password in the config"
            )
        if not 200 <= status < 300:
            raise OperationError(f"{self.address}{path}: HTTP {status}: {snippet(data)}")
        return data

    async def _request(
        self, method: str, target: str, content: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        """One exchange: status, headers (lower-case names; the last of repeats) and body."""
        connection = self._connection
        if connection is None:
            raise DeviceUnavailableError(f"{self.address} is not open")
        headers = [(b"Host", self._host), (b"Accept", b"application/json")]
        if content is not None:
            headers += [
                (b"Content-Type", b"application/json"),
                (b"Content-Length", str(len(content)).encode()),
            ]
        if self._credentials is not None:
            authorization = self._credentials.header(method, target)
            if authorization is not None:
                headers.append((b"Authorization", authorization))
        path = target.partition("?")[0]
        try:
            with anyio.fail_after(self.timeout):
                return await connection.request(method, target, headers, content)
        except TimeoutError as exc:
            await connection.close()
            raise HardwareTimeout(self.timeout, f"HTTP request to {self.address}") from exc
        except ReplyTooLong as exc:
            raise OperationError(f"{self.address}{path}: {exc}") from exc
        except (h11.RemoteProtocolError, Closed) as exc:
            raise OperationError(
                f"{self.address}{path}: the reply was cut off or malformed ({exc})"
            ) from exc
        except OSError as exc:
            raise self.unreachable(exc) from exc


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

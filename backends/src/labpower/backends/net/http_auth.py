"""HTTP basic and digest authentication (RFC 7617, RFC 7616) as the devices ask for it: the
``Authorization`` header of a request, and what a ``401``'s ``WWW-Authenticate`` asks.

Digest: the challenge is kept and reused, counting ``nc`` up, so a device is challenged
once and not on every call (a second round trip per request would double the latency).
MD5 and SHA-256, ``qop=auth`` or none (RFC 2069); a challenge asking for anything else is
refused with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Literal

Scheme = Literal["basic", "digest"]
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
#: the longest challenge header read
MAX_CHALLENGE = 2048
_HASHES = {"MD5": "md5", "SHA-256": "sha256"}


class AuthError(ValueError):
    """A challenge this client cannot answer (scheme, algorithm, qop): the message says which."""


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Credentials:
    """A user and password, and the scheme the device uses."""

    def __init__(self, scheme: Scheme, user: str, password: str) -> None:
        self.scheme = scheme
        self.user = user
        self._password = password
        self._basic = b"Basic " + base64.b64encode(f"{user}:{password}".encode())
        self._challenge: dict[str, str] | None = None
        self._count = 0

    def header(self, method: str, target: str) -> bytes | None:
        """The ``Authorization`` value for a request, or None before a digest challenge."""
        if self.scheme == "basic":
            return self._basic
        challenge = self._challenge
        if challenge is None:
            return None
        hash_name = _HASHES[challenge.get("algorithm", "MD5").upper()]

        def h(text: str) -> str:
            return hashlib.new(hash_name, text.encode()).hexdigest()

        realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
        ha1 = h(f"{self.user}:{realm}:{self._password}")
        ha2 = h(f"{method}:{target}")
        fields = {
            "username": _quote(self.user),
            "realm": _quote(realm),
            "nonce": _quote(nonce),
            "uri": _quote(target),
        }
        if "qop" in challenge:
            self._count += 1
            nc, cnonce = f"{self._count:08x}", secrets.token_hex(8)
            response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields.update(qop="auth", nc=nc, cnonce=_quote(cnonce))
        else:
            response = h(f"{ha1}:{nonce}:{ha2}")
        fields["response"] = _quote(response)
        if "algorithm" in challenge:
            fields["algorithm"] = challenge["algorithm"]
        if "opaque" in challenge:
            fields["opaque"] = _quote(challenge["opaque"])
        return ("Digest " + ", ".join(f"{k}={v}" for k, v in fields.items())).encode()

    def challenged(self, header: str | None) -> bool:
        """Take a 401's ``WWW-Authenticate``; whether a retry with new credentials may pass
        (a new digest challenge: a stale nonce, or the first one).

        :raises AuthError: the device asks for something this client cannot do.
        """
        if self.scheme == "basic" or header is None:
            return False
        header = header[:MAX_CHALLENGE]
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() != "digest":
            raise AuthError(f"the device asks for {scheme[:20]!r} authentication, not digest")
        params = {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _PARAM.finditer(rest)}
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in _HASHES:
            raise AuthError(f"digest algorithm {algorithm[:20]!r} is not supported (MD5, SHA-256)")
        if "qop" in params and "auth" not in [q.strip() for q in params["qop"].split(",")]:
            raise AuthError(f"digest qop {params['qop'][:20]!r} is not supported (auth)")
        if "qop" in params:
            params["qop"] = "auth"
        fresh = self._challenge is None or params.get("nonce") != self._challenge.get("nonce")
        self._challenge = params
        self._count = 0
        return fresh

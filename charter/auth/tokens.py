"""Signed access tokens: who the bearer is, checked without a database read.

A token is ``<payload>.<signature>``, both base64url without padding: the payload is a
MessagePack array (``Claims``), the signature HMAC-SHA256 of the payload's text under a key
derived from the app's secret (``secret.py``). Verifying costs one HMAC and one small decode;
whether the token's session is still alive (logout, password change) is the one database read
the caller makes afterwards (``sessions.py``), so a revocation holds on every worker at once.

The payload is signed, not encrypted: it holds the user's id, role name and session id, never
a secret. Kinds: ``"a"`` an access token (``Authorization: Bearer``), ``"c"`` a browser's
session cookie (``cookies.py``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time

import msgspec

from ..errors import Unauthorized

__all__ = ["ACCESS", "COOKIE", "Claims", "InvalidToken", "TokenSigner"]

ACCESS = "a"
COOKIE = "c"
_VERSION = 1
_MAX_TOKEN = 2048  # longer is not one of ours: refused before any work
_REMEMBERED = 10_000  # verified tokens kept per signer


class Claims(msgspec.Struct, array_like=True, frozen=True):
    """What a token says (MessagePack array, in this order)."""

    version: int
    kind: str
    user_id: str
    role: str
    family: str
    issued: int
    expires: int


class InvalidToken(Unauthorized):
    """401: the token is not one this app signed, or no longer valid; the message says which
    (it never says more than the client already holds)."""


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Claims).decode


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


class TokenSigner:
    """Issues and verifies tokens under one key (see ``secret.derive``)."""

    __slots__ = ("_key", "_verified")

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a token key is at least 32 bytes")
        self._key = key
        # Tokens whose signature was checked: a client sends the same token for minutes, so
        # its next requests skip the HMAC and the decode (the expiry is checked every time).
        self._verified: dict[str, Claims] = {}

    def _sign(self, payload: bytes) -> bytes:
        return _b64(hmac.digest(self._key, payload, "sha256"))

    def issue(
        self,
        kind: str,
        *,
        user_id: str,
        role: str,
        family: str,
        ttl: float,
        now: float | None = None,
    ) -> str:
        """A token of ``kind`` valid for ``ttl`` seconds from ``now``."""
        issued = int(time.time() if now is None else now)
        claims = Claims(_VERSION, kind, user_id, role, family, issued, issued + max(1, int(ttl)))
        payload = _b64(_encode(claims))
        return (payload + b"." + self._sign(payload)).decode("ascii")

    def verify(self, token: str, kind: str, now: float | None = None) -> Claims:
        """The claims of a valid, unexpired token of ``kind``; ``InvalidToken`` otherwise."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check(token)
            if len(self._verified) >= _REMEMBERED:
                self._verified.clear()
            self._verified[token] = claims
        if claims.kind != kind:
            raise InvalidToken("the token is not of this kind")
        if claims.expires <= (time.time() if now is None else now):
            raise InvalidToken("the token has expired")
        return claims

    def remembered(self, token: str, kind: str, now: float) -> Claims | None:
        """The claims of ``token`` if it was verified before and is still valid; else None
        (then ``verify`` decides)."""
        claims = self._verified.get(token)
        if claims is None or claims.kind != kind or claims.expires <= now:
            return None
        return claims

    def _check(self, token: str) -> Claims:
        if len(token) > _MAX_TOKEN:
            raise InvalidToken("the token is malformed")
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidToken("the token is malformed") from None
        payload, dot, signature = raw.partition(b".")
        if not dot or not payload or not signature:
            raise InvalidToken("the token is malformed")
        if not hmac.compare_digest(self._sign(payload), signature):
            raise InvalidToken("the token's signature does not match")
        try:
            claims = _decode(_unb64(payload))
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise InvalidToken("the token is malformed") from None
        if claims.version != _VERSION:
            raise InvalidToken("the token is not of this kind")
        return claims

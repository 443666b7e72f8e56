"""Cookie sessions for browsers, and their CSRF defence.

``POST /auth/login {"username", "password", "cookie": true}`` sets two cookies:

- ``charter_session``: the session token (``tokens.COOKIE``), ``HttpOnly`` (scripts cannot read
  it, so an XSS cannot steal it), ``SameSite=Lax``, ``Path=/``, ``Secure`` when the request came
  over HTTPS;
- ``charter_csrf``: a token derived from the session (HMAC of its family id), readable by the
  page's scripts.

A browser sends cookies with requests that other sites make it send, so an unsafe request
(anything but GET, HEAD, OPTIONS) signed in by the cookie must prove it comes from the app's
own pages: its ``x-csrf-token`` header must equal the ``charter_csrf`` cookie and the value
derived from the session (double submit, signed), and its ``Origin`` (else ``Referer``), when
sent, must be the app's own origin or one the CORS policy allows. Otherwise: 403. Requests
signed in with ``Authorization`` (Bearer or Basic) are not subject to it: browsers never add
those headers on their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Collection
from urllib.parse import urlsplit

from ..errors import Forbidden
from ..http.request import Request

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "check_csrf",
    "clear_cookies",
    "csrf_token",
    "read_cookie",
    "session_cookies",
]

SESSION_COOKIE = "charter_session"
CSRF_COOKIE = "charter_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(key: bytes, family: str) -> str:
    """The CSRF token of a session family (derived, so nothing more is stored)."""
    digest = hmac.new(key, family.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def read_cookie(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header (the first one), or None."""
    if not header or name not in header:
        return None
    for part in header.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key == name:
            return value.strip().strip('"')
    return None


def _secure(request: Request) -> bool:
    return request.scope.get("scheme") == "https"


def session_cookies(request: Request, token: str, csrf: str, max_age: int) -> list[str]:
    """The ``Set-Cookie`` values that open a cookie session."""
    secure = "; Secure" if _secure(request) else ""
    return [
        f"{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        f"{CSRF_COOKIE}={csrf}; Path=/; Max-Age={max_age}; SameSite=Lax{secure}",
    ]


def clear_cookies(request: Request) -> list[str]:
    """The ``Set-Cookie`` values that end a cookie session in the browser."""
    secure = "; Secure" if _secure(request) else ""
    return [
        f"{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}",
        f"{CSRF_COOKIE}=; Path=/; Max-Age=0; SameSite=Lax{secure}",
    ]


def own_origin(request: Request) -> str | None:
    """``scheme://host[:port]`` of the request, as a browser would write its ``Origin``."""
    host = request.header("host")
    if not host:
        return None
    return f"{request.scope.get('scheme', 'http')}://{host}".lower()


def check_origin(request: Request, allowed: Collection[str]) -> None:
    """403 when the request names an ``Origin`` (else a ``Referer``) that is neither the app's
    own nor in ``allowed``; a request that names neither passes (the CSRF token decides)."""
    origin = request.header("origin")
    if origin is None:
        referer = request.header("referer")
        if referer is None:
            return
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"
    origin = origin.strip().lower()
    if origin != "null" and (origin == own_origin(request) or origin in allowed):
        return
    raise Forbidden("this request comes from another site (Origin); it is refused")


def check_csrf(request: Request, expected: str, allowed_origins: Collection[str]) -> None:
    """403 unless an unsafe request signed in by cookie carries the session's CSRF token in
    both the header and the cookie, and comes from an allowed origin (module docstring)."""
    if request.method in SAFE_METHODS:
        return
    check_origin(request, allowed_origins)
    header = request.header(CSRF_HEADER) or ""
    cookie = read_cookie(request.header("cookie"), CSRF_COOKIE) or ""
    ok = hmac.compare_digest(header.encode(), expected.encode())
    ok = hmac.compare_digest(cookie.encode(), expected.encode()) and ok
    if not ok:
        raise Forbidden(
            f"a request signed in by cookie needs the {CSRF_HEADER} header "
            f"(the value of the {CSRF_COOKIE} cookie)"
        )

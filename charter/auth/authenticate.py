"""Who a request is: its credentials checked, ``context.user`` and ``context.role`` set.

Runs before the handler (and before middleware) on every request when auth is on. In order:

- ``Authorization: Bearer <access token>``: the signature and expiry are checked in memory,
  then the token's session row is read (one point read), so a logout holds at once on every
  worker. Not valid: 401 with ``WWW-Authenticate: Bearer ... error="invalid_token"``.
- ``Authorization: Basic``: a credential verified in the last minute is found in the Basic
  cache (``basic_cache.py``) and only the user's row is read; otherwise the password is checked
  (Argon2id, throttled: ``throttle.py``). Wrong: 401.
- the ``charter_session`` cookie (``cookies.py``): like a Bearer token, and an unsafe method
  must pass the CSRF check (403). A cookie that is no longer valid is ignored: the request
  acts as ``anonymous`` (the browser keeps a stale cookie until it signs in again).
- nothing: the role ``anonymous``.

A request with wrong credentials is refused with 401 rather than served as anonymous (a client
should learn that its password is wrong or its token expired).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Collection

from ..errors import Unauthorized
from ..http.request import Request
from ..model.roles import ANONYMOUS
from ..runtime.context import RequestContext
from .cookies import SAFE_METHODS, SESSION_COOKIE, check_csrf, read_cookie
from .directory import Directory, StoredUser
from .epoch import TRUST
from .signin import SignIn, invalid_token
from .tokens import ACCESS, COOKIE, InvalidToken

__all__ = ["NO_IDENTITY", "SESSION", "VIA_COOKIE", "Authenticator", "client_address", "parse_basic"]

SESSION = "charter.session"
"""``context.extra`` key: the session family a token or cookie request runs in."""
VIA_COOKIE = "charter.via_cookie"
"""``context.extra`` key: True when the request signed in by the session cookie."""

NO_IDENTITY = frozenset({"auth.login", "auth.refresh"})
"""Endpoints that sign in by their body: a stale cookie or header must not stand in the way."""


def parse_basic(value: str) -> tuple[str, str]:
    """``user:password`` of a Basic credential; 401 when it is not one."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unauthorized("malformed Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed Basic credentials")
    return username, password


def client_address(request: Request) -> str | None:
    """The client's address as the server saw it (a proxy's, behind one: see docs/auth.md)."""
    client = request.client
    return str(client[0]) if client else None


class Authenticator:
    """Sets the identity of each request (module docstring).

    Args:
        trusted_origins: origins besides the app's own whose pages may send cookie-signed
            unsafe requests (the CORS origins allowed with credentials).
    """

    def __init__(
        self, directory: Directory, sign_in: SignIn, trusted_origins: Collection[str] = ()
    ) -> None:
        self.directory = directory
        self.sign_in = sign_in
        self.trusted_origins = frozenset(o.lower() for o in trusted_origins)
        self._verifying: dict[bytes, asyncio.Future[StoredUser]] = {}

    async def __call__(self, request: Request, context: RequestContext) -> None:
        if context.endpoint in NO_IDENTITY:
            context.role = await self.directory.role(ANONYMOUS)
            return
        header = request.header("authorization")
        if header:
            scheme, _, value = header.partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer":
                token = value.strip()
                known = self.sign_in.known(token)  # most requests: all in memory, no await
                if known is not None:
                    context.user, context.role, context.extra[SESSION] = known
                    return
                await self._bearer(token, context)
            elif scheme == "basic":
                await self._basic(request, value, context)
            else:
                raise Unauthorized(f"unsupported authorization scheme {scheme[:20]!r}")
            return
        cookie = read_cookie(request.header("cookie"), SESSION_COOKIE)
        if cookie and await self._cookie(request, cookie, context):
            return
        role = self.directory.current_role(ANONYMOUS)
        context.role = role if role is not None else await self.directory.role(ANONYMOUS)

    async def _bearer(self, token: str, context: RequestContext) -> None:
        try:
            session = await self.sign_in.session_of(token, ACCESS)
        except InvalidToken as exc:
            raise invalid_token(exc.message) from None
        context.user, context.role = await self.sign_in.identity(session)
        context.extra[SESSION] = session.id

    async def _basic(self, request: Request, value: str, context: RequestContext) -> None:
        cache = self.sign_in.basic
        digest = None
        if cache is not None:
            digest = cache.digest(value)
            hit = cache.get(digest)
            if hit is not None:
                epoch = self.sign_in.epoch.read()
                fresh = epoch and hit.epoch == epoch and time.monotonic() - hit.checked < TRUST
                if not fresh:
                    stored = await self.directory.find(hit.user.username)
                    fresh = stored is not None and stored.generation == hit.user.generation
                    if fresh:
                        hit.epoch, hit.checked = epoch, time.monotonic()
                if fresh:
                    role = await self.directory.role(hit.user.role)
                    if hit.identity is None or hit.identity[0] is not role:
                        hit.identity = (role, *await self.directory.user(hit.user))
                    context.user, context.role = hit.identity[1], hit.identity[2]
                    return
                cache.drop(digest)  # changed or removed since: verify again
        username, password = parse_basic(value)
        if digest is None:
            stored = await self.sign_in.check_password(username, password, client_address(request))
        else:
            stored = await self._verify_once(digest, username, password, client_address(request))
        context.user, context.role = await self.directory.user(stored)

    async def _verify_once(
        self, digest: bytes, username: str, password: str, address: str | None
    ) -> StoredUser:
        """Check a Basic credential once however many requests bring it at the same moment
        (a client opening 64 connections must not cost 64 Argon2 runs), then cache it."""
        task = self._verifying.get(digest)
        if task is None:
            task = asyncio.ensure_future(self._verify(digest, username, password, address))
            self._verifying[digest] = task
            task.add_done_callback(lambda done: self._finished(digest, done))
        # shield: a request that goes away does not cancel the check others wait for
        return await asyncio.shield(task)

    async def _verify(
        self, digest: bytes, username: str, password: str, address: str | None
    ) -> StoredUser:
        epoch = self.sign_in.epoch.read()  # before the read: a change after it is seen
        stored = await self.sign_in.check_password(username, password, address)
        if self.sign_in.basic is not None:
            self.sign_in.basic.put(digest, stored, epoch)
        return stored

    def _finished(self, digest: bytes, task: asyncio.Future[StoredUser]) -> None:
        self._verifying.pop(digest, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure nobody awaits is not reported

    async def _cookie(self, request: Request, token: str, context: RequestContext) -> bool:
        try:
            session = await self.sign_in.session_of(token, COOKIE)
        except InvalidToken:
            return False  # stale: the request acts as anonymous
        if request.method not in SAFE_METHODS:
            check_csrf(request, self.sign_in.csrf(session.id), self.trusted_origins)
        context.user, context.role = await self.sign_in.identity(session)
        context.extra[SESSION] = session.id
        context.extra[VIA_COOKIE] = True
        return True

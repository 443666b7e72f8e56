"""``SignIn``: everything sign-in needs beyond users and roles, built once per app.

It owns the secret (and the keys derived from it), the session families, the failed sign-in
throttle and the Basic cache, and offers the operations the ``/auth`` endpoints and the
request authenticator share: check a password (throttled), open a session, issue its tokens,
refresh, and turn a token back into a user and a role.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import CharterError, Unauthorized
from ..model.roles import Role, User
from ..schema import TableSchema
from ..storage import Storage
from ..storage.sqlite_connect import path_from_url
from .basic_cache import BasicCache
from .cookies import csrf_token
from .directory import Directory, StoredUser
from .epoch import Epoch
from .secret import SecretStore, derive
from .sessions import COOKIE_SESSION, TOKEN_SESSION, Live, Session, Sessions
from .throttle import Counter, MemoryCounter, SignInThrottle
from .tokens import ACCESS, COOKIE, InvalidToken, TokenSigner

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["BAD_CREDENTIALS", "BEARER_CHALLENGE", "SignIn", "TokenPair"]

BAD_CREDENTIALS = "invalid username or password"
BEARER_CHALLENGE = 'Bearer realm="charter", error="invalid_token"'
_IDENTITIES = 10_000


class TokenPair:
    """What a sign-in or a refresh answers: ``POST /auth/login``'s body."""

    __slots__ = ("access_token", "expires_in", "refresh_token", "session")

    def __init__(self, session: Session, access_token: str, refresh_token: str, ttl: int) -> None:
        self.session = session
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.expires_in = ttl

    def body(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }


def invalid_token(reason: str) -> Unauthorized:
    """The 401 for a Bearer token that is not valid (RFC 6750's challenge)."""
    return Unauthorized(reason, headers={"www-authenticate": BEARER_CHALLENGE})


def _epoch_for(storage: Storage) -> Epoch:
    """The identity epoch of a storage: a file next to a SQLite database, a value in this
    process for an in-memory one, none for PostgreSQL (see ``epoch.py``)."""
    if not storage.url.startswith("sqlite:"):
        return Epoch(None)
    path = path_from_url(storage.url)
    if path == ":memory:" or path.startswith("file:"):
        return Epoch(None, local=path == ":memory:" or "mode=memory" in path)
    return Epoch(f"{path}-charter-epoch")


class SignIn:
    """Sign-in for one app (module docstring). ``start`` must run before tokens are used."""

    def __init__(self, directory: Directory, storage: Storage, config: Config) -> None:
        self.directory = directory
        self.access_ttl = int(config.access_token_ttl)
        self.refresh_ttl = int(config.refresh_token_ttl)
        self.secrets = SecretStore(storage)
        self.epoch = _epoch_for(storage)
        self.sessions = Sessions(storage, refresh_ttl=config.refresh_token_ttl, epoch=self.epoch)
        self.throttle = SignInThrottle(
            MemoryCounter(),
            per_user=config.signin_limit,
            per_address=config.signin_address_limit,
            window=config.signin_window,
        )
        self._configured_secret = config.secret
        self._access: TokenSigner | None = None
        self._cookie: TokenSigner | None = None
        self._csrf_key = b""
        self.basic: BasicCache | None = None
        # family -> (the session row and role it was made from, the user, the acting role)
        self._identities: dict[str, tuple[Live | Session, Role, User, Role]] = {}
        # access token -> (trusted until (monotonic), the epoch then, its identity): ``known``
        self._known: dict[str, tuple[float, int, tuple[User, Role, str]]] = {}
        directory.user_hooks.append(self.sessions.user_changed)

    @property
    def schemas(self) -> list[TableSchema]:
        """The system tables sign-in keeps: ``_charter_secrets``, ``_charter_sessions``."""
        return [self.secrets.schema, self.sessions.schema]

    async def start(self) -> None:
        """Load (or make) the secret and derive the keys (at app start, auth on)."""
        await self.secrets.load(self._configured_secret)
        self.epoch.open()
        secret = self.secrets.secret
        self._access = TokenSigner(derive(secret, "access-token"))
        self._cookie = TokenSigner(derive(secret, "cookie-session"))
        self._csrf_key = derive(secret, "csrf")
        self.basic = BasicCache(derive(secret, "basic-cache"))

    def use_counter(self, counter: Counter) -> None:
        """Count failed sign-ins in ``counter`` (``app.shared``: every worker counts together)."""
        self.throttle.counter = counter

    def _signer(self, kind: str) -> TokenSigner:
        signer = self._access if kind == ACCESS else self._cookie
        if signer is None:
            raise CharterError("sign-in is not started: start the app (auth on) first")
        return signer

    # -- passwords -------------------------------------------------------------------------------

    async def check_password(self, username: str, password: str, address: str | None) -> StoredUser:
        """The user, if the password is right; 429 past the throttle, else 401 (the same for
        an unknown name and a wrong password, after the same work)."""
        await self.throttle.check(username, address)
        stored = await self.directory.authenticate(username, password)
        if stored is None:
            await self.throttle.failed(username, address)
            raise Unauthorized(BAD_CREDENTIALS)
        return stored

    # -- sessions and tokens -------------------------------------------------------------------

    def _role_name(self, session: Session) -> str:
        return session.role or ("super_user" if session.super_user else "")

    def access_token(self, session: Session) -> str:
        return self._signer(ACCESS).issue(
            ACCESS,
            user_id=session.user_id,
            role=self._role_name(session),
            family=session.id,
            ttl=self.access_ttl,
        )

    async def open_tokens(self, user: StoredUser) -> TokenPair:
        """A new token session for ``user``: its access and refresh tokens."""
        session, refresh = await self.sessions.open(user, TOKEN_SESSION)
        assert refresh is not None
        return TokenPair(session, self.access_token(session), refresh, self.access_ttl)

    async def open_cookie(self, user: StoredUser) -> tuple[Session, str, str]:
        """A new cookie session for ``user``: the session, its cookie token and CSRF token."""
        session, _ = await self.sessions.open(user, COOKIE_SESSION)
        token = self._signer(COOKIE).issue(
            COOKIE,
            user_id=session.user_id,
            role=self._role_name(session),
            family=session.id,
            ttl=self.refresh_ttl,
        )
        return session, token, self.csrf(session.id)

    def csrf(self, family: str) -> str:
        return csrf_token(self._csrf_key, family)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token into a new pair; 401 when it is not valid (a reused one ends
        its session)."""
        session, fresh = await self.sessions.refresh(refresh_token, self.directory.find)
        return TokenPair(session, self.access_token(session), fresh, self.access_ttl)

    def known(self, token: str) -> tuple[User, Role, str] | None:
        """The user, role and session of an access token when all of it is in memory and
        still trusted (see ``epoch.py``): most requests, without one await. None: take the
        full path (``session_of`` and ``identity``)."""
        memo = self._known.get(token)
        if memo is not None:
            epoch = self.epoch.read()
            if epoch and memo[1] == epoch and time.monotonic() < memo[0]:
                return memo[2]  # nothing ended and nothing changed since it was put together
        if self._access is None:
            return None
        now = time.time()
        claims = self._access.remembered(token, ACCESS, now)
        if claims is None:
            return None
        session = self.sessions.trusted(claims.family, now)
        if session is None or session.user_id != claims.user_id:
            return None
        role = self.directory.current_role(session.role)
        cached = self._identities.get(session.id)
        if role is None or cached is None or cached[0] is not session or cached[1] is not role:
            return None
        found = (cached[2], cached[3], session.id)
        # Trusted as long as each part is: the session's trust, the roles copy, both expiries.
        mono = time.monotonic()
        until = min(
            self.sessions.trusted_until(claims.family),
            self.directory.roles_fresh_until,
            mono + claims.expires - now,
            mono + session.expires - now,
        )
        if len(self._known) >= _IDENTITIES:
            self._known.clear()
        self._known[token] = (until, self.epoch.read(), found)
        return found

    def token_expiry(self, token: str, kind: str) -> int:
        """When a valid token of ``kind`` expires (seconds since the epoch): a subscription
        opened with it ends then. ``InvalidToken`` when it is not valid."""
        return self._signer(kind).verify(token, kind).expires

    async def session_of(self, token: str, kind: str) -> Live:
        """The live session a token names; ``InvalidToken`` when the token or its session is
        not valid (a bad signature, expired, signed out, the user removed)."""
        claims = self._signer(kind).verify(token, kind)
        session = await self.sessions.get(claims.family)
        if session is None or session.user_id != claims.user_id:
            raise InvalidToken("the session has ended (signed out)")
        return session

    async def identity(self, session: Live | Session) -> tuple[User, Role]:
        """The user and role a session acts as (its role as it is now). Made once per session
        row and role table read, then reused: this runs on every signed-in request."""
        role = await self.directory.role(session.role)
        cached = self._identities.get(session.id)
        if cached is not None and cached[0] is session and cached[1] is role:
            return cached[2], cached[3]
        stored = StoredUser(session.username, session.user_id, "", session.role, session.super_user)
        user, acting = await self.directory.user(stored)
        if len(self._identities) >= _IDENTITIES:
            self._identities.clear()
        self._identities[session.id] = (session, role, user, acting)
        return user, acting

"""Sign-in sessions in ``_charter_sessions``: one row per session family, read on every request.

A sign-in opens a *family*: a row keyed by a random id, which every access token and session
cookie of that sign-in names. Verifying a token reads this row by primary key (a point read,
the only database work of Bearer and cookie sign-in), so deleting it — logout, a reused refresh
token, a password change, the user's removal — stops every token of the family on every worker
at once. The row also holds the user's current role (kept in step when the role changes), so a
demotion holds at once too.

Refresh tokens are ``<family>.<random>``; only the SHA-256 of the random part is stored. Each
refresh rotates it; the hashes already used are remembered, so presenting one again (a stolen
token replayed, or the thief's copy after the owner refreshed) deletes the whole family.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ..model.fields import Field
from ..model.table import Table
from ..query import Condition, Query
from ..runtime.transaction import Transaction, run_in_transaction
from ..schema import TableSchema, build_schema
from ..storage import Storage
from .directory import StoredUser
from .epoch import TRUST, Epoch
from .tokens import InvalidToken

__all__ = ["COOKIE_SESSION", "SESSIONS", "TOKEN_SESSION", "Live", "Session", "Sessions"]

SESSIONS = "_charter_sessions"
TOKEN_SESSION = "token"
COOKIE_SESSION = "cookie"
_ROTATED_KEPT = 16  # used refresh tokens remembered per family (reuse detection)
_CACHED = 10_000  # sessions a worker remembers (see get)
_ROTATED_DIGITS = 16  # of each one's hash: enough to recognise it, small to read per request
_MAX_REFRESH = 256


class _SessionRecord(Table, name=SESSIONS):
    id: str = Field(primary_key=True)
    user_id: str = Field(indexed=True)
    username: str = ""
    role: str | None = None
    super_user: bool = False
    generation: int = 0
    kind: str = TOKEN_SESSION
    refresh_hash: str = ""
    rotated: list[str] = []
    created: float = 0
    expires: float = 0


class Session(msgspec.Struct, frozen=True):
    """A row of ``_charter_sessions``: who signed in, as what, until when."""

    id: str
    user_id: str
    username: str = ""
    role: str | None = None
    super_user: bool = False
    generation: int = 0
    kind: str = TOKEN_SESSION
    refresh_hash: str = ""
    rotated: list[str] = []
    created: float = 0
    expires: float = 0


class Live(msgspec.Struct, frozen=True):
    """What a request needs of its session row (decoded on every request: kept small)."""

    id: str
    user_id: str
    username: str = ""
    role: str | None = None
    super_user: bool = False
    expires: float = 0


_decode = msgspec.json.Decoder(Session).decode
_decode_live = msgspec.json.Decoder(Live).decode
_encode = msgspec.json.Encoder().encode


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _body(session: Session) -> str:
    return _encode(session).decode()


class Sessions:
    """Opens, checks, rotates and ends session families on one storage.

    Args:
        refresh_ttl: seconds a refresh token (or a cookie session) stays valid unused.
    """

    def __init__(self, storage: Storage, *, refresh_ttl: float, epoch: Epoch) -> None:
        self.storage = storage
        self.refresh_ttl = float(refresh_ttl)
        self.epoch = epoch
        self.schema: TableSchema = build_schema(_SessionRecord, _SessionRecord.__charter_options__)
        # family -> (the row, the epoch before it was read, when): see epoch.py
        self._cache: dict[str, tuple[Live, int, float]] = {}

    def _ended(self, txn: Transaction) -> None:
        """After ``txn`` commits, tell every worker to read sessions again."""
        txn.after_commit(lambda _: self.epoch.bump())

    async def _run(self, stage: Callable[[Transaction], Awaitable[Any]]) -> Any:
        result, _ = await run_in_transaction(self.storage, stage, join=False)
        return result

    # -- the hot path ----------------------------------------------------------------------------

    def trusted(self, family: str, now: float) -> Live | None:
        """The session ``family`` as this worker last read it, while the identity epoch says
        nothing ended since (and for at most ``TRUST`` seconds); else None: read it."""
        hit = self._cache.get(family)
        if hit is None:
            return None
        epoch = self.epoch.read()
        if not epoch or hit[1] != epoch or time.monotonic() - hit[2] >= TRUST:
            return None
        return hit[0] if hit[0].expires > now else None

    def trusted_until(self, family: str) -> float:
        """When (``time.monotonic``) this worker stops trusting its copy of ``family``."""
        hit = self._cache.get(family)
        return hit[2] + TRUST if hit is not None else 0.0

    async def get(self, family: str) -> Live | None:
        """The live session ``family``, None when ended or expired: one point read, or none
        while the identity epoch says nothing ended since this worker read it."""
        now = time.time()
        known = self.trusted(family, now)
        if known is not None:
            return known
        epoch = self.epoch.read()  # before the read: an end committed after it is seen
        row = await self.storage.fetch(SESSIONS, family)
        if row is None:
            return None
        session = _decode_live(row.data)
        if epoch:
            if len(self._cache) >= _CACHED:
                self._cache.clear()
            self._cache[family] = (session, epoch, time.monotonic())
        return session if session.expires > now else None

    # -- opening, refreshing, ending ---------------------------------------------------------------

    async def open(self, user: StoredUser, kind: str = TOKEN_SESSION) -> tuple[Session, str | None]:
        """A new family for the user and, for a token session, its first refresh token."""
        await self.purge(user.id)
        family = secrets.token_urlsafe(18)
        refresh = secrets.token_urlsafe(32) if kind == TOKEN_SESSION else None
        now = time.time()
        session = Session(
            family,
            user.id,
            user.username,
            user.role,
            user.super_user,
            user.generation,
            kind,
            _hash(refresh) if refresh is not None else "",
            [],
            now,
            now + self.refresh_ttl,
        )

        async def create(txn: Transaction) -> None:
            txn.put(SESSIONS, family, _body(session), insert=True)

        await self._run(create)
        return session, None if refresh is None else f"{family}.{refresh}"

    async def refresh(
        self, token: str, current: Callable[[str], Awaitable[StoredUser | None]]
    ) -> tuple[Session, str]:
        """Rotate a refresh token: the session (with the user's current role) and the new token.

        ``current`` reads the user (by name) as it is now; a removed user, or one whose
        ``generation`` differs from the family's (a change ``user_changed`` did not follow),
        ends the family. Raises ``InvalidToken`` for an unknown, expired or ended token; a
        token already used ends its family first.
        """
        family, dot, secret = token.partition(".")
        if not dot or not family or not secret or len(token) > _MAX_REFRESH:
            raise InvalidToken("the refresh token is malformed")
        presented = _hash(secret)

        async def rotate(txn: Transaction) -> tuple[Session, str] | str:
            row = await txn.read(SESSIONS, family)
            if row is None:
                return "the refresh token is not valid (signed out, or unknown)"
            session = _decode(row.data)
            if session.kind != TOKEN_SESSION or session.expires <= time.time():
                return "the refresh token has expired"
            if not hmac.compare_digest(session.refresh_hash, presented):
                if presented[:_ROTATED_DIGITS] in session.rotated:
                    txn.delete(SESSIONS, family)
                    self._ended(txn)
                    return "the refresh token was already used: the session is ended"
                return "the refresh token is not valid (signed out, or unknown)"
            user = await current(session.username)
            stale = user is None or user.id != session.user_id
            if stale or user is None or user.generation != session.generation:
                txn.delete(SESSIONS, family)
                self._ended(txn)
                return "the user's credentials changed: sign in again"
            fresh = secrets.token_urlsafe(32)
            used = session.refresh_hash[:_ROTATED_DIGITS]
            rotated = [*session.rotated, used][-_ROTATED_KEPT:]
            renewed = msgspec.structs.replace(
                session,
                role=user.role,
                super_user=user.super_user,
                refresh_hash=_hash(fresh),
                rotated=rotated,
                expires=time.time() + self.refresh_ttl,
            )
            txn.put(SESSIONS, family, _body(renewed))
            return renewed, f"{family}.{fresh}"

        outcome = await self._run(rotate)
        if isinstance(outcome, str):
            raise InvalidToken(outcome)
        return outcome  # type: ignore[no-any-return]

    async def end(self, family: str) -> bool:
        """End the family (logout): its tokens stop everywhere at once. False if none."""

        async def delete(txn: Transaction) -> bool:
            if await txn.read(SESSIONS, family) is None:
                return False
            txn.delete(SESSIONS, family)
            self._ended(txn)
            return True

        return bool(await self._run(delete))

    async def end_by_refresh(self, token: str) -> bool:
        """End the family of a refresh token that is its current one (logout without an
        access token); False when the token is not current."""
        family, dot, secret = token.partition(".")
        if not dot or len(token) > _MAX_REFRESH:
            return False
        row = await self.storage.fetch(SESSIONS, family)
        if row is None or not hmac.compare_digest(_decode(row.data).refresh_hash, _hash(secret)):
            return False
        return await self.end(family)

    # -- following the user ----------------------------------------------------------------------

    async def of_user(self, user_id: str) -> list[Session]:
        """Every stored family of a user (live or expired)."""
        query = Query(conditions=[Condition("user_id", "equals", user_id)])
        return [_decode(row.data) async for row in self.storage.search(self.schema, query)]

    async def end_user(self, user_id: str) -> int:
        """End every family of a user (password changed, user removed); how many."""
        families = [s.id for s in await self.of_user(user_id)]

        async def delete(txn: Transaction) -> None:
            for family in families:
                txn.delete(SESSIONS, family)
            self._ended(txn)

        if families:
            await self._run(delete)
        return len(families)

    async def user_changed(
        self, txn: Transaction, before: StoredUser, after: StoredUser | None
    ) -> None:
        """Keep the user's families in step with a change of the user (a ``Directory`` hook,
        run inside the transaction that writes the user, so both land together): a removal or
        a new password ends them all; a new role or super-user flag is copied into each."""
        families = [s.id for s in await self.of_user(before.id)]
        self._ended(txn)  # cached Basic credentials of the user too
        for family in families:
            row = await txn.read(SESSIONS, family)
            if row is None:
                continue  # ended meanwhile
            if after is None or after.password_hash != before.password_hash:
                txn.delete(SESSIONS, family)
                continue
            session = _decode(row.data)
            renewed = msgspec.structs.replace(
                session,
                role=after.role,
                super_user=after.super_user,
                generation=after.generation,
            )
            if renewed != session:
                txn.put(SESSIONS, family, _body(renewed))

    async def purge(self, user_id: str) -> None:
        """Delete a user's expired families (run at each sign-in, so rows do not pile up)."""
        now = time.time()
        expired = [s.id for s in await self.of_user(user_id) if s.expires <= now]

        async def delete(txn: Transaction) -> None:
            for family in expired:
                txn.delete(SESSIONS, family)

        if expired:
            await self._run(delete)

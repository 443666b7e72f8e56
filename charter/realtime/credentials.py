"""A subscription ends when the credentials it was opened with do (issue 12, point 4).

A request's identity is checked once, when it arrives; a subscription outlives that request by
hours. So each worker keeps a ``Watch`` of its subscribers that were opened with auth on, and
closes a subscription (``Closed``: the SSE stream sends ``event: close`` and ends) when:

- its access token (or session cookie) expires: a timer at the token's expiry time;
- its session ends (``POST /auth/logout``, a reused refresh token, the user's password changed
  or the user removed: the session row is gone), or its Basic credential's user changed
  (``generation``) or was removed;
- the role it acts as is no longer the one it subscribed with (the user's role changed, the
  role was edited or removed): its verdicts (row rule, attributes) were made for that role.

Why a periodic re-check and not a message from the auth layer: the auth layer already tells
every worker that something ended, through the identity epoch (``auth/epoch.py``, SQLite); the
watch reads it every ``TICK`` (well under a microsecond) and re-reads the sessions and users
of its subscribers only when it changed (or every ``RECHECK`` seconds, which bounds the epoch's
one gap). Where there is no epoch (PostgreSQL, possibly shared by several machines) it re-reads
them every ``RECHECK_SHARED`` seconds. Either way the reads are batched (one query per 200
sessions, not one per subscriber), and a worker without signed-in subscribers does nothing.
Roles are compared every tick, from the roles copy the worker keeps anyway. Subscribers that
share a sign-in (a session, a Basic user, the anonymous role) share one ``_Identity``: the
checks cost one per sign-in, not one per subscriber.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from ..auth.authenticate import SESSION, VIA_COOKIE
from ..auth.cookies import SESSION_COOKIE, read_cookie
from ..auth.directory import StoredUser
from ..auth.sessions import Live
from ..auth.signin import SignIn
from ..auth.tokens import ACCESS, COOKIE, InvalidToken
from ..model.roles import ANONYMOUS
from ..query.model import Condition, Group, Query
from ..runtime.context import RequestContext
from .subscription import Closed, Subscription

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["RECHECK", "RECHECK_SHARED", "TICK", "Watch", "watch_credentials"]

log = logging.getLogger("charter.realtime")

TICK = 1.0
"""Seconds between two looks at the identity epoch and the roles."""
RECHECK = 30.0
"""Seconds after which sessions and users are read again even with an unchanged epoch."""
RECHECK_SHARED = 2.0
"""Seconds between reads of sessions and users where there is no epoch (PostgreSQL)."""
_BATCH = 200  # keys per query

_live = msgspec.json.Decoder(Live).decode
_stored = msgspec.json.Decoder(StoredUser).decode
_watches: weakref.WeakKeyDictionary[Hub, Watch] = weakref.WeakKeyDictionary()


def watch_credentials(hub: Hub, sign_in: SignIn) -> Watch:
    """Make ``hub``'s subscriptions end with their credentials (the app calls it, auth on)."""
    watch = _watches.get(hub)
    if watch is None:
        watch = _watches[hub] = Watch(hub, sign_in)
    return watch


def watch_of(hub: Hub) -> Watch | None:
    return _watches.get(hub)


class _Identity:
    """One sign-in that subscribers share (a session, a Basic user, or a role without one):
    what it acts as, checked once for all of them."""

    __slots__ = ("family", "key", "live", "role", "stored", "subscriptions", "user")

    def __init__(self, key: tuple[str, str], context: RequestContext) -> None:
        self.key = key
        self.user: Any = context.user
        self.role: Any = context.role
        self.family: str | None = context.extra.get(SESSION)
        self.live: Live | None = None  # the session row as last read (token, cookie)
        self.stored: StoredUser | None = None  # the user as last read (Basic)
        self.subscriptions: set[Subscription] = set()

    def close(self, reason: str) -> None:
        for subscription in list(self.subscriptions):
            _close(subscription, reason)


def _close(subscription: Subscription, reason: str) -> None:
    subscription.close(Closed(reason, position=subscription.delivered))


def _nothing() -> None:
    return None


def _key(context: RequestContext) -> tuple[str, str]:
    family = context.extra.get(SESSION)
    if family is not None:
        return ("session", str(family))
    if context.user is not None:
        return ("user", str(context.user.username))
    return ("role", context.role.name if context.role is not None else ANONYMOUS)


class Watch:
    """The signed-in subscribers of one worker's hub (module docstring)."""

    def __init__(self, hub: Hub, sign_in: SignIn) -> None:
        self.hub = hub
        self.sign_in = sign_in
        self.identities: dict[tuple[str, str], _Identity] = {}
        self._task: asyncio.Task[None] | None = None
        self._watching = asyncio.Event()  # set while there is someone to watch
        self._epoch = 0
        self._checked = 0.0  # time.monotonic() of the last read of sessions and users

    async def admit(
        self, subscription: Subscription, context: RequestContext
    ) -> Callable[[], None]:
        """Watch ``subscription``, opened by the request of ``context``; returns what ends
        the watch (call it when the subscription ends)."""
        identity, ended = await self._identity(context)
        if ended is not None:  # it ended between the request's check and now
            _close(subscription, ended)
            return _nothing
        identity.subscriptions.add(subscription)
        timer = None
        expires = self._token_expiry(context) if identity.family is not None else None
        if expires is not None:
            delay = max(0.0, expires - time.time())
            reason = "the access token has expired"
            timer = asyncio.get_running_loop().call_later(delay, _close, subscription, reason)
        if self._task is None or self._task.done():  # one per hub start, stopped with it
            self._task = asyncio.create_task(self._run(), name="charter-credentials")
            self.hub.add_task(self._task)
        if not self._watching.is_set():
            self._epoch = self.sign_in.epoch.read()
            self._checked = time.monotonic()
            self._watching.set()

        def release() -> None:
            if timer is not None:
                timer.cancel()
            identity.subscriptions.discard(subscription)
            if not identity.subscriptions and self.identities.get(identity.key) is identity:
                del self.identities[identity.key]

        return release

    async def _identity(self, context: RequestContext) -> tuple[_Identity, str | None]:
        """The shared identity of the request's sign-in (read once, when first seen), or why
        it has ended already."""
        key = _key(context)
        known = self.identities.get(key)
        if known is not None:
            if known.role == context.role and known.user == context.user:
                return known, None
            # This request was signed in as it is now: the others' sign-in is out of date.
            self._end(known, "the subscriber's role changed: subscribe again")
        fresh = _Identity(key, context)
        if fresh.family is not None:
            fresh.live = await self.sign_in.sessions.get(fresh.family)
            if fresh.live is None:
                return fresh, "the session has ended (signed out)"
        elif fresh.user is not None:
            fresh.stored = await self.sign_in.directory.find(fresh.user.username)
            if fresh.stored is None:
                return fresh, "the user was removed"
        known = self.identities.get(key)  # another request may have made it meanwhile
        if known is not None and known.role == fresh.role and known.user == fresh.user:
            return known, None
        if known is not None:
            self._end(known, "the subscriber's role changed: subscribe again")
        self.identities[key] = fresh
        return fresh, None

    def _token_expiry(self, context: RequestContext) -> float | None:
        """When the token the request signed in with expires (seconds since the epoch)."""
        request = context.request
        if request is None:
            return None
        if context.extra.get(VIA_COOKIE):
            token, kind = read_cookie(request.header("cookie"), SESSION_COOKIE), COOKIE
        else:
            scheme, _, value = (request.header("authorization") or "").partition(" ")
            token, kind = (value.strip(), ACCESS) if scheme.lower() == "bearer" else (None, "")
        if not token:
            return None
        try:
            return float(self.sign_in.token_expiry(token, kind))
        except InvalidToken:
            return time.time()  # expired since the request: end at once

    # -- the checks ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self.identities:
                self._watching.clear()
                await self._watching.wait()  # idle: no work at all until someone subscribes
            await asyncio.sleep(TICK)
            try:
                await self.check()
            except Exception:
                log.exception("the credentials of subscribers could not be checked")

    async def check(self, *, full: bool = False) -> None:
        """Close every watched subscription whose credentials ended; ``full``: read sessions
        and users now (else only when the epoch changed or a re-check is due)."""
        epoch = self.sign_in.epoch
        now = time.monotonic()
        value = epoch.read()
        if epoch.enabled:
            full = full or value != self._epoch or now - self._checked >= RECHECK
        else:
            full = full or now - self._checked >= RECHECK_SHARED
        if full:
            self._epoch, self._checked = value, now
            await self._read_credentials()
        await self._compare_roles()

    def _end(self, identity: _Identity, reason: str) -> None:
        identity.close(reason)
        if self.identities.get(identity.key) is identity:
            del self.identities[identity.key]

    async def _read_credentials(self) -> None:
        identities = list(self.identities.values())
        families = {i.family for i in identities if i.family is not None}
        names = {i.user.username for i in identities if i.family is None and i.user is not None}
        sessions = self.sign_in.sessions
        lives = {
            live.id: live for live in map(_live, await self._rows(sessions.schema, "id", families))
        }
        directory = self.sign_in.directory
        users = {
            stored.username: stored
            for stored in map(_stored, await self._rows(directory.users_schema, "username", names))
        }
        now = time.time()
        for identity in identities:
            if identity.family is not None:
                live = lives.get(identity.family)
                if live is None or live.expires <= now or live.user_id != identity.user.id:
                    self._end(identity, "the session has ended (signed out)")
                else:
                    identity.live = live
            elif identity.user is not None:
                stored = users.get(identity.user.username)
                if stored is None:
                    self._end(identity, "the user was removed")
                elif identity.stored is None or stored.generation != identity.stored.generation:
                    self._end(identity, "the user's credentials changed: sign in again")

    async def _rows(self, schema: Any, key: str, values: Iterable[str]) -> list[bytes | str]:
        """The rows of ``schema`` whose ``key`` is one of ``values``, a batch per query."""
        wanted = sorted(values)
        rows: list[bytes | str] = []
        for at in range(0, len(wanted), _BATCH):
            chunk: list[Condition | Group] = [
                Condition(key, "equals", v) for v in wanted[at : at + _BATCH]
            ]
            query = Query(conditions=[Group("or", chunk)] if len(chunk) > 1 else chunk)
            rows += [row.data async for row in self.sign_in.sessions.storage.search(schema, query)]
        return rows

    async def _compare_roles(self) -> None:
        """End the identities whose acting role is not the one they subscribed with, computed
        as a request would compute it now."""
        directory = self.sign_in.directory
        for identity in list(self.identities.values()):
            if identity.live is not None:
                user, role = await self.sign_in.identity(identity.live)
            elif identity.stored is not None:
                user, role = await directory.user(identity.stored)
            elif identity.family is None and identity.user is None:
                user = None
                role = await directory.role(identity.key[1])
            else:
                continue
            if role != identity.role or user != identity.user:
                self._end(identity, "the subscriber's role changed: subscribe again")

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
Roles are compared every tick, from the roles copy the worker keeps anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
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


class _Held:
    """What one subscriber signed in with, and what it acts as."""

    __slots__ = ("family", "live", "role", "stored", "subscription", "timer", "user")

    def __init__(self, subscription: Subscription, context: RequestContext) -> None:
        self.subscription = subscription
        self.user: Any = context.user
        self.role: Any = context.role
        self.family: str | None = context.extra.get(SESSION)
        self.live: Live | None = None  # the session row as last read (token, cookie)
        self.stored: StoredUser | None = None  # the user as last read (Basic)
        self.timer: asyncio.TimerHandle | None = None

    def close(self, reason: str) -> None:
        subscription = self.subscription
        subscription.close(Closed(reason, position=subscription.delivered))


class Watch:
    """The signed-in subscribers of one worker's hub (module docstring)."""

    def __init__(self, hub: Hub, sign_in: SignIn) -> None:
        self.hub = hub
        self.sign_in = sign_in
        self.held: dict[Subscription, _Held] = {}
        self._task: asyncio.Task[None] | None = None
        self._epoch = 0
        self._checked = 0.0  # time.monotonic() of the last read of sessions and users

    async def admit(
        self, subscription: Subscription, context: RequestContext
    ) -> Callable[[], None]:
        """Watch ``subscription``, opened by the request of ``context``; returns what ends
        the watch (call it when the subscription ends)."""
        held = _Held(subscription, context)
        expires = None
        if held.family is not None:
            held.live = await self.sign_in.sessions.get(held.family)
            expires = self._token_expiry(context)
            if held.live is None:
                held.close("the session has ended (signed out)")
        elif held.user is not None:
            held.stored = await self.sign_in.directory.find(held.user.username)
            if held.stored is None:
                held.close("the user was removed")
        if expires is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, expires - time.time())
            held.timer = loop.call_later(delay, held.close, "the access token has expired")
        self.held[subscription] = held
        if self._task is None or self._task.done():
            self._epoch = self.sign_in.epoch.read()
            self._checked = time.monotonic()
            self._task = asyncio.create_task(self._run(), name="charter-credentials")
            self.hub.add_task(self._task)

        def release() -> None:
            gone = self.held.pop(subscription, None)
            if gone is not None and gone.timer is not None:
                gone.timer.cancel()

        return release

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
        while self.held:
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

    async def _read_credentials(self) -> None:
        held = list(self.held.values())
        families = {h.family for h in held if h.family is not None}
        names = {h.user.username for h in held if h.family is None and h.user is not None}
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
        for h in held:
            if h.family is not None:
                live = lives.get(h.family)
                if live is None or live.expires <= now or live.user_id != h.user.id:
                    h.close("the session has ended (signed out)")
                h.live = live
            elif h.user is not None:
                stored = users.get(h.user.username)
                if stored is None:
                    h.close("the user was removed")
                elif h.stored is None or stored.generation != h.stored.generation:
                    h.close("the user's credentials changed: sign in again")

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
        """Close subscribers whose acting role is not the one they subscribed with, computed
        as a request would compute it now (once per session, user or role name)."""
        acting: dict[Any, Any] = {}
        directory = self.sign_in.directory
        for h in list(self.held.values()):
            if h.subscription.closed is not None:
                continue
            if h.family is not None:
                if h.live is None:
                    continue  # its session ended: closed already
                known = acting.get(h.family)
                if known is None:
                    known = acting[h.family] = await self.sign_in.identity(h.live)
                user, role = known
            elif h.stored is not None:
                known = acting.get(h.stored.username)
                if known is None:
                    known = acting[h.stored.username] = await directory.user(h.stored)
                user, role = known
            else:
                name = h.role.name if h.role is not None else ANONYMOUS
                role = acting.get(("role", name))
                if role is None:
                    role = acting[("role", name)] = await directory.role(name)
                user = h.user
            if role != h.role or user != h.user:
                h.close("the subscriber's role changed: subscribe again")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

"""Subscriptions of the generated Python client (docs/realtime.md): typed events over SSE,
resumed from the last position after a dropped connection, an overflow or an expired token.

Copied by ``charter gen client --lang python`` as ``_subscriptions.py`` beside ``_runtime.py``
(its import of ``python_runtime`` becomes ``_runtime`` there); like that file, never imported
by charter, checked by mypy and ruff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any, Generic, Literal, Self, TypeVar, cast

import httpx
import msgspec

from .python_runtime import (
    AsyncTransport,
    CharterClientError,
    Query,
    Transport,
    path_segment,
)

__all__ = ["AsyncSubscription", "Event", "EventType", "Subscription"]

R = TypeVar("R")  # a subscription's record type

EventType = Literal["put", "patch", "delete", "publish", "reset"]
"""``reset``: the server no longer holds the events since the position a subscription resumed
from; the current records follow (drop what you kept, as they may have changed)."""


class Event(msgspec.Struct, Generic[R], kw_only=True):
    """One change of a subscription (docs/realtime.md).

    Attributes:
        type: ``put``, ``patch``, ``delete``, ``publish`` or ``reset``.
        id: the record's key.
        value: the record as a read shows it (``put`` and ``patch``); None for a delete.
        message: what was published (``publish``: any JSON), else None.
        timestamp: when the change was made (ms since the epoch).
        user: who made it.
        leaving: a ``delete`` sent because the record stopped matching (or may no longer be
            read), not because it was deleted.
        position: the event's place in the server's log (a resume starts after it).
    """

    type: EventType
    id: Any = None
    value: R | None = None
    message: Any = None
    timestamp: int | None = None
    user: str | None = None
    leaving: bool = False
    position: int | None = None


class _Wire(msgspec.Struct):
    type: str
    id: Any = None
    value: msgspec.Raw = msgspec.Raw(b"null")
    timestamp: int | None = None
    user: str | None = None
    leaving: bool = False


def subscription_target(
    table: str,
    key: object,
    *,
    prefix: str | None,
    query: Query[Any, Any] | None,
    omit_current: bool,
    start_time: int | None,
    previous_count: int | None,
) -> tuple[str, str]:
    """A subscription's path and query string."""
    if query is not None and query.selects:
        raise ValueError("a subscription receives records: its query has no select()")
    if key is not None and (query is not None or prefix is not None):
        raise ValueError("a subscription to one record takes no query and no prefix")
    if key is not None:
        path = f"/{table}/{path_segment(key)}"
    elif prefix is not None:
        path = f"/{table}/{path_segment(prefix)}/"
    else:
        path = f"/{table}/"
    parts = [query.to_query_string()] if query is not None else []
    if omit_current:
        parts.append("omitCurrent=true")
    if start_time is not None:
        parts.append(f"startTime={int(start_time)}")
    if previous_count is not None:
        parts.append(f"previousCount={int(previous_count)}")
    return path, "&".join(p for p in parts if p)


class _Reconnect:
    """The stream ended on purpose (``overflow``): connect again from the position."""


class _Closed:
    """The server closed the subscription (``close``): its credentials ended, or it stops."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


_RECONNECT = _Reconnect()
_FIRST_DELAY = 0.1
_MAX_DELAY = 5.0
_CLOSES = 3  # closes in a row without an event before giving up


class _Follow(Generic[R]):
    """The part of a subscription that does no I/O: reads the SSE lines (the WHATWG format),
    remembers the last position and turns messages into events. A resume sends the position
    back (``Last-Event-ID``): the server replays exactly what was missed; an event at a
    position before the last one is dropped (never twice).

    The current records sent first share one position: until a later event shows they are
    all in, a resume starts over (no ``Last-Event-ID``: the current records again) and the
    ones already delivered unchanged are not repeated."""

    def __init__(self, record: Any, position: int | None, *, current: bool) -> None:
        self.record = record
        self.position = position
        self.exact = position is not None or not current  # the position resumes exactly
        self._delivered: set[tuple[str, Any]] = set()  # current records, before ``exact``
        self.closes = 0
        self._reset()

    def resume_from(self) -> int | None:
        return self.position if self.exact else None

    def _reset(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def line(self, line: str) -> Event[R] | _Reconnect | _Closed | None:
        if line:
            if line.startswith(":"):
                return None  # a comment (keep-alive)
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id" and "\0" not in value:
                self._id = value
            return None
        event, data, id_ = self._event, "\n".join(self._data), self._id
        self._reset()
        position = int(id_) if id_ and id_.strip().isdigit() else None
        if event == "overflow":  # the server left us behind: resume from its position
            if position is not None:
                self.position = position
            return _RECONNECT
        if event == "close":
            try:
                reason = str(msgspec.json.decode(data)["reason"])
            except (msgspec.DecodeError, KeyError, TypeError):
                reason = data or "the server closed the subscription"
            self.closes += 1
            return _Closed(reason)
        if event not in ("", "message") or not data:
            return None
        if position is not None and self.position is not None and position < self.position:
            return None  # one it already has
        if not self.exact and self.position is not None and position is not None:
            self.exact = position > self.position  # a live event: the current ones are in
        result = self._decode(data, position)
        if not self.exact and result.type == "put":
            seen = (msgspec.json.encode(result.id).decode(), result.timestamp)
            if seen in self._delivered:
                return None
            self._delivered.add(seen)
        if position is not None:
            self.position = position
        self.closes = 0
        return result

    def _decode(self, data: str, position: int | None) -> Event[R]:
        try:
            wire = msgspec.json.decode(data, type=_Wire)
            value: Any = None
            message: Any = None
            if wire.type in ("put", "patch"):
                value = msgspec.json.decode(wire.value, type=self.record)
            elif wire.type == "publish":
                message = msgspec.json.decode(wire.value)
            kind = cast("EventType", wire.type)
        except msgspec.DecodeError as exc:
            text = (
                f"an event does not fit the client's types ({exc}): the client may be older "
                "than the server (regenerate it)"
            )
            raise CharterClientError(200, "UNEXPECTED_RESPONSE", text) from exc
        return Event(
            type=kind, id=wire.id, value=value, message=message, timestamp=wire.timestamp,
            user=wire.user, leaving=wire.leaving, position=position,
        )  # fmt: skip


def _closed_error(reason: str) -> CharterClientError:
    return CharterClientError(401, "SUBSCRIPTION_CLOSED", reason)


class Subscription(Generic[R]):
    """The events of a subscription, as an iterator (``for event in ...``) that resumes by
    itself: after a dropped connection, an ``overflow`` or a close when the access token
    expired (the tokens are refreshed), it connects again from the last position and gets
    exactly the events it missed. Waits (with backoff) while the server cannot be reached.

    Raises ``CharterClientError`` when the server refuses it (401, 403, 404...), and with the
    code ``SUBSCRIPTION_CLOSED`` when the server keeps closing it (the session ended). It
    connects when a ``with`` block starts (or ``open()``), else at the first ``next``: events
    committed before then are not sent (the current record is). Stop it with ``close()`` (or
    the ``with`` block's end); ``position`` is where a later one may resume (``after=``).
    """

    def __init__(
        self,
        transport: Transport,
        path: str,
        query: str,
        record: Any,
        *,
        after: int | None,
        current: bool = True,
    ) -> None:
        self.transport = transport
        self.path = path
        self.query = query
        self._follow: _Follow[R] = _Follow(record, after, current=current)
        self._events = self._run()
        self._opened: httpx.Response | None = None
        self.connections = 0

    @property
    def position(self) -> int | None:
        return self._follow.position

    def _open(self) -> httpx.Response:
        response = self.transport.open_events(self.path, self.query, self._follow.resume_from())
        self.connections += 1
        return response

    def open(self) -> Self:
        """Connect now (else the first ``next`` does): events from then on are received."""
        if self._opened is None and self.connections == 0:
            self._opened = self._open()
        return self

    def _run(self) -> Generator[Event[R], None, None]:
        delay = _FIRST_DELAY
        follow = self._follow
        while True:
            try:
                response = self._opened if self._opened is not None else self._open()
            except httpx.TransportError:
                time.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
                continue
            self._opened = None
            closed: _Closed | None = None
            try:
                for line in response.iter_lines():
                    out = follow.line(line)
                    if isinstance(out, Event):
                        delay = _FIRST_DELAY
                        yield out
                    elif out is not None:
                        closed = out if isinstance(out, _Closed) else None
                        delay = 0.0 if closed is None else delay  # overflow: at once
                        break
            except httpx.TransportError:
                pass  # dropped: resume below
            finally:
                response.close()
            if closed is not None:
                if follow.closes >= _CLOSES:
                    raise _closed_error(closed.reason)
                if self.transport.session.tokens is not None:
                    self.transport.renew()  # raises when the session has ended
                continue
            time.sleep(delay)
            delay = min(max(delay, _FIRST_DELAY / 2) * 2, _MAX_DELAY)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Event[R]:
        return next(self._events)

    def close(self) -> None:
        """Stop (the connection is closed)."""
        self._events.close()
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSubscription(Generic[R]):
    """``Subscription`` on ``httpx.AsyncClient``: ``async for event in ...``; ``async with``
    (or ``await open()``) connects at once, ``aclose()`` (or the block's end) stops it."""

    def __init__(
        self,
        transport: AsyncTransport,
        path: str,
        query: str,
        record: Any,
        *,
        after: int | None,
        current: bool = True,
    ) -> None:
        self.transport = transport
        self.path = path
        self.query = query
        self._follow: _Follow[R] = _Follow(record, after, current=current)
        self._events = self._run()
        self._opened: httpx.Response | None = None
        self.connections = 0

    @property
    def position(self) -> int | None:
        return self._follow.position

    async def _open(self) -> httpx.Response:
        position = self._follow.resume_from()
        response = await self.transport.open_events(self.path, self.query, position)
        self.connections += 1
        return response

    async def open(self) -> Self:
        """Connect now (else the first ``anext`` does): events from then on are received."""
        if self._opened is None and self.connections == 0:
            self._opened = await self._open()
        return self

    async def _run(self) -> AsyncGenerator[Event[R], None]:
        delay = _FIRST_DELAY
        follow = self._follow
        while True:
            try:
                response = self._opened if self._opened is not None else await self._open()
            except httpx.TransportError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
                continue
            self._opened = None
            closed: _Closed | None = None
            try:
                async for line in response.aiter_lines():
                    out = follow.line(line)
                    if isinstance(out, Event):
                        delay = _FIRST_DELAY
                        yield out
                    elif out is not None:
                        closed = out if isinstance(out, _Closed) else None
                        delay = 0.0 if closed is None else delay  # overflow: at once
                        break
            except httpx.TransportError:
                pass  # dropped: resume below
            finally:
                await response.aclose()
            if closed is not None:
                if follow.closes >= _CLOSES:
                    raise _closed_error(closed.reason)
                if self.transport.session.tokens is not None:
                    await self.transport.renew()  # raises when the session has ended
                continue
            await asyncio.sleep(delay)
            delay = min(max(delay, _FIRST_DELAY / 2) * 2, _MAX_DELAY)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event[R]:
        return await anext(self._events)

    async def aclose(self) -> None:
        """Stop (the connection is closed)."""
        await self._events.aclose()
        if self._opened is not None:
            await self._opened.aclose()
            self._opened = None

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

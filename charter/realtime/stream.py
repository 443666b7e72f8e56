"""Opening a subscription for a subscriber: its rights checked, its history, current state and
live events in one ordered stream (see ``subscription.py`` for why nothing falls in a gap).

Everything that can refuse (no read right: 401/403; a bad query: 400) and the current state are
done in ``open_stream``, while the request that asked is still the current one, so a refusal is
an ordinary error response and the table's hooks see the subscriber's user. The stream returned
runs after that, for as long as the subscriber stays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ..query.model import Condition, Group, Query
from ..runtime.access import READ
from ..runtime.context import RequestContext
from ..storage import LoggedEvent
from .credentials import watch_of
from .events import Event, HubEvent
from .subscription import Subscription
from .viewer import Viewer

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime
    from .hub import Hub

__all__ = ["Options", "open_stream"]

_HISTORY_PAGE = 1000
_FIRST_BATCH = 256  # history and current records go out this many at a time


@dataclasses.dataclass(slots=True)
class Options:
    """What a subscriber asks for (SPEC section 8).

    Args:
        key: one record (None: the table, or the keys that start with ``prefix``).
        query: a collection subscription's query (its conditions select the records).
        after: resume after this position (``Last-Event-ID``).
        start_time: replay the events since this time (ms).
        previous_count: replay the last N events.
        omit_current: do not send the current record(s) first.
    """

    key: Any = None
    prefix: str | None = None
    query: Query | None = None
    after: int | None = None
    start_time: int | None = None
    previous_count: int | None = None
    omit_current: bool = False


def _conditions(query: Query | None) -> tuple[Condition | Group, ...]:
    if query is None or not query.conditions:
        return ()
    if query.operator == "or" and len(query.conditions) > 1:
        return (Group("or", list(query.conditions)),)
    return tuple(query.conditions)


async def open_stream(
    hub: Hub,
    runtime: TableRuntime,
    options: Options,
    context: RequestContext | None,
    *,
    keepalive: float | None = None,
) -> tuple[Subscription, AsyncIterator[list[Event] | None]]:
    """Check the subscriber's rights, join the hub and read the current state; the stream of
    events that follows, in batches (each written at once; None at each ``keepalive``
    without one)."""
    access = runtime.access(context)
    table = None
    rule: Sequence[Condition | Group] = ()
    if not access.unrestricted:
        access.require(context, runtime.name, READ)
        table = access.table(runtime.name)
        if table.rules:
            scope = await access.scope(context, runtime.name, related=False)
            rule = scope.rule(runtime.name) if scope is not None else ()
    user = context.user if context is not None else None
    viewer = Viewer(runtime, table, rule, _conditions(options.query), user)
    subscription = Subscription(
        runtime.name,
        viewer,
        key=options.key,
        prefix=options.prefix,
        buffer=hub.config.subscriber_buffer,
    )
    start = await hub.join(subscription)
    release = _unwatched
    try:
        watch = watch_of(hub)
        if watch is not None and context is not None and context.auth:
            release = await watch.admit(subscription, context)  # ends with its credentials
        first = await _first_events(hub, runtime, subscription, options, start, context)
    except BaseException:
        hub.leave(subscription)
        release()
        raise
    return subscription, _stream(hub, subscription, first, start, keepalive, release)


def _unwatched() -> None:
    return None


async def _stream(
    hub: Hub,
    subscription: Subscription,
    first: list[Event],
    start: int,
    keepalive: float | None,
    release: Callable[[], None],
) -> AsyncIterator[list[Event] | None]:
    # The current records went out as of a read made after joining: a live event of such a
    # record committed before that read (its version not newer) is one it already has.
    subscription.sent = {
        e.id: e.timestamp for e in first if e.position == start and e.type == "put"
    }
    try:
        for at in range(0, len(first), _FIRST_BATCH):
            yield first[at : at + _FIRST_BATCH]
        async for batch in subscription.live(start, keepalive):
            yield batch
    finally:
        hub.leave(subscription)
        release()


async def _first_events(
    hub: Hub,
    runtime: TableRuntime,
    subscription: Subscription,
    options: Options,
    start: int,
    context: RequestContext | None,
) -> list[Event]:
    """History (a resume, ``startTime`` or ``previousCount``), then the current state."""
    out: list[Event] = []
    storage = hub.storage
    current = not options.omit_current
    if options.after is not None:
        floor, _ = await storage.event_bounds()
        if options.after < floor:
            out.append(Event("reset", position=start))
        else:
            out += await _replay(hub, subscription, options.after, start, resume=True)
            current = False  # a resumed subscriber has the state: it gets what it missed
    elif options.start_time is not None:
        first = await storage.first_event_since(options.start_time)
        if first is not None and first <= start:
            floor, _ = await storage.event_bounds()
            if floor and first == floor + 1:
                out.append(Event("reset", position=start))  # some history may be pruned
            out += await _replay(hub, subscription, first - 1, start, resume=False)
    elif options.previous_count:
        out += await _previous(hub, runtime, subscription, options.previous_count, start)
    if current or subscription.viewer.filtered:
        present = await _current(runtime, subscription, options, start, context)
        if current:
            out += present
    return out


async def _replay(
    hub: Hub, subscription: Subscription, after: int, until: int, *, resume: bool
) -> list[Event]:
    """The subscriber's events in the log between two positions."""
    out: list[Event] = []
    viewer = subscription.viewer
    while after < until:
        page = await hub.storage.read_events(after, _HISTORY_PAGE)
        for logged in page:
            if logged.position > until:
                return out
            after = logged.position
            if logged.table != subscription.table or not subscription.wants(logged.key):
                continue
            event = await (_resumed(hub, viewer, logged) if resume else _past(viewer, logged))
            if event is not None:
                out.append(event)
        if len(page) < _HISTORY_PAGE:
            break
    return out


async def _resumed(hub: Hub, viewer: Viewer, logged: LoggedEvent) -> Event | None:
    """A missed event: a record the subscriber may have seen before it left is looked up in the
    log (its previous event), so that its delete or its leaving is not lost."""
    if viewer.filtered and logged.key not in viewer.visible:
        before = await hub.storage.read_events_back(logged.table, logged.key, logged.position, 1)
        if before and before[0].data is not None and before[0].type != "publish":
            document = HubEvent(before[0]).document
            if await viewer.passes(logged.key, document, before[0].timestamp):
                viewer.visible.add(logged.key)
    return await viewer.view(HubEvent(logged))


async def _past(viewer: Viewer, logged: LoggedEvent) -> Event | None:
    """A history event (``startTime``, ``previousCount``): shown when it passes, as a read of
    that version would be; no ``leaving`` is derived from history."""
    item = HubEvent(logged)
    if logged.type in ("put", "patch"):
        if viewer.filtered and not await viewer.passes(logged.key, item.document, logged.timestamp):
            return None
        return Event(
            logged.type,
            logged.key,
            viewer.shown(item.document),
            logged.timestamp,
            logged.user,
            False,
            logged.position,
        )
    if viewer.filtered and logged.key not in viewer.visible:
        return None
    return await viewer.view(item)


async def _previous(
    hub: Hub, runtime: TableRuntime, subscription: Subscription, count: int, start: int
) -> list[Event]:
    """The last ``count`` events of the subscription, oldest first."""
    found: list[Event] = []
    before = start + 1
    while len(found) < count:
        page = await hub.storage.read_events_back(
            runtime.name, subscription.key, before, _HISTORY_PAGE
        )
        for logged in page:
            before = logged.position
            if not subscription.wants(logged.key):
                continue
            event = await _past(subscription.viewer, logged)
            if event is not None:
                found.append(event)
                if len(found) == count:
                    break
        if len(page) < _HISTORY_PAGE:
            break
    found.reverse()
    return found


async def _current(
    runtime: TableRuntime,
    subscription: Subscription,
    options: Options,
    start: int,
    context: RequestContext | None,
) -> list[Event]:
    """The records the subscriber sees now, as ``put`` events at the position it starts
    after (a reconnect from there misses nothing); their keys make the visible set."""
    viewer = subscription.viewer
    out: list[Event] = []
    if options.key is not None:
        instance = await runtime.load(options.key, context)
        if not instance._exists:
            return out
        document = instance._values()
        encoded = msgspec_document(runtime, document)
        if viewer.filtered and not await viewer.passes(options.key, encoded, instance._version):
            return out
        if viewer.filtered:
            viewer.visible.add(options.key)
        out.append(
            Event("put", options.key, viewer.shown(encoded), instance._version, None, False, start)
        )
        return out
    query = options.query or Query()
    conditions = list(_conditions(query))
    if options.prefix:
        conditions.append(Condition(runtime.key, "starts_with", options.prefix))
    query = dataclasses.replace(query, conditions=conditions, operator="and", select=None)
    async for instance in runtime.search(query, check_read=True, context=context):
        key = instance._key
        if viewer.filtered:
            viewer.visible.add(key)
        if not options.omit_current:
            document = msgspec_document(runtime, instance._values())
            out.append(
                Event("put", key, viewer.shown(document), instance._version, None, False, start)
            )
    return out


def msgspec_document(runtime: TableRuntime, values: dict[str, Any]) -> dict[str, Any]:
    """A record's values as its stored JSON reads (what events carry)."""
    document: dict[str, Any] = msgspec.json.decode(runtime._encode(values))
    return document

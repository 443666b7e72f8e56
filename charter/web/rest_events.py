"""A table's REST paths as subscriptions (SPEC section 8): ``GET`` with
``Accept: text/event-stream`` on ``/Table/{id}``, ``/Table/``, ``/Table/prefix/`` and a
collection path with a query. The realtime parameters (``startTime``, ``previousCount``,
``omitCurrent``) are taken out of the query string; what remains is the query language of
SPEC section 4, checked as a GET's would be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import HttpError, NotFound
from ..http.request import Request
from ..http.response import Response
from ..http.routing import decode_segment
from ..http.types import CONNECTION
from ..query.model import Query
from ..realtime.sse import sse_lane, sse_response, wants_events
from ..realtime.stream import Options, open_stream
from ..realtime.subscription import Closed, Subscription
from ..runtime.access import READ
from ..runtime.context import current_context

if TYPE_CHECKING:
    from ..realtime.hub import Hub
    from .rest import TableResource

__all__ = ["realtime_options", "subscribe_path", "subscribe_sse", "topic_of", "wants_events"]

_REALTIME = ("startTime", "previousCount", "omitCurrent")


def _bad(message: str) -> HttpError:
    return HttpError(400, message, code="INVALID_QUERY")


def _integer(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _bad(f"{name} must be an integer, not {text!r}") from None
    if value < 0:
        raise _bad(f"{name} must not be negative")
    return value


def realtime_options(query_string: str, last_event_id: str | None) -> tuple[Options, str]:
    """The subscription's options and the rest of the query string (its query)."""
    options = Options()
    rest: list[str] = []
    for part in query_string.split("&") if query_string else ():
        name, _, value = part.partition("=")
        if name == "startTime":
            options.start_time = _integer(name, value)
        elif name == "previousCount":
            options.previous_count = _integer(name, value)
        elif name == "omitCurrent":
            if value not in ("", "true", "false"):
                raise _bad(f"omitCurrent must be true or false, not {value!r}")
            options.omit_current = value != "false"
        else:
            rest.append(part)
    if last_event_id is not None and last_event_id.strip():
        options.after = _integer("Last-Event-ID", last_event_id.strip())
    return options, "&".join(rest)


async def subscribe_sse(
    resource: TableResource,
    hub: Hub,
    request: Request,
    *,
    key: Any = None,
    prefix: str | None = None,
) -> Response:
    """The SSE response of a subscription; refusals (401/403/400) before any byte is sent."""
    context = current_context()
    access = resource._allowed(context, READ)  # 401/403 first, as a GET: before any 400
    options, text = realtime_options(request.query_string, request.header("last-event-id"))
    options.key, options.prefix = key, prefix
    if key is None and text:
        query: Query = await resource.query_of(text, access)
        if query.select is not None or query.explain:
            raise _bad("a subscription's query selects records: no select() or explain")
        options.query = query
    elif key is not None and text:
        raise _bad("a subscription to one record takes no query")
    subscription, events = await open_stream(
        hub, resource.runtime, options, context, keepalive=hub.config.keepalive
    )
    response = sse_response(events)
    assert response.stream is not None
    response.stream = _until_gone(request, subscription, response.stream)
    return response


async def _until_gone(
    request: Request, subscription: Subscription, chunks: AsyncIterable[bytes]
) -> AsyncIterator[bytes]:
    """``chunks`` until the client goes away or the server shuts down: either closes the
    subscription at once (an idle stream has no next chunk to notice it by). Under
    ``charter serve`` the connection says so itself; elsewhere a task waits for the ASGI
    disconnect message."""
    extensions = request.scope.get("extensions") or {}
    connection = extensions.get(CONNECTION)
    watcher = None
    if connection is not None and hasattr(connection, "on_lost"):
        connection.on_lost(lambda: subscription.close(Closed("the client went away")))
        connection.on_shutdown(lambda: subscription.close(Closed("the server is shutting down")))
        subscription.lane = sse_lane(connection.body_writer())  # the hub writes idle streams
    else:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            subscription.close(Closed("the client went away"))

        watcher = asyncio.ensure_future(watch())
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        if watcher is not None:
            watcher.cancel()
        await chunks.aclose()  # type: ignore[attr-defined]


def topic_of(resource: TableResource, request: Request, raw: str) -> dict[str, Any]:
    """``/Table/{id}`` or ``/Table/prefix/`` (``raw``: the path after the table) as the
    subscription's ``key`` or ``prefix``; 404 for a path that names neither."""
    if raw.endswith("/") and "/" not in raw[:-1]:
        return {"prefix": decode_segment(raw[:-1])}
    if "/" in raw:
        raise NotFound(f"no resource at {request.path}")
    key = resource.schema.coerce_key(decode_segment(raw))
    if key is None:
        raise NotFound(f"{resource.name} {raw!r} not found")
    return {"key": key}


async def subscribe_path(resource: TableResource, hub: Hub, request: Request, raw: str) -> Response:
    """``/Table/{id}`` or ``/Table/prefix/`` subscribed over SSE."""
    return await subscribe_sse(resource, hub, request, **topic_of(resource, request, raw))

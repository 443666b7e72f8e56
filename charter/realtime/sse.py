"""Server-Sent Events: a subscription over ``GET`` with ``Accept: text/event-stream``.

Each event is a message whose ``id:`` is its position, so a browser's ``EventSource`` resumes
by itself (``Last-Event-ID``) after a dropped connection. A comment goes out every
``keepalive`` seconds without an event, so proxies keep the connection open and a client gone
silently is noticed. A subscriber that falls behind gets a last ``overflow`` message (its
``id:`` the position to resume from) and the stream ends: reconnecting loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import msgspec

from ..http.request import Request
from ..http.response import Response
from .events import Event, format_sse
from .subscription import Closed, Overflow

__all__ = ["MEDIA_TYPE", "sse_lane", "sse_response", "wants_events"]

log = logging.getLogger("charter.realtime")
MEDIA_TYPE = "text/event-stream"
_OPENED = b": subscribed\n\n"
_KEEPALIVE = b": keep-alive\n\n"


def wants_events(request: Request) -> bool:
    """Whether a GET asks for a subscription (``Accept: text/event-stream``)."""
    accept = request.header("accept")
    return accept is not None and MEDIA_TYPE in accept and request.method == "GET"


def sse_response(events: AsyncIterator[list[Event] | None]) -> Response:
    """The response of a subscription; the caller ends its stream when the client goes."""
    headers = {
        "content-type": MEDIA_TYPE,
        "cache-control": "no-cache",
        "x-accel-buffering": "no",  # nginx: do not hold events back in a buffer
    }
    return Response(200, headers=headers, stream=_body(events))


async def _body(events: AsyncIterator[list[Event] | None]) -> AsyncIterator[bytes]:
    yield _OPENED
    try:
        async for batch in events:
            yield _KEEPALIVE if batch is None else _messages(batch)
    except Overflow as closed:
        at = b"id: %d\n" % closed.position if closed.position is not None else b""
        yield at + b"event: overflow\ndata: {}\n\n"
    except Closed as closed:
        yield b"event: close\ndata: " + msgspec.json.encode({"reason": str(closed)}) + b"\n\n"
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def sse_lane(write: Callable[[bytes], bool]) -> Callable[[list[Event]], bool]:
    """A subscription's ``lane`` over a connection's ``body_writer``: events written as the
    stream's own next chunk would be."""

    def send(events: list[Event]) -> bool:
        return write(_messages(events))

    return send


def _messages(events: list[Event]) -> bytes:
    """A batch of events as one chunk: one write to the socket."""
    if len(events) == 1:
        return format_sse(events[0])  # its cached encoding, not a copy
    return b"".join([format_sse(event) for event in events])

"""Streaming a collection response: its first item produced before the status line is sent,
the source closed when the client goes away, and the ``Content-Range`` of a counted page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ..http.request import Request
from ..query.model import Query

__all__ = ["content_range", "nothing", "peeked", "shown_count", "until_disconnect"]


def shown_count(query: Query, total: int) -> int:
    start = query.offset or 0
    return max(0, min(total - start, query.limit if query.limit is not None else total))


def content_range(query: Query, total: int) -> str:
    shown = shown_count(query, total)
    start = query.offset or 0
    return f"items {start}-{start + shown - 1}/{total}" if shown else f"items */{total}"


async def nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def peeked(values: Any) -> AsyncIterator[Any]:
    """``values`` with the first item already produced, so that its errors (a query that fails
    to run) surface in the caller, before a status line or an opening bracket is sent."""
    iterator = values.__aiter__()

    async def close() -> None:
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()

    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        return nothing()
    except BaseException:
        await close()
        raise

    async def rest() -> AsyncIterator[Any]:
        try:
            yield first
            async for value in iterator:
                yield value
        finally:
            await close()

    return rest()


async def until_disconnect(request: Request, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` until the client goes away; then the source is closed, so reading stops."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        async for chunk in chunks:
            if watcher.done():
                break
            yield chunk
    finally:
        watcher.cancel()
        await chunks.aclose()  # type: ignore[attr-defined]

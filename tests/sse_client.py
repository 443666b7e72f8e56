"""Reading a Server-Sent Events subscription from a real server one message at a time (the
in-process ``TestClient`` buffers a response whole, so a stream that never ends is read here).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

WAIT = 30.0  # seconds to wait for a message before the test fails (never a timing assertion)


@dataclass
class Message:
    """One SSE message: ``event`` (``message`` by default), its ``id:`` and JSON ``data``;
    or a comment (``comment`` set)."""

    event: str = "message"
    id: int | None = None
    data: Any = None
    comment: str | None = None


class SSE:
    """An open subscription; ``status`` and ``body`` are set when the server refused it."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status = response.status_code
        self.lines = response.aiter_lines()
        self.ended = False

    async def message(self, *, comments: bool = False, wait: float = WAIT) -> Message:
        """The next message (comments skipped unless ``comments``); ``EOFError`` at the end."""
        async with asyncio.timeout(wait):  # keep-alive comments do not extend it
            while True:
                found = await self._read()
                if found.comment is None or comments:
                    return found

    async def _read(self) -> Message:
        found = Message()
        seen = False
        while True:
            try:
                line = await anext(self.lines)
            except StopAsyncIteration:
                self.ended = True
                raise EOFError("the stream ended") from None
            if not line:
                if seen:
                    return found
                continue
            seen = True
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "":
                return Message(comment=value)
            if field == "event":
                found.event = value
            elif field == "id":
                found.id = int(value)
            elif field == "data":
                found.data = msgspec.json.decode(value)

    async def events(self, count: int) -> list[Message]:
        return [await self.message() for _ in range(count)]

    async def until(self, predicate: Any) -> list[Message]:
        """Messages up to and including the first one ``predicate`` accepts."""
        out: list[Message] = []
        while True:
            found = await self.message()
            out.append(found)
            if predicate(found):
                return out

    async def end(self) -> list[Message]:
        """Every message until the server ends the stream."""
        out: list[Message] = []
        with contextlib.suppress(EOFError):
            while True:
                out.append(await self.message())
        return out


@contextlib.asynccontextmanager
async def subscribe(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> AsyncIterator[SSE]:
    """``GET path`` with ``Accept: text/event-stream``; the stream is read as it comes."""
    sent = {"accept": "text/event-stream", **(headers or {})}
    async with client.stream("GET", path, headers=sent, **kwargs) as response:
        sse = SSE(response)
        if response.status_code == 200:
            opened = await sse.message(comments=True)
            assert opened.comment == "subscribed", opened
        else:
            await response.aread()
        yield sse

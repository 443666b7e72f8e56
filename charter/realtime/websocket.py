"""WebSocket transport: a subscription's events out, the client's messages in, over one socket.

Each event is a text message, the JSON of ``Event.body()`` with its ``position`` (resume with
``?lastEventId=N``). Keep-alive is the server's ping frames (uvicorn's ``ws_ping_interval``):
ASGI lets an app send no ping, and a JSON message would be one more thing a client must skip.

The socket closes with a code that says what to do next:

- ``1013`` (try again later) after a last ``{"type": "overflow", "position": N}`` message: the
  subscriber fell behind; reconnect with ``lastEventId=N`` and nothing is lost.
- ``1001`` (going away) after ``{"type": "close", "reason": ...}``: the server ended the stream
  (shutdown, sign-out, a revoked right); reconnecting says which.
- ``4401`` when the credentials stop being valid during a conversation; ``4000 + status`` for a
  refusal that cannot be an HTTP answer, or that ends a ``connect`` conversation.
- ``1011`` after an unexpected server error; ``1000`` when a conversation ends.

A client message that is refused (bad JSON, no right to publish) is answered with
``{"type": "error", "status": 403, "code": ..., "message": ...}`` and the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from ..errors import HttpError, MalformedInput, PayloadTooLarge, error_body
from ..http.types import Message, Receive, Send
from .events import Event
from .subscription import Closed, Overflow

__all__ = [
    "CLOSED",
    "INTERNAL",
    "OVERFLOW",
    "UNAUTHORIZED",
    "Socket",
    "close_code",
    "event_message",
    "serve_conversation",
    "serve_subscription",
]

log = logging.getLogger("charter.realtime")

OVERFLOW = 1013
CLOSED = 1001
INTERNAL = 1011
UNAUTHORIZED = 4401
_INCOMING = 16  # client messages a conversation may have waiting before the socket stops reading

_encode = msgspec.json.encode
_decode = msgspec.json.decode

OnMessage = Callable[[Any], Awaitable[None]]
Converse = Callable[[AsyncIterator[Any]], AsyncIterator[Any]]


def close_code(status: int) -> int:
    """The close code standing for an HTTP status (``4000 + status``)."""
    return 4000 + status if 400 <= status <= 599 else INTERNAL


def event_message(event: Event) -> str:
    """One event as a text message: its body and its position (encoded once per event,
    however many subscribers share it)."""
    cached: str | None = event.__dict__.get("_ws")
    if cached is None:
        body = event.body()
        if event.position is not None:
            body["position"] = event.position
        cached = event.__dict__["_ws"] = _encode(body).decode()
    return cached


def _error_message(exc: HttpError) -> str:
    body = error_body(exc.status_code, exc.code, exc.message, exc.details)["error"]
    return _encode({"type": "error", **body}).decode()


class Socket:
    """An accepted ASGI WebSocket: sends are serialized, and a gone client ends them quietly."""

    __slots__ = ("_lock", "_receive", "_send", "closed", "max_size")

    def __init__(self, receive: Receive, send: Send, max_size: int) -> None:
        self._receive = receive
        self._send = send
        self._lock = asyncio.Lock()
        self.closed = False
        self.max_size = max_size

    async def accept(self, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await self._send({"type": "websocket.accept", "headers": headers or []})

    async def send(self, data: str | bytes) -> None:
        message: Message = {"type": "websocket.send"}
        message["text" if isinstance(data, str) else "bytes"] = data
        await self._out(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            await self._out({"type": "websocket.close", "code": code, "reason": reason[:120]})
            self.closed = True

    async def _out(self, message: Message) -> None:
        if self.closed:
            return
        async with self._lock:
            try:
                await self._send(message)
            except OSError:  # the client went away (uvicorn's ClientDisconnected is one)
                self.closed = True

    async def receive(self) -> Any:
        """The next client message, decoded (JSON); ``_GONE`` when the client left.
        Raises ``HttpError`` (400/413) for a message that is not JSON or is too large."""
        message = await self._receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            self.closed = True
            return _GONE
        if kind != "websocket.receive":
            return _SKIP
        data = message.get("text")
        raw: str | bytes | None = data if data is not None else message.get("bytes")
        if raw is None:
            return _SKIP
        if len(raw) > self.max_size:
            raise PayloadTooLarge(f"a message is larger than {self.max_size} bytes")
        try:
            return _decode(raw)
        except msgspec.DecodeError:
            raise MalformedInput("a message must be JSON") from None


_GONE: Any = object()
_SKIP: Any = object()


async def _write_while_reading(
    write: Callable[[], Awaitable[None]], read: Callable[[], Awaitable[None]]
) -> None:
    """``write()`` in this task while one more task runs ``read()``; whichever ends first
    ends the other. (One new task, not two: an idle subscriber's memory is mostly what it
    holds while it waits.)"""
    writer = asyncio.current_task()
    reader = asyncio.ensure_future(read())
    writing = True

    def stop_writing(_: asyncio.Future[None]) -> None:
        if writing and writer is not None:
            writer.cancel()  # the client left or broke off: stop waiting to write

    reader.add_done_callback(stop_writing)
    try:
        await write()
    except asyncio.CancelledError:
        if not reader.done() or writer is None:
            raise  # cancelled from outside, not by the reader
        writer.uncancel()
    finally:
        writing = False
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def serve_subscription(
    socket: Socket, events: AsyncIterator[list[Event] | None], on_message: OnMessage
) -> None:
    """Send the subscription's events until it ends or the client leaves; hand each client
    message to ``on_message`` (a publish) meanwhile."""

    async def write() -> None:
        try:
            async for batch in events:
                for event in batch or ():
                    await socket.send(event_message(event))
                    if socket.closed:
                        return
        except Overflow as closed:
            body: dict[str, Any] = {"type": "overflow"}
            if closed.position is not None:
                body["position"] = closed.position
            await socket.send(_encode(body).decode())
            await socket.close(OVERFLOW, "fell behind: resume with lastEventId")
        except Closed as closed:
            body = {"type": "close", "reason": str(closed)}
            if closed.position is not None:
                body["position"] = closed.position
            await socket.send(_encode(body).decode())
            await socket.close(CLOSED, str(closed))
        except Exception:
            log.exception("a WebSocket subscription failed")
            await socket.close(INTERNAL)
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def read() -> None:
        while not socket.closed:
            try:
                message = await socket.receive()
                if message is _GONE:
                    return
                if message is not _SKIP:
                    await on_message(message)
            except HttpError as exc:
                await socket.send(_error_message(exc))
                if exc.status_code == 401:  # credentials no longer valid: sign in again
                    await socket.close(UNAUTHORIZED, exc.message)
                    return
            except Exception:
                log.exception("a WebSocket message failed")
                await socket.close(INTERNAL)
                return

    await _write_while_reading(write, read)
    await socket.close()


async def serve_conversation(socket: Socket, converse: Converse, admit: OnMessage) -> None:
    """A ``connect`` conversation: the client's messages (each passed to ``admit`` first, which
    checks the credentials again) are what ``converse`` reads, and what it yields is sent (a
    str as text, bytes as binary, anything else as JSON)."""
    queue: asyncio.Queue[Any] = asyncio.Queue(_INCOMING)

    async def incoming() -> AsyncIterator[Any]:
        while True:
            message = await queue.get()
            if message is _GONE:
                return
            yield message

    async def read() -> None:
        while not socket.closed:
            try:
                message = await socket.receive()
                if message is _GONE:
                    return
                if message is not _SKIP:
                    await admit(message)
                    await queue.put(message)
            except HttpError as exc:
                await socket.send(_error_message(exc))
                if exc.status_code == 401:
                    await socket.close(UNAUTHORIZED, exc.message)
                    return

    async def write() -> None:
        outgoing = converse(incoming())
        try:
            async for item in outgoing:
                if isinstance(item, Event):
                    item = event_message(item)
                elif not isinstance(item, str | bytes):
                    item = _encode(item).decode()
                await socket.send(item)
                if socket.closed:
                    return
        except HttpError as exc:
            await socket.send(_error_message(exc))
            await socket.close(close_code(exc.status_code), exc.message)
        except Exception:
            log.exception("a WebSocket connect() failed")
            await socket.close(INTERNAL)
        finally:
            closer = getattr(outgoing, "aclose", None)
            if closer is not None:
                await closer()

    await _write_while_reading(write, read)
    await socket.close()

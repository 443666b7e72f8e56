"""The bare ASGI peers: no framework, a hand-written router, msgspec for JSON and validation.

Two apps, the same code but for where a sqlite3 call runs:

- ``inline_app`` (``bare_inline``) calls sqlite3 right on the event loop, one connection. It
  blocks the loop for each call, which for sub-millisecond reads of a local file is the
  fastest any Python server can be: the **ceiling**.
- ``offload_app`` (``bare_offload``) follows the rule Charter follows, "never block the event
  loop": every sqlite3 call runs in the loop's thread pool (``loop.run_in_executor``) on that
  thread's own connection, paying a thread hop per call.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import benchdb
import msgspec
import quote
from models import Item, ItemIn, QuoteIn

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


_decode_quote_in = msgspec.json.Decoder(QuoteIn).decode
_encode = msgspec.json.Encoder().encode
_decode_item_in = msgspec.json.Decoder(ItemIn).decode
_JSON = (b"content-type", b"application/json")


def _error(status: int, code: str, message: str) -> bytes:
    return _encode({"error": {"status": status, "code": code, "message": message}})


async def _respond(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


Run = Callable[..., Awaitable[Any]]


async def _offload(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


async def _read_item(run: Run, send: Send, item_id: str) -> None:
    row = await run(benchdb.fetch_one, item_id)
    if row is None:
        await _respond(send, 404, _error(404, "NOT_FOUND", "Item not found"))
        return
    await _respond(send, 200, _encode(Item(*row)))


async def _create_item(run: Run, send: Send, receive: Receive) -> None:
    try:
        data = _decode_item_in(await _read_body(receive))
    except msgspec.ValidationError as exc:
        await _respond(send, 422, _error(422, "INVALID_PROPERTIES", str(exc)))
        return
    except msgspec.DecodeError as exc:
        await _respond(send, 400, _error(400, "MALFORMED_INPUT", str(exc)))
        return
    item = Item(
        id=data.id if data.id is not None else str(uuid.uuid4()),
        name=data.name,
        category=data.category,
        price=data.price,
        stock=data.stock,
    )
    try:
        await run(benchdb.insert, (item.id, item.name, item.category, item.price, item.stock))
    except sqlite3.IntegrityError:
        await _respond(send, 409, _error(409, "CONFLICT", "Item exists"))
        return
    location = (b"location", f"/Item/{item.id}".encode())
    await _respond(send, 201, _encode(item), [location])


async def _list_items(run: Run, send: Send, query_string: str) -> None:
    category = None
    for part in query_string.split("&"):
        key, sep, value = part.partition("=")
        if sep and key == "category":
            category = value
    if category is None:
        await _respond(send, 400, _error(400, "INVALID_QUERY", "category is required"))
        return
    rows = await run(benchdb.query_rows, category, query_string)
    if rows is None:
        await _respond(send, 400, _error(400, "INVALID_QUERY", benchdb.QUERY_REFUSED))
        return
    await _respond(send, 200, _encode([Item(*row) for row in rows]))


async def _lifespan(run: Run, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await run(benchdb.create_schema)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _app(run: Run, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(run, receive, send)
        return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    method: str = scope["method"]
    if path.startswith("/Item/"):
        rest = path[len("/Item/") :]
        if rest == "":
            if method == "GET":
                await _list_items(run, send, scope["query_string"].decode("latin-1"))
                return
            if method == "POST":
                await _create_item(run, send, receive)
                return
            await _respond(send, 405, _error(405, "METHOD_NOT_ALLOWED", "method not allowed"))
            return
        if "/" not in rest:
            if method == "GET":
                await _read_item(run, send, rest)
                return
            await _respond(send, 405, _error(405, "METHOD_NOT_ALLOWED", "method not allowed"))
            return
    if path == "/rpc/quote" and method == "POST":
        try:
            order = _decode_quote_in(await _read_body(receive)).order
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            await _respond(send, 422, _error(422, "INVALID_PROPERTIES", str(exc)))
            return
        await _respond(send, 200, _encode(quote.price(order.product_id, order.qty, order.express)))
        return
    await _respond(send, 404, _error(404, "NOT_FOUND", "no such route"))


async def inline_app(scope: Scope, receive: Receive, send: Send) -> None:
    """sqlite3 on the event loop: the ceiling."""
    await _app(_inline, scope, receive, send)


async def offload_app(scope: Scope, receive: Receive, send: Send) -> None:
    """sqlite3 in the loop's thread pool, as a server that never blocks its loop does."""
    await _app(_offload, scope, receive, send)

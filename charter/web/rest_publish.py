"""Publishing a message to a record's topic (SPEC section 8): ``POST /Table/{id}`` over HTTP,
and each client message of a WebSocket on ``/Table/{id}``.

``POST /Table/{id}`` was free (a record is created with ``POST /Table/`` and replaced with
``PUT``), so, as in HarperDB, it reaches the record's ``publish``; a static ``@post`` method of
the same name as the id keeps its path. The body is the message (JSON, msgpack or CBOR; a form
is refused: a message is not a record's fields); the answer is 204 once it is logged, in the
request's transaction, for the subscribers of every worker.

A publish is a write to the record's topic: the caller needs the ``update`` right, checked
before ``publish`` runs, so an override that forgets ``super()`` still cannot be reached
without it (the default also applies the write rule and ``allow_update``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import HttpError, MethodNotAllowed, NotFound, UnsupportedMediaType
from ..http.codecs import SUFFIXES, for_request
from ..http.forms import Form
from ..http.request import Request
from ..http.response import Response
from ..http.routing import Route, decode_segment
from ..model.table import maybe_await
from ..runtime.access import UPDATE
from ..runtime.context import RequestContext, current_context

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["publish_as", "publish_route"]


async def publish_as(
    runtime: TableRuntime, key: Any, message: Any, context: RequestContext | None
) -> None:
    """``publish(message)`` on the record ``key``, acting for ``context``'s user (401/403
    without the ``update`` right)."""
    access = runtime.access(context)
    if not access.unrestricted:
        access.require(context, runtime.name, UPDATE)
    instance = runtime.cls._blank(key, context, acting=True)
    await maybe_await(instance.publish(message))


def publish_route(runtime: TableRuntime) -> Route:
    """``POST /Table/{id}``: the message in the body published to the record's topic."""
    base = "/" + quote(runtime.name)
    properties = frozenset(runtime.schema.fields) | frozenset(runtime.schema.relationships)

    async def publish(request: Request, id: str) -> Response:
        raw = request.raw_path[len(base) + 1 :]  # as sent: an encoded ``/`` is part of the key
        dot = raw.rfind(".")  # a literal dot starts a suffix or a property, as for a GET
        if dot > 0 and (raw[dot:].lower() in SUFFIXES or raw[dot + 1 :] in properties):
            raise MethodNotAllowed(
                f"POST is not allowed on {request.path}", headers={"allow": "GET, HEAD"}
            )
        key = runtime.schema.coerce_key(decode_segment(raw))
        if key is None:
            raise NotFound(f"{runtime.name} {raw!r} not found")
        codec = for_request(request.header("content-type"))
        body = await request.body()
        if not body:
            raise HttpError(400, "a message is required", code="MALFORMED_INPUT")
        message = codec.decode(body)
        if isinstance(message, Form):
            raise UnsupportedMediaType("a message is JSON, msgpack or CBOR, not a form")
        await publish_as(runtime, key, message, current_context())
        return Response(204)

    name = f"{runtime.name}.publish"
    return Route("POST", base + "/{id}", publish, name, "table", {"table": runtime.name})

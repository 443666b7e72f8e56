"""WebSocket on a table's REST paths (SPEC section 8): ``/T/{id}``, ``/T/``, ``/T/prefix/`` and
``/T/?query`` subscribe as SSE does, and the client's messages reach the record's ``publish``.
A table that defines ``connect(self, incoming)`` holds the conversation itself instead.

The handshake is served as the ``GET`` it is: the app's pipeline routes it, identifies the
caller, runs the middleware and the handler in a transaction, so a refusal is the same error
envelope as over HTTP, sent as the handshake's HTTP answer (``websocket.http.response``) or,
when the server cannot, as close code ``4000 + status``. Parameters: those of SSE
(``startTime``, ``previousCount``, ``omitCurrent``, a query), ``lastEventId=N`` to resume after
position N (or a ``Last-Event-ID`` header), and ``access_token=`` for a browser, which cannot
set headers on a WebSocket (it is taken out of the query and used as a Bearer token).

A cookie or Basic sign-in is sent by the browser whichever page opens the socket, and no CORS
guards a WebSocket: such a handshake must come from the app's own origin or a trusted one
(``Origin``), else 403. Each client message checks the credentials again (a sign-out or an
expired token closes the socket with 4401). See ``realtime/websocket.py`` for the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ..auth.authenticate import VIA_COOKIE
from ..auth.cookies import check_origin
from ..errors import HttpError, MethodNotAllowed, NotFound
from ..http.request import Request
from ..http.response import Response
from ..http.types import Message, Receive, Scope, Send
from ..query.model import Query
from ..realtime.stream import open_stream
from ..realtime.websocket import Socket, close_code, serve_conversation, serve_subscription
from ..runtime.access import READ
from ..runtime.context import RequestContext, current_context
from ..runtime.transaction import Transaction, run_in_transaction
from .dispatch import Dispatcher, error_response
from .rest_events import realtime_options, subscribe_path, subscribe_sse, topic_of, wants_events
from .rest_publish import publish_as

if TYPE_CHECKING:
    from ..realtime.hub import Hub
    from ..runtime.tables import TableRuntime
    from .rest import TableResource

__all__ = ["WebSocketEndpoint", "subscribe", "subscribe_at", "wants_subscription"]

HANDSHAKE = "charter.websocket"
"""The key of the handshake's ``Handshake`` in the scope its ``Request`` is built on."""

_ACCEPTED = 101  # the status a handler answers a handshake it accepts with


class Handshake:
    """One WebSocket request on its way to acceptance: what the handler accepted."""

    __slots__ = ("context", "last_event_id", "runtime", "serve", "trusted_origins")

    def __init__(self, trusted_origins: Collection[str]) -> None:
        self.trusted_origins = trusted_origins
        self.last_event_id: str | None = None
        self.context: RequestContext | None = None
        self.runtime: TableRuntime | None = None
        self.serve: Any = None  # (socket, session) -> the conversation, once accepted
        # (a handler re-run after a conflict replaces it: ``drop`` releases the old one)

    def http_scope(self, scope: Scope) -> Scope:
        """The handshake as the GET it is, without ``access_token`` and ``lastEventId`` in its
        query (the token becomes a Bearer header when no Authorization is sent)."""
        headers = list(scope.get("headers", ()))
        keep: list[str] = []
        token: str | None = None
        raw: bytes = scope.get("query_string", b"")
        for part in raw.decode("latin-1").split("&") if raw else ():
            name, _, value = part.partition("=")
            if name == "access_token":
                token = unquote(value)
            elif name == "lastEventId":
                self.last_event_id = unquote(value)
            else:
                keep.append(part)
        if token is not None and not any(k == b"authorization" for k, _ in headers):
            headers.append((b"authorization", b"Bearer " + token.encode("latin-1", "replace")))
        secure = scope.get("scheme") == "wss"
        return {
            **scope,
            "method": "GET",
            "scheme": "https" if secure else "http",
            "headers": headers,
            "query_string": "&".join(keep).encode("latin-1"),
            HANDSHAKE: self,
        }

    def check_origin(self, request: Request, context: RequestContext | None) -> None:
        """403 for a handshake signed in by what a browser sends by itself (a cookie, Basic)
        from a page of another origin."""
        basic = (request.header("authorization") or "").lower().startswith("basic ")
        if context is not None and (basic or context.extra.get(VIA_COOKIE)):
            check_origin(request, self.trusted_origins)

    async def drop(self) -> None:
        serve, self.serve = self.serve, None
        closer = getattr(serve, "close", None)
        if closer is not None:
            await closer()


# -- the handlers' side (called by rest.py for a table's paths) ------------------------------------


def wants_subscription(request: Request) -> bool:
    """Whether a request subscribes: SSE (``Accept: text/event-stream``) or a WebSocket."""
    return HANDSHAKE in request.scope or wants_events(request)


async def subscribe(resource: TableResource, hub: Hub, request: Request) -> Response:
    """The collection path subscribed (``/T/``, ``/T/?query``), over SSE or a WebSocket."""
    if HANDSHAKE not in request.scope:
        return await subscribe_sse(resource, hub, request)
    return await _accept(resource, hub, request)


async def subscribe_at(resource: TableResource, hub: Hub, request: Request, raw: str) -> Response:
    """``/T/{id}`` or ``/T/prefix/`` (``raw``: the path after the table) subscribed."""
    if HANDSHAKE not in request.scope:
        return await subscribe_path(resource, hub, request, raw)
    return await _accept(resource, hub, request, **topic_of(resource, request, raw))


async def _accept(
    resource: TableResource,
    hub: Hub,
    request: Request,
    *,
    key: Any = None,
    prefix: str | None = None,
) -> Response:
    """Check the handshake (origin, rights, parameters), open what it asks for, and accept."""
    handshake: Handshake = request.scope[HANDSHAKE]
    context = current_context()
    handshake.check_origin(request, context)
    runtime = resource.runtime
    await handshake.drop()
    handshake.context, handshake.runtime = context, runtime
    if "connect" in runtime.cls.__charter_overrides__:
        access = runtime.access(context)
        if not access.unrestricted:
            access.require(context, runtime.name, READ)
        if key is not None:
            instance = await runtime.load_as(key, context)
        else:
            instance = runtime.cls._blank(None, context)
        instance._context, instance._acting = context, context is not None
        handshake.serve = _Conversation(instance)
        return Response(_ACCEPTED)
    last = handshake.last_event_id or request.header("last-event-id")
    options, text = realtime_options(request.query_string, last)
    options.key, options.prefix = key, prefix
    if key is None and text:
        query: Query = await resource.query_of(text, resource._access_of(context))
        if query.select is not None or query.explain:
            raise HttpError(400, "a subscription's query selects records", code="INVALID_QUERY")
        options.query = query
    elif key is not None and text:
        raise HttpError(400, "a subscription to one record takes no query", code="INVALID_QUERY")
    _, events = await open_stream(hub, runtime, options, context)
    handshake.serve = _Subscribed(events, key)
    return Response(_ACCEPTED)


class _Subscribed:
    """The default conversation: the subscription's events out, messages to ``publish``."""

    __slots__ = ("events", "key")

    def __init__(self, events: AsyncIterator[Any], key: Any) -> None:
        self.events = events
        self.key = key

    async def close(self) -> None:
        await self.events.aclose()  # type: ignore[attr-defined]

    async def __call__(self, socket: Socket, session: _Session) -> None:
        async def on_message(message: Any) -> None:
            await session.admit(message)
            if self.key is None:
                raise MethodNotAllowed("messages are published on a record's path (/Table/{id})")
            await session.publish(self.key, message)

        await serve_subscription(socket, self.events, on_message)


class _Conversation:
    """A table's ``connect(self, incoming)``: its async iterator is what the client gets."""

    __slots__ = ("instance",)

    def __init__(self, instance: Any) -> None:
        self.instance = instance

    async def __call__(self, socket: Socket, session: _Session) -> None:
        await serve_conversation(socket, self.instance.connect, session.admit)


class _Session:
    """What an accepted socket's messages run with: the handshake's identity, checked again
    for each message, and a transaction per publish."""

    __slots__ = ("context", "dispatcher", "request", "runtime")

    def __init__(
        self, dispatcher: Dispatcher, request: Request, context: RequestContext, runtime: Any
    ) -> None:
        self.dispatcher = dispatcher
        self.request = request
        self.context = context
        self.runtime = runtime

    async def admit(self, message: Any) -> None:
        """401 when the handshake's credentials are no longer valid (sign-out, expiry)."""
        identify = self.dispatcher.identify
        if identify is not None:
            await identify(self.request, self.context)

    async def publish(self, key: Any, message: Any) -> None:
        context = self.context

        async def run(txn: Transaction) -> None:
            context.transaction = txn
            await publish_as(self.runtime, key, message, context)

        try:  # the socket's tasks run in the context (entered once: it is not re-entrant)
            await run_in_transaction(self.dispatcher.database, run, join=False)
        finally:
            context.transaction = None


# -- the ASGI side ---------------------------------------------------------------------------------


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


class WebSocketEndpoint:
    """Serves ASGI ``websocket`` calls for an app (module docstring).

    Args:
        trusted_origins: origins besides the app's own whose pages may open a socket signed in
            by cookie or Basic (the CORS origins allowed with credentials).
    """

    def __init__(self, dispatcher: Dispatcher, trusted_origins: Collection[str] = ()) -> None:
        self.dispatcher = dispatcher
        self.trusted_origins = frozenset(o.lower() for o in trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        handshake = Handshake(self.trusted_origins)
        http_scope = handshake.http_scope(scope)
        request = Request(http_scope, _no_body, self.dispatcher.max_body_size)
        try:
            route, _ = self.dispatcher.router.match("GET", request.raw_path)
            if route.kind != "table" or not route.name.endswith((".collection", ".record")):
                raise NotFound(f"no WebSocket at {request.path}")
        except HttpError as exc:
            await _refuse(scope, send, error_response(exc))
            return
        response = await self.dispatcher.handle(request)
        serve, context = handshake.serve, handshake.context
        if response.status != _ACCEPTED or serve is None or context is None:
            await handshake.drop()
            closer = getattr(response.stream, "aclose", None)
            if closer is not None:
                await closer()
            if response.status < 400:
                response = error_response(NotFound(f"no WebSocket at {request.path}"))
            await _refuse(scope, send, response)
            return
        context.transaction = None
        session = _Session(self.dispatcher, request, context, handshake.runtime)
        socket = Socket(receive, send, self.dispatcher.max_body_size)
        with context:
            try:
                await socket.accept()
            except BaseException:
                await handshake.drop()
                raise
            await serve(socket, session)


async def _refuse(scope: Scope, send: Send, response: Response) -> None:
    """A refused handshake: the response over HTTP when the server can send one, else a close
    code standing for its status."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": close_code(response.status)})
        return
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    await send(
        {"type": "websocket.http.response.start", "status": response.status, "headers": headers}
    )
    body = response.body if response.stream is None else b""
    await send({"type": "websocket.http.response.body", "body": body})

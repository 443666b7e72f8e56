"""The request pipeline: route, context, identity, middleware, transaction, handler, errors,
CORS, send.

The middleware a route selects (``web/middleware.py``) runs around the handler, outside its
transaction; every handler runs inside one transaction committed before the response is sent.
Any error becomes the one envelope of ``errors.error_body``; an unexpected one is logged in full
and answered with a 500 that reveals nothing of the server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..auth.cookies import SESSION_COOKIE
from ..config import Config
from ..errors import ClientDisconnected, HttpError, MethodNotAllowed, error_body, status_error
from ..http.codecs import JSON, Codec, negotiate
from ..http.cors import CORS
from ..http.request import Request
from ..http.response import Response
from ..http.routing import Route, Router
from ..http.types import CONNECTION, Connection, Receive, Scope, Send
from ..runtime.context import RequestContext
from ..runtime.shared import SharedStore
from ..runtime.transaction import Transaction, run_in_transaction
from ..storage import Storage
from .channel import ChannelServer, Opened, is_sealed
from .middleware import Chain, Middleware, chain_for, run_chain

__all__ = ["Dispatcher", "Identify", "error_response"]

Identify = Callable[[Request, RequestContext], Awaitable[None]]
"""Sets ``context.user`` and ``context.role`` from the request's credentials (auth on)."""

log = logging.getLogger("charter.http")

_VARY = "Authorization, Cookie"


BASIC_CHALLENGE = 'Basic realm="charter", charset="UTF-8"'
BEARER_CHALLENGE = 'Bearer realm="charter"'


def error_response(
    exc: HttpError, codec: Codec = JSON, challenge: str = BASIC_CHALLENGE
) -> Response:
    """The envelope response for an ``HttpError`` (``challenge``: a 401's WWW-Authenticate)."""
    if codec.media_type == "text/csv":
        codec = JSON
    body = error_body(exc.status_code, exc.code, exc.message, exc.details)
    headers = {"content-type": codec.media_type, **exc.headers}
    if exc.status_code == 401:
        headers.setdefault("www-authenticate", challenge)
    if exc.status_code in (429, 503):
        headers.setdefault("retry-after", "1")
    return Response(exc.status_code, codec.encode(body), headers)


def _challenge(request: Request) -> str:
    """A browser signed in by its session cookie gets a Bearer challenge: a Basic one would make
    it open its own sign-in box over the page. Everyone else is offered Basic."""
    if request.header("authorization") is None and f"{SESSION_COOKIE}=" in (
        request.header("cookie") or ""
    ):
        return BEARER_CHALLENGE
    return BASIC_CHALLENGE


def _internal(codec: Codec) -> Response:
    body = error_body(500, "INTERNAL", "internal server error")
    return Response(500, codec.encode(body), {"content-type": codec.media_type})


def _connection(scope: Scope) -> Connection | None:
    """The server's ``Connection`` for this request, when it offers one."""
    extensions = scope.get("extensions")
    return extensions.get(CONNECTION) if extensions else None


class Dispatcher:
    """Turns ASGI http calls into handler calls."""

    def __init__(
        self,
        router: Router,
        database: Storage,
        config: Config,
        cors: CORS | None,
        identify: Identify | None = None,
        middleware: Sequence[Middleware] = (),
        shared: SharedStore | None = None,
        channel: ChannelServer | None = None,
    ) -> None:
        self.router = router
        self.channel = channel
        self.identify = identify
        self.database = database
        self.config = config
        self.max_body_size = config.max_body_size
        self.cors = cors
        self.shared = shared
        self.middleware = tuple(middleware)
        # Per route, the middleware it runs, decided once (keyed by the route's identity).
        self._chains: dict[int, Chain] = {
            id(route): chain_for(route, self.middleware) for route in router.routes
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, self.max_body_size)
        method = request.method
        origin = request.header("origin") if self.cors is not None else None
        if (
            origin is not None
            and method == "OPTIONS"
            and self.cors is not None
            and request.header("access-control-request-method")
            and self.cors.origin_allowed(origin)
        ):
            headers = self.cors.preflight(origin, request.header("access-control-request-headers"))
            await Response(204, headers=headers).send(send)
            return
        response = await self.handle(request)
        if origin is not None and self.cors is not None and self.cors.origin_allowed(origin):
            response.headers.update(self.cors.headers(origin))
        if self.identify is not None:
            # What a response shows depends on who asked: no shared cache may serve it to
            # another user (a cookie-signed request is cacheable by a proxy otherwise).
            vary = response.headers.get("vary")
            response.headers["vary"] = f"{vary}, {_VARY}" if vary else _VARY
        if response.stream is None:
            try:
                await response.send(send, head=method == "HEAD")
            except OSError:
                log.debug("client went away while %s %s was sent", method, request.path)
            return
        connection = _connection(scope)
        try:
            await response.send(send, head=method == "HEAD", connection=connection)
        except OSError:
            log.debug("client went away while %s %s was sent", method, request.path)
        except Exception:
            # The status line is out: an envelope is no longer possible. Drop the connection
            # without the final chunk, so no client takes the cut body for a whole one.
            log.exception("%s %s failed while its body was sent", method, request.path)
            if connection is None:
                raise  # the server closes the connection on an error after the start
            connection.abort()

    async def handle(self, request: Request) -> Response:
        """The response for one request (errors included)."""
        opened: Opened | None = None
        try:
            route, params = self.router.match(request.method, request.raw_path)
            context = RequestContext(request, auth=self.config.auth, storage=self.database)
            context.endpoint = route.name
            context.egroup = route.meta.get("egroup")
            context.shared = self.shared
            if self.identify is not None:
                await self.identify(request, context)
            if self.channel is not None and route.kind == "rpc" and is_sealed(request):
                # -- encrypted channel (web/channel.py): opened here, then the plain call's
                # path from here on (middleware, permission checks, transaction) --
                opened = await self.channel.open(request, route)
        except Exception as exc:
            return self._error(exc, request)
        if opened is None:
            return await self._handle(route, params, context)
        assert self.channel is not None
        response = await self._handle(route, params, context)
        try:
            return await self.channel.seal(opened, response)
        except Exception as exc:
            return self._error(exc, request)

    async def _handle(
        self, route: Route, params: dict[str, str], context: RequestContext
    ) -> Response:
        """The response of the route's middleware and handler (errors included)."""
        request = context.request
        assert request is not None
        with context:
            if not self.middleware:
                return await self._respond(route, params, context)
            # -- middleware (web/middleware.py): after identification, around the handler --
            chain = self._chains.get(id(route))
            if chain is None:  # a route added after the app was built
                chain = self._chains[id(route)] = chain_for(route, self.middleware)
            if not chain:
                return await self._respond(route, params, context)
            return await run_chain(
                chain,
                context,
                lambda: self._respond(route, params, context),
                lambda exc, name: self._error(exc, request, f"middleware {name}"),
            )

    async def _respond(
        self, route: Route, params: dict[str, str], context: RequestContext
    ) -> Response:
        """The handler's response, run in its transaction and committed; or the error's."""
        request = context.request
        assert request is not None
        try:

            async def run(txn: Transaction) -> Any:
                context.transaction = txn
                return await route.handler(request, **params)

            # A request never joins its caller's transaction (an in-process test client
            # calls the app inside the caller's context).
            response, _ = await run_in_transaction(self.database, run, join=False)
            if not isinstance(response, Response):
                raise TypeError(f"handler {route.name} returned {type(response).__name__}")
            if context.response_headers:
                response.headers.update(context.response_headers)
            return response
        except Exception as exc:
            return self._error(exc, request)

    def _error(self, exc: Exception, request: Request, where: str | None = None) -> Response:
        """The envelope response for an exception (a 500 that reveals nothing when unexpected)."""
        if isinstance(exc, HttpError):
            if isinstance(exc, ClientDisconnected):
                return Response(499)
            if isinstance(exc, MethodNotAllowed) and request.method == "OPTIONS":
                return Response(204, headers={"allow": exc.headers["allow"]})
            return error_response(exc, self._error_codec(request), _challenge(request))
        converted = status_error(exc)
        if converted is not None:
            return error_response(converted, self._error_codec(request))
        log.error(
            "unhandled error in %s%s %s",
            f"{where} of " if where else "",
            request.method,
            request.path,
            exc_info=exc,
        )
        return _internal(self._error_codec(request))

    @staticmethod
    def _error_codec(request: Request) -> Codec:
        try:
            return negotiate(request.header("accept"))
        except HttpError:
            return JSON

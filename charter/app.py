"""``App``: the declared tables, services and routes, built once into an ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar, overload

from .auth.authenticate import Authenticator
from .auth.directory import Directory, check_roles
from .auth.endpoints import auth_routes
from .auth.signin import SignIn
from .config import Config
from .errors import CharterError
from .http.cors import CORS
from .http.routing import Route, Router
from .http.types import Receive, Scope, Send
from .model.methods import Service
from .model.operations import MappedRoute
from .model.roles import Role
from .model.table import Table, bind_runtime
from .realtime.credentials import watch_credentials
from .realtime.hub import Hub
from .realtime.mqtt import MqttBridge, anonymous_identity
from .runtime.collector import tune_collector
from .runtime.entities import register_tables
from .runtime.events import EventBus
from .runtime.shared import SharedStore, open_shared
from .runtime.storage_proxy import StorageProxy
from .runtime.tables import TableRuntime
from .runtime.transaction import Transaction, run_transaction, transaction_block
from .schema import TableSchema, build_schema
from .sources.caches import Caches
from .storage import Storage, open_storage
from .web.channel import ChannelServer
from .web.dispatch import Dispatcher
from .web.mapped import mapped_route
from .web.middleware import Middleware, MiddlewareFn, as_middleware, check_filters
from .web.openapi import OpenAPIEndpoint, build_openapi
from .web.rate_limit import check_rate_limits
from .web.rest import add_table_routes, describe_table
from .web.rest_publish import publish_route
from .web.routes import contract_route, service_routes, table_method_routes
from .web.websocket import WebSocketEndpoint

__all__ = ["App"]

log = logging.getLogger("charter")
T = TypeVar("T")


class App:
    """A Charter application (an ASGI callable).

    Args:
        tables: ``Table`` subclasses served as REST resources.
        services: RPC service classes.
        routes: functions decorated with ``@route``, and ``map_route(...)`` declarations.
        middleware: ``Middleware`` (or async functions, for every route), outermost first
            (docs/middleware.md).
        database: ``sqlite:///path`` (default ``./data/charter.db``) or ``postgresql://...``.
        auth: False (the default): every request acts as a super user. True: requests sign in
            (HTTP Basic, Bearer tokens from ``POST /auth/login``, or a cookie session) and act
            as their user's role; a request that does not sign in acts as the role
            ``anonymous``, which has no rights unless granted. ``debug`` names a feature not
            built yet and raises ``CharterError``.
        roles: ``Role`` declarations, kept in step with the roles system table at start.
        shared: the store of ``app.shared``: None (in-process, one per worker) or a Redis URL.
        mqtt: a broker URL (``mqtt://[user:password@]host:1883``, ``mqtts://`` for TLS): every
            change is published retained on ``Table/{id}`` and client messages there reach
            ``publish()`` as the role ``anonymous`` (docs/mqtt.md). Needs
            ``aiomqtt`` (the ``charter[mqtt]`` extra).
        validate_responses: check responses against their declared contracts.
        cors: a ``CORS`` policy, True for any origin, or None (off).
        max_body_size: largest accepted request body, in bytes (413 above).
        pool_size: database connections per worker process (PostgreSQL; default 10).
        pool_timeout: seconds a request waits for a free connection, then 503 (PostgreSQL).
        header_timeout, body_timeout, idle_timeout, send_timeout: connection timeouts in
            seconds, and max_url_length, max_header_size: limits in bytes, enforced by the
            server protocol of ``charter serve`` (docs/cli.md).
        access_token_ttl: seconds an access token lives (default 900).
        refresh_token_ttl: seconds a refresh token, or a cookie session, lives unused
            (default 14 days).
        signin_limit, signin_address_limit: failed sign-ins allowed per username (default
            10) and per client address (default 50) in each ``signin_window`` seconds
            (default 300); past them 429.
        secret: the key tokens are signed with (at least 32 characters; better given as
            ``CHARTER_SECRET``); by default one is made once and kept in the database.
        event_retention, event_retention_count: how long (seconds, default a day) and how many
            events (default 100,000) the event log keeps for subscribers to resume from.
        subscriber_buffer: events a subscriber may have waiting (default 1,000); one that falls
            further behind is closed with its position, to resume without loss.
        keepalive: seconds between keep-alive comments on an idle event stream (default 15).
        channel_ttl: seconds an encrypted RPC channel session lives from its handshake
            (default 3600; docs/crypto.md).
        gc_threshold: objects Python's garbage collector lets accumulate before it runs its
            first generation, set at start (default 10,000, Python's own 700; 0: untouched).
    """

    def __init__(
        self,
        tables: Sequence[type[Table]] = (),
        services: Sequence[Any] = (),
        routes: Sequence[Any] = (),
        middleware: Sequence[Middleware | MiddlewareFn] = (),
        database: str | None = None,
        auth: bool | None = None,
        roles: Sequence[Role] = (),
        shared: str | None = None,
        mqtt: str | None = None,
        validate_responses: bool | None = None,
        cors: CORS | bool | None = None,
        max_body_size: int | None = None,
        debug: bool | None = None,
        pool_size: int | None = None,
        pool_timeout: float | None = None,
        header_timeout: float | None = None,
        body_timeout: float | None = None,
        idle_timeout: float | None = None,
        send_timeout: float | None = None,
        max_url_length: int | None = None,
        max_header_size: int | None = None,
        access_token_ttl: float | None = None,
        refresh_token_ttl: float | None = None,
        signin_limit: int | None = None,
        signin_address_limit: int | None = None,
        signin_window: float | None = None,
        secret: str | None = None,
        event_retention: float | None = None,
        event_retention_count: int | None = None,
        subscriber_buffer: int | None = None,
        keepalive: float | None = None,
        channel_ttl: float | None = None,
        gc_threshold: int | None = None,
    ) -> None:
        self.config = Config.build(
            database=database,
            auth=auth,
            shared=shared,
            mqtt=mqtt,
            validate_responses=validate_responses,
            max_body_size=max_body_size,
            debug=debug,
            pool_size=pool_size,
            pool_timeout=pool_timeout,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            idle_timeout=idle_timeout,
            send_timeout=send_timeout,
            max_url_length=max_url_length,
            max_header_size=max_header_size,
            access_token_ttl=access_token_ttl,
            refresh_token_ttl=refresh_token_ttl,
            signin_limit=signin_limit,
            signin_address_limit=signin_address_limit,
            signin_window=signin_window,
            secret=secret,
            event_retention=event_retention,
            event_retention_count=event_retention_count,
            subscriber_buffer=subscriber_buffer,
            keepalive=keepalive,
            channel_ttl=channel_ttl,
            gc_threshold=gc_threshold,
        )
        if cors is True:
            cors = CORS()
        if self.config.cors_origins:
            cors = CORS(allow_origins=self.config.cors_origins)
        self.cors: CORS | None = cors or None
        self.services = list(services)
        self.events = EventBus()
        self.database: Storage = open_storage(
            self.config.database,
            pool_size=self.config.pool_size,
            pool_timeout=self.config.pool_timeout,
        )
        self.tables: dict[str, TableRuntime] = {}
        self.hub = Hub(self.database, self.tables, self.events, self.config)
        self.mqtt: MqttBridge | None = None  # made below, once the directory exists
        self.router = Router()
        self._openapi = OpenAPIEndpoint(  # per role
            self.tables, lambda: self.router.routes, auth=self.config.auth
        )
        self._build_tables(tables)
        for service in self.services:
            instance = service() if isinstance(service, type) else service
            if not isinstance(instance, Service):
                raise CharterError(f"App(services=...) takes Service subclasses, not {service!r}")
            instance.app = self  # a service knows its app
            for rpc_route in service_routes(self.tables, instance, self.router.routes):
                self._add_unique(rpc_route)
        for extra in routes:
            self.add_route(extra)
        self.router.add(Route("GET", "/openapi.json", self._openapi, "openapi", "meta"))
        self.storage = StorageProxy(self.database, self.tables, self)
        self.directory = Directory(
            self.database, check_roles(roles, {n: r.schema for n, r in self.tables.items()})
        )
        self.sign_in = SignIn(self.directory, self.database, self.config)
        if self.config.mqtt is not None:
            identity = anonymous_identity(self.config.auth, self.database, self.directory.role)
            self.mqtt = MqttBridge(
                self.config.mqtt, self.database, self.tables, self.events, identity
            )
        identify = None
        if self.config.auth:
            trusted = _credential_origins(self.cors)
            identify = Authenticator(self.directory, self.sign_in, trusted)
            watch_credentials(self.hub, self.sign_in)  # subscriptions end with credentials
            if "auth" in self.tables:
                raise CharterError("a table named 'auth' would hide the /auth endpoints")
            for auth_route in auth_routes(self.directory, self.sign_in, trusted):
                self._add_unique(auth_route)
        # -- middleware and app.shared (docs/middleware.md) --
        self.middleware = [as_middleware(item) for item in middleware]
        check_filters(self.middleware, self.router.routes)
        check_rate_limits(self.middleware)
        self.shared: SharedStore = open_shared(self.config.shared)
        self.sign_in.use_counter(self.shared)  # failed sign-ins counted across workers (Redis)
        # -- the encrypted RPC channel (docs/crypto.md) --
        self.channel = ChannelServer(self.database, self.shared, self.config.channel_ttl)
        self._add_unique(self.channel.route())
        self._dispatcher = Dispatcher(
            self.router,
            self.database,
            self.config,
            self.cors,
            identify,
            self.middleware,
            self.shared,
            self.channel,
        )
        self._websocket = WebSocketEndpoint(self._dispatcher, _credential_origins(self.cors))
        self._started = False
        self._start_lock = asyncio.Lock()
        # Only a fully built app serves its tables: a failed App(...) leaves no trace on them.
        for runtime in self.tables.values():
            bind_runtime(runtime.cls, runtime)
        register_tables(self.database, self.tables)  # the entity context finds them here

    # -- building ------------------------------------------------------------------------------

    def _build_tables(self, tables: Sequence[type[Table]]) -> None:
        schemas: list[TableSchema] = []
        for cls in tables:
            if not (isinstance(cls, type) and issubclass(cls, Table)):
                raise CharterError(f"App(tables=...) takes Table subclasses, not {cls!r}")
            schema = build_schema(cls, cls.__charter_options__)
            if schema.name.startswith("_charter"):
                raise CharterError("table names starting with _charter are Charter's own")
            if schema.name in self.tables:
                raise CharterError(f"two tables are named {schema.name!r}")
            runtime = TableRuntime(
                cls,
                schema,
                storage=self.database,
                events=self.events,
                tables=self.tables,
                lifecycle=self,
            )
            self.tables[schema.name] = runtime
            schemas.append(schema)
        for schema in schemas:
            for rel in schema.relationships.values():
                if rel.target not in self.tables:
                    raise CharterError(
                        f"{schema.name}.{rel.name} relates to {rel.target}, which is not in the app"
                    )
        for runtime in self.tables.values():
            for method_route in table_method_routes(self.tables, runtime):
                self.router.add(method_route)
        self.caches = Caches(self.database, self.tables.values())  # caching tables' sources
        for runtime in self.tables.values():
            add_table_routes(self.router, runtime, self.hub)
            self.router.add(publish_route(runtime))  # POST /T/{id} (web/rest_publish.py)
            runtime.realtime = self.hub

    def add_route(self, route: Route | Any) -> None:
        """Register one endpoint: a ``Route``, a function decorated with ``@route``, or a
        ``map_route(...)``."""
        if isinstance(route, MappedRoute):
            route = mapped_route(self.tables, self.config, route)
        self._add_unique(
            route if isinstance(route, Route) else contract_route(self.tables, self.config, route)
        )

    def _add_unique(self, route: Route) -> None:
        for existing in self.router.routes:
            if existing.method == route.method and existing.path == route.path:
                raise CharterError(f"{route.method} {route.path} is declared twice")
        self.router.add(route)
        self._openapi.reset()

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document describing every endpoint."""
        return build_openapi(self.tables.values(), self.router.routes, auth=self.config.auth)

    def describe(self, table: str) -> dict[str, Any]:
        """The JSON Schema description of a table (as ``GET /Table`` answers)."""
        return describe_table(self.tables[table])

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether storage is open (between ``startup`` and ``shutdown``)."""
        return self._started

    async def startup(self) -> None:
        """Open storage: create and migrate tables. Safe to call more than once."""
        async with self._start_lock:
            if self._started:
                return
            schemas = [r.schema for r in self.tables.values()]
            system = [*self.directory.schemas, *self.sign_in.schemas, *self.channel.schemas]
            if self.mqtt is not None:
                system.extend(self.mqtt.schemas())
            await self.database.open([*schemas, *system])
            await self.shared.open()
            tune_collector(self.config.gc_threshold)
            self._started = True
            try:
                await self.directory.start(auth=self.config.auth)
                if self.config.auth:
                    await self.sign_in.start()
                await self.hub.start()
                if self.mqtt is not None:
                    await self.mqtt.start()
                await self.caches.start()
            except BaseException:
                self._started = False
                try:
                    await self.database.close()
                finally:
                    await self.shared.close()
                raise

    async def shutdown(self) -> None:
        """Finish pending commits and close storage."""
        if self._started:
            try:
                await self.caches.stop()
                if self.mqtt is not None:
                    await self.mqtt.stop()
                await self.hub.stop()
                await self.database.close()
            finally:
                await self.shared.close()
            self._started = False

    @overload
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]: ...

    @overload
    def transaction(
        self, fn: Callable[[], Awaitable[T]], *, retries: int = 0
    ) -> Coroutine[Any, Any, T]: ...

    def transaction(
        self, fn: Callable[[], Awaitable[T]] | None = None, *, retries: int | None = None
    ) -> contextlib.AbstractAsyncContextManager[Transaction] | Coroutine[Any, Any, T]:
        """An explicit transaction (docs/storage.md, "Transactions in code").

        ``async with app.transaction() as tx:`` commits the block's writes when it ends. Inside
        a current transaction (the request's, or an outer block) it is a savepoint: if the block
        raises, its writes, and only they, are undone and the exception goes on.

        ``await app.transaction(fn, retries=3)`` runs ``fn()`` the same way and returns its
        result; a conflict at commit runs it again from the start in a fresh transaction, up to
        ``retries`` times, then raises ``Conflict`` (409). Nested, ``retries`` must be 0 (a
        nested transaction commits with the outermost one, where conflicts show).
        """
        if fn is None:
            if retries is not None:
                raise TypeError(
                    "retries= needs a function to re-run: app.transaction(fn, retries=N) "
                    "(the body of an `async with` block cannot be run again)"
                )
            return transaction_block(self.database, self)
        return run_transaction(self.database, self, fn, 0 if retries is None else retries)

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self._started:
                await self.startup()
            await self._dispatcher(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":  # a table's paths (web/websocket.py)
            if not self._started:
                await self.startup()
            await self._websocket(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return


def _credential_origins(cors: CORS | None) -> tuple[str, ...]:
    """Origins whose pages may send cookie-signed requests: those CORS allows with credentials
    (a wildcard never counts)."""
    if cors is None or not cors.allow_credentials:
        return ()
    return tuple(o for o in cors.allow_origins if o != "*")

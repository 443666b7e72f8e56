"""``TestClient``: drive an app in-process, sync or async, with its lifespan run.

with TestClient(app) as client:            # sync: the app runs on a background loop
    client.post("/Product/", json={...})
    client.run(some_coroutine())           # server-side code on the app's loop

async with TestClient(app) as client:      # async: an httpx.AsyncClient on this loop
    await client.get("/Product/1")
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar

import httpx

from .http.types import CONNECTION, ASGIApp, Message, Receive, Scope, Send

__all__ = ["TestClient"]

T = TypeVar("T")
BASE_URL = "http://testserver"


class _Lifespan:
    """Runs an ASGI app's lifespan protocol: startup on enter, shutdown on exit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._to_app: asyncio.Queue[Message] | None = None
        self._from_app: asyncio.Queue[Message] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self._to_app, self._from_app = asyncio.Queue(), asyncio.Queue()
        to_app, from_app = self._to_app, self._from_app

        async def receive() -> Message:
            return await to_app.get()

        async def send(message: Message) -> None:
            await from_app.put(message)

        async def run() -> None:
            await self.app({"type": "lifespan"}, receive, send)

        self._task = asyncio.create_task(run())
        await to_app.put({"type": "lifespan.startup"})
        message = await from_app.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"app startup failed: {message.get('message', '')}")

    async def shutdown(self) -> None:
        if self._task is None or self._to_app is None or self._from_app is None:
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._from_app.get()
        await self._task


class _Exchange:
    """One request in flight: how far its response got, and the ``Connection`` the app sees."""

    __slots__ = ("aborted", "complete", "started")

    def __init__(self) -> None:
        self.started = False
        self.complete = False
        self.aborted = False

    @property
    def closed(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


_exchange: ContextVar[_Exchange | None] = ContextVar("charter_test_exchange", default=None)


def _tracked(app: ASGIApp) -> ASGIApp:
    """``app``, recording each response's progress in the current ``_Exchange``."""

    async def tracked(scope: Scope, receive: Receive, send: Send) -> None:
        exchange = _exchange.get()
        if exchange is None or scope["type"] != "http":
            await app(scope, receive, send)
            return
        scope["extensions"] = {**scope.get("extensions", {}), CONNECTION: exchange}

        async def tracking_send(message: Message) -> None:
            if exchange.aborted:
                raise ConnectionAbortedError("the connection was dropped")
            if message["type"] == "http.response.start":
                exchange.started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                exchange.complete = True
            await send(message)

        await app(scope, receive, tracking_send)
        if exchange.aborted:
            raise ConnectionAbortedError("the app dropped the connection")

    return tracked


class _Transport(httpx.ASGITransport):
    """httpx's ASGI transport, failing as a socket would on a response cut short: a body that
    fails once the status is sent raises, never returns a complete-looking response."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app=_tracked(app), raise_app_exceptions=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        exchange = _Exchange()
        token = _exchange.set(exchange)
        try:
            response = await super().handle_async_request(request)
        finally:
            _exchange.reset(token)
        if exchange.started and not exchange.complete:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            )
        return response


class _SyncTransport(httpx.BaseTransport):
    """Sends each request to the app on the client's loop thread."""

    def __init__(self, client: TestClient) -> None:
        self._client = client
        self._asgi = _Transport(client.app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> httpx.Response:
            inner = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self._asgi.handle_async_request(inner)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self._client._run(call())


class TestClient(httpx.Client):
    """An httpx client bound to an app in-process (see the module docstring)."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: ASGIApp, base_url: str = BASE_URL, **kwargs: Any) -> None:
        self.app = app
        config = getattr(app, "config", None)
        if config is not None and getattr(config, "validate_responses", False) is None:
            config.validate_responses = True  # responses are checked under test by default
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lifespan = _Lifespan(app)
        self._async: httpx.AsyncClient | None = None
        self._async_lifespan: _Lifespan | None = None
        super().__init__(transport=_SyncTransport(self), base_url=base_url, **kwargs)
        self._base = base_url
        self._kwargs = kwargs

    # -- sync --------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._start_loop()
        assert self._loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the app's loop and return its result: server-side set-up in a sync
        test, such as ``client.run(charter.auth.add_user(app, "ann", "pw", role="clerk"))``."""
        return self._run(coro)

    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="charter-testclient", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop

    def __enter__(self) -> TestClient:
        try:
            self._run(self._lifespan.startup())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        try:
            if self._loop is not None:
                self._run(self._lifespan.shutdown())
        finally:
            self._stop_loop()
            super().__exit__(exc_type, exc, tb)

    def _stop_loop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join()
        loop.close()
        self._loop = None

    # -- async -------------------------------------------------------------------------------

    async def __aenter__(self) -> httpx.AsyncClient:
        self._async_lifespan = _Lifespan(self.app)
        await self._async_lifespan.startup()
        transport = _Transport(self.app)
        self._async = httpx.AsyncClient(transport=transport, base_url=self._base, **self._kwargs)
        return self._async

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        try:
            if self._async is not None:
                await self._async.aclose()
        finally:
            if self._async_lifespan is not None:
                await self._async_lifespan.shutdown()
            self.close()

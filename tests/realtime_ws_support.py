"""The served app and the clients the WebSocket and publish tests share (a real server)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.servers import Server

PASSWORD = "pass-word-123"
WAIT = 20.0  # seconds a test waits for a message before it fails (never asserted on)

APP = """
from collections.abc import AsyncIterator
from typing import Any

from charter import App, Condition, Field, Forbidden, Grant, Role, Table


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = ""
    price: float = 0


class Echo(Table):
    id: str = Field(primary_key=True)

    async def connect(self, incoming: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for message in incoming:
            yield {"echo": message, "id": self.get_id()}


class Shout(Table):
    id: str = Field(primary_key=True)

    async def publish(self, message: Any) -> None:
        # Relayed as server code (unrestricted): only the endpoint's check guards it.
        text = str(message.get("text", "")).upper()
        await Product.publish(f"shout-{self.get_id()}", {"shout": text})


class Memo(Table):
    id: str = Field(primary_key=True)
    owner: str = Field(default="", indexed=True)

    @classmethod
    def write_filter(cls, user: Any) -> Any:  # publish to your own memos only
        return Condition("owner", "equals", user.username if user is not None else "")


async def guard(ctx: Any, call_next: Any) -> Any:
    if ctx.request.header("x-block"):
        raise Forbidden("blocked by middleware")
    return await call_next()


READ = Grant(read=True)
WRITE = Grant(read=True, update=True)
ROLES = [
    Role("reader", tables={"Product": READ, "Echo": READ, "Shout": READ}),
    Role("writer", tables={"Product": WRITE, "Echo": READ, "Shout": WRITE, "Memo": WRITE}),
]
TABLES = [Product, Echo, Shout, Memo]
app = App(tables=TABLES, roles=ROLES, auth=AUTH, middleware=[guard], keepalive=1, OPTIONS)
"""


def write_app(directory: Path, *, auth: bool, options: str = "") -> str:
    """The app module in ``directory``, as ``path:app`` (``options``: more ``App`` arguments)."""
    path = directory / ("ws_app_auth.py" if auth else "ws_app.py")
    path.write_text(APP.replace("AUTH", str(auth)).replace("OPTIONS", options))
    return f"{path}:app"


def add_users(target: str, database: str) -> None:
    """``rita`` (reader) and ``walt`` (writer) in the app's database, before it is served."""
    import charter.auth

    file, _, _ = target.partition(":")
    name = f"_ws_app_{abs(hash(database))}"
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    saved = None
    try:
        import os

        saved = os.environ.get("CHARTER_DATABASE")
        os.environ["CHARTER_DATABASE"] = database
        spec.loader.exec_module(module)
        app = module.app

        async def run() -> None:
            await app.startup()
            try:
                await charter.auth.add_user(app, "rita", PASSWORD, role="reader")
                await charter.auth.add_user(app, "walt", PASSWORD, role="writer")
                await charter.auth.add_user(app, "root", PASSWORD, super_user=True)
            finally:
                await app.shutdown()

        asyncio.run(run())
    finally:
        if saved is None:
            os.environ.pop("CHARTER_DATABASE", None)
        else:
            os.environ["CHARTER_DATABASE"] = saved
        sys.modules.pop(name, None)


@contextlib.contextmanager
def served(
    directory: Path, database: str, *, auth: bool = False, options: str = ""
) -> Iterator[Server]:
    target = write_app(directory, auth=auth, options=options)
    if auth:
        add_users(target, database)
    server = Server(target, "--database", database).start()
    try:
        yield server
    finally:
        server.stop()


def ws_url(server: Server, path: str) -> str:
    return "ws://" + server.url.removeprefix("http://") + path


def basic(username: str) -> dict[str, str]:
    import base64

    token = base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()
    return {"authorization": f"Basic {token}"}


@contextlib.asynccontextmanager
async def socket(server: Server, path: str, **options: Any) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url(server, path), open_timeout=WAIT, **options) as ws:
        yield ws


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next message, decoded."""
    data = await asyncio.wait_for(ws.recv(), WAIT)
    value: dict[str, Any] = json.loads(data)
    return value


async def receive_n(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await receive(ws) for _ in range(count)]


async def put(server: Server, key: str, **values: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client:
        response = await client.put(f"/Product/{key}", json={"id": key, **values})
        assert response.status_code in (200, 204), response.text

"""An event stream's end under ``charter serve`` (issue 12): a client that goes away is let go at
once, even on an idle stream (no next event to notice it by), and a server that shuts down
ends its streams with a ``close`` event instead of waiting for its graceful timeout."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import Server

pytestmark = pytest.mark.sqlite_only

APP = """
from charter import App, Field, Table, route

class Note(Table):
    id: str = Field(primary_key=True)
    n: int = 0

@route("GET", "/subscribers")
async def subscribers() -> int:
    return app.hub.count

app = App(tables=[Note], routes=[subscribers], keepalive=600)
"""
REQUEST = b"GET /Note/ HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"


def _count(server: Server) -> int:
    return int(httpx.get(server.url + "/subscribers").json())


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    await reader.readuntil(b": subscribed\n\n")
    return reader, writer


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


def test_an_idle_stream_whose_client_left_is_released(tmp_path: Path) -> None:
    (tmp_path / "life_app.py").write_text(APP)
    with Server("life_app:app", "--database", f"sqlite:///{tmp_path}/l.db", cwd=tmp_path) as s:

        async def scenario() -> None:
            streams = [await _open(s.port) for _ in range(5)]
            assert await asyncio.to_thread(_count, s) == 5
            for _, writer in streams[:3]:
                writer.close()
                await writer.wait_closed()
            await asyncio.to_thread(_wait_for, lambda: _count(s) == 2, "3 streams released")
            for _, writer in streams[3:]:
                writer.close()

        asyncio.run(scenario())
        _wait_for(lambda: _count(s) == 0, "every stream released")


def test_shutdown_ends_open_streams_with_a_close_event(tmp_path: Path) -> None:
    (tmp_path / "life_app.py").write_text(APP)
    server = Server("life_app:app", "--database", f"sqlite:///{tmp_path}/l.db", cwd=tmp_path)
    server.start()

    async def scenario() -> list[bytes]:
        streams = [await _open(server.port) for _ in range(3)]
        await asyncio.to_thread(server.stop)  # SIGTERM: fails if the server outlives 30 s
        tails = [await asyncio.wait_for(reader.read(), 10) for reader, _ in streams]
        for _, writer in streams:
            writer.close()
        return tails

    for tail in asyncio.run(scenario()):
        assert b"event: close" in tail

"""SSE subscriptions as a client sees them (issue 12 point 8): order, resume with
``Last-Event-ID`` after a dropped connection, ``startTime``, ``previousCount``, ``omitCurrent``,
id prefixes, a query that a record leaves and enters again, keep-alive comments, a resume from
before the retention floor, and 400s for bad parameters. A real server (its streams read as
they come), both backends; the retention floor is moved in process with ``app.hub.prune()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from charter import App, Field, Table
from charter.testing import TestClient
from tests.servers import Server
from tests.sse_client import Message, subscribe

APP = """
from charter import App, Field, Table


class Item(Table):
    id: str = Field(primary_key=True)
    n: int = Field(default=0, indexed=True)
    tag: str = Field(default="", indexed=True)


app = App(tables=[Item], keepalive=0.5)
"""


class Item(Table):
    id: str = Field(primary_key=True)
    n: int = Field(default=0, indexed=True)
    tag: str = Field(default="", indexed=True)


@pytest.fixture
def server(database: str, tmp_path: Path) -> Iterator[Server]:
    app_file = tmp_path / "sse_app.py"
    app_file.write_text(APP)
    with Server(f"{app_file}:app", "--database", database) as running:
        yield running


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        yield http


async def _put(client: httpx.AsyncClient, key: str, **values: Any) -> None:
    response = await client.put(f"/Item/{key}", json=values)
    assert response.status_code in (200, 204), response.text


def _ids(messages: list[Message]) -> list[Any]:
    return [(m.data["type"], m.data["id"]) for m in messages]


async def test_many_writes_to_many_records_arrive_in_order(client: httpx.AsyncClient) -> None:
    records, rounds = 12, 15
    async with subscribe(client, "/Item/?omitCurrent=true") as stream:

        async def writer(key: str) -> None:
            for n in range(1, rounds + 1):
                await _put(client, key, n=n)

        await asyncio.gather(*(writer(f"r{i:02}") for i in range(records)))
        got = await stream.events(records * rounds)
    positions = [m.id for m in got]
    assert None not in positions and positions == sorted(set(positions))  # type: ignore[type-var]
    per_record: dict[str, list[int]] = {}
    for m in got:
        assert m.data["type"] == "put"
        per_record.setdefault(m.data["id"], []).append(m.data["value"]["n"])
    assert per_record == {f"r{i:02}": list(range(1, rounds + 1)) for i in range(records)}


async def test_last_event_id_resumes_after_a_dropped_connection(client: httpx.AsyncClient) -> None:
    await _put(client, "a", n=0)
    async with subscribe(client, "/Item/") as stream:
        current = await stream.message()
        assert _ids([current]) == [("put", "a")]
        for n in range(1, 6):
            await _put(client, "a" if n % 2 else "b", n=n)
        seen = await stream.events(3)  # then the connection drops
    last = seen[-1].id
    for n in range(6, 9):
        await _put(client, "c", n=n)
    async with subscribe(client, "/Item/", {"last-event-id": str(last)}) as resumed:
        rest = await resumed.events(5)  # 4, 5 (missed while connected), 6, 7, 8 (while away)
        await _put(client, "c", n=9)
        live = await resumed.message()
    assert [m.data["value"]["n"] for m in seen] == [1, 2, 3]
    assert [m.data["value"]["n"] for m in rest] == [4, 5, 6, 7, 8]
    assert live.data["value"]["n"] == 9
    assert rest[0].id is not None and last is not None and rest[0].id > last


async def test_start_time_replays_history_then_the_current_state_is_not_repeated(
    client: httpx.AsyncClient,
) -> None:
    for n in range(1, 6):
        await _put(client, "t", n=n)
    async with subscribe(client, "/Item/t?previousCount=100&omitCurrent=true") as full:
        history = await full.events(5)
    since = history[2].data["timestamp"]
    expected = [m.data["value"]["n"] for m in history if m.data["timestamp"] >= since]
    async with subscribe(client, f"/Item/t?startTime={since}&omitCurrent=true") as stream:
        replayed = await stream.events(len(expected))
        await _put(client, "t", n=6)
        live = await stream.message()
    assert [m.data["value"]["n"] for m in replayed] == expected
    assert live.data["value"]["n"] == 6


async def test_previous_count_and_omit_current(client: httpx.AsyncClient) -> None:
    for n in range(1, 5):
        await _put(client, "p", n=n)
    await _put(client, "q", n=10)
    async with subscribe(client, "/Item/p?previousCount=2") as stream:
        first = await stream.events(3)  # the last two events of p, then p as it is
    assert [(m.data["type"], m.data["value"]["n"]) for m in first] == [
        ("put", 3),
        ("put", 4),
        ("put", 4),
    ]
    async with subscribe(client, "/Item/") as stream:
        current = await stream.events(2)
        assert sorted(_ids(current)) == [("put", "p"), ("put", "q")]
    async with subscribe(client, "/Item/?omitCurrent=true") as stream:
        await _put(client, "q", n=11)
        message = await stream.message()
        assert (message.data["id"], message.data["value"]["n"]) == ("q", 11)


async def test_an_id_prefix_subscribes_to_the_ids_that_start_with_it(
    client: httpx.AsyncClient,
) -> None:
    for key in ("ab1", "ac1", "ab2"):
        await _put(client, key)
    async with subscribe(client, "/Item/ab/") as stream:
        current = await stream.events(2)
        assert sorted(_ids(current)) == [("put", "ab1"), ("put", "ab2")]
        for key in ("ac2", "xab", "ab3", "a"):
            await _put(client, key, n=1)
        live = await stream.message()
        assert _ids([live]) == [("put", "ab3")]


async def test_a_record_leaves_a_query_and_enters_it_again(client: httpx.AsyncClient) -> None:
    await _put(client, "h1", tag="hot")
    await _put(client, "h2", tag="cold")
    async with subscribe(client, "/Item/?tag=hot") as stream:
        first = await stream.message()
        assert _ids([first]) == [("put", "h1")]
        await _put(client, "h1", tag="cold")  # leaves
        await _put(client, "h1", tag="cold", n=5)  # not in the query: nothing
        await _put(client, "h2", tag="cold", n=1)  # never was: nothing
        await _put(client, "h1", tag="hot", n=6)  # enters again
        response = await client.delete("/Item/h1")
        assert response.status_code in (200, 204)
        got = await stream.events(3)
    assert [(m.data["type"], m.data["id"], bool(m.data.get("leaving"))) for m in got] == [
        ("delete", "h1", True),
        ("put", "h1", False),
        ("delete", "h1", False),
    ]
    assert got[1].data["value"]["n"] == 6


async def test_an_idle_stream_gets_keep_alive_comments(client: httpx.AsyncClient) -> None:
    async with subscribe(client, "/Item/?omitCurrent=true") as stream:
        comment = await stream.message(comments=True)
        assert comment.comment == "keep-alive"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/Item/?startTime=soon", {}),
        ("/Item/?previousCount=-1", {}),
        ("/Item/?previousCount=x", {}),
        ("/Item/?omitCurrent=maybe", {}),
        ("/Item/", {"last-event-id": "the-last"}),
        ("/Item/a?tag=hot", {}),
        ("/Item/?select(id)", {}),
        ("/Item/?nosuch=1", {}),
    ],
)
async def test_bad_parameters_are_400_in_the_envelope(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    async with subscribe(client, path, headers) as stream:
        assert stream.status == 400, path
        error = stream.response.json()["error"]
        assert error["message"], path


def test_a_resume_from_before_the_retention_floor_gets_a_reset(database: str) -> None:
    app = App(tables=[Item], database=database, event_retention_count=5)
    with TestClient(app) as client:
        for n in range(12):
            assert client.put(f"/Item/k{n % 3}", json={"n": n}).status_code in (200, 204)

        async def resume(**options: Any) -> list[Any]:
            events = Item.subscribe(**options)
            try:
                return [await anext(events) for _ in range(2)]
            finally:
                await events.aclose()  # type: ignore[attr-defined]

        async def positions() -> list[int]:
            events = Item.subscribe(previous_count=100, omit_current=True)
            found: list[int] = []
            try:
                while len(found) < 12:
                    found.append((await asyncio.wait_for(anext(events), 1)).position)
            except TimeoutError:
                pass
            finally:
                await events.aclose()  # type: ignore[attr-defined]
            return found

        before = client.run(positions())
        assert len(before) == 12
        client.run(app.hub.prune())
        kept = client.run(positions())
        assert kept == before[-5:]  # the newest five
        old = before[2]
        got = client.run(resume(after=old))
        assert got[0].type == "reset"  # never a silent gap: refetch
        assert got[1].type == "put"  # then the current records
        fine = client.run(resume(after=kept[0], omit_current=True))
        assert [e.position for e in fine] == kept[1:3]  # within the window: exactly what came


SLOW_APP = """
from charter import App, Field, Table


class Item(Table):
    id: str = Field(primary_key=True)
    n: int = 0
    text: str = ""


app = App(tables=[Item], subscriber_buffer=50)
"""


async def test_a_subscriber_that_stops_reading_is_closed_with_its_position(
    database: str, tmp_path: Path
) -> None:
    """Once its socket is full, a subscriber's events wait in its bounded queue (not in the
    server's write buffer) and it overflows: the stream ends with the position to resume from."""
    import socket

    app_file = tmp_path / "slow_sse_app.py"
    app_file.write_text(SLOW_APP)
    with Server(f"{app_file}:app", "--database", database) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        writer.write(
            b"GET /Item/?omitCurrent=true HTTP/1.1\r\nHost: test\r\n"
            b"Accept: text/event-stream\r\n\r\n"
        )
        assert (await asyncio.wait_for(reader.readuntil(b": subscribed"), 10)).startswith(
            b"HTTP/1.1 200"
        )
        pad = "x" * 8000  # 1,500 events of 8 KB: far more than the sockets' buffers hold
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            for n in range(1500):
                await _put(client, f"r{n % 10}", n=n, text=pad)
        seen = b""
        deadline = asyncio.get_running_loop().time() + 60
        while b"event: overflow" not in seen[-20_000:]:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, "no overflow: the events went to the server's write buffer"
            chunk = await asyncio.wait_for(reader.read(1 << 16), left)
            assert chunk, "the stream ended without an overflow"
            seen = seen[-20_000:] + chunk
        writer.close()
    assert b"id: " in seen[seen.rindex(b"\n\n", 0, seen.index(b"event: overflow")) :]

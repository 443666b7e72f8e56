"""The PostgreSQL pool under hostile load: no request waits on itself, no pool wait hangs.

A search without ``limit()`` streams through a cursor; a record read inside the loop needs a
connection too. With a small pool, 30 such requests at once used to take every connection with
a cursor and then wait forever for a second one. And every wait for a connection has a bound:
past ``pool_timeout`` the request is answered 503 UNAVAILABLE with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Server

pytestmark = pytest.mark.postgres_only

APP = """
from charter import App, Field, Table, get


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = ""

    @get
    @staticmethod
    async def walk() -> int:
        seen = 0
        async for product in Product.search({"conditions": []}):
            other = await Product.get("p0")    # a point read while the search streams
            assert other is not None
            seen += 1
        return seen


app = App(tables=[Product])
"""

PRODUCTS = 50


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "pool_app.py"
    path.write_text(APP)
    return path


@pytest.fixture
def server(app_file: Path, database: str) -> Iterator[Server]:
    with Server(f"{app_file}:app", "--database", f"{database}&pool_size=4") as srv:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            for i in range(PRODUCTS):
                assert client.put(f"/Product/p{i}", json={"name": f"n{i}"}).status_code < 300
        yield srv


async def _walk_many(url: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await asyncio.gather(*(client.get("/Product/walk") for _ in range(count)))


def test_point_reads_inside_unlimited_searches_do_not_deadlock_a_small_pool(
    server: Server,
) -> None:
    for _ in range(3):  # bounded: three bursts of 30
        responses = asyncio.run(_walk_many(server.url, 30))
        assert [r.status_code for r in responses] == [200] * 30
        assert {r.json() for r in responses} == {PRODUCTS}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/Product/p1").json() == {"id": "p1", "name": "n1"}


async def _wait_for_lock(conn: object, deadline: float) -> None:
    """Until a backend other than ``conn`` waits on a row lock (the blocked PUT)."""
    while time.monotonic() < deadline:
        waiting = await conn.fetchval(  # type: ignore[attr-defined]
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the PUT never waited on the lock")


def test_a_pool_wait_answers_503_with_retry_after_instead_of_hanging(
    app_file: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncpg

    monkeypatch.setenv("CHARTER_POOL_TIMEOUT", "0.5")

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            for key in ("a", "b"):
                assert (await client.put(f"/Product/{key}", json={"name": key})).status_code < 300
            # Another client of the database locks record "a": a PUT of it then holds the
            # pool's only connection while it waits for the lock.
            conn = await asyncpg.connect(database)  # (?search_path=... is a server setting)
            try:
                locker = conn.transaction()
                await locker.start()
                await conn.execute("""SELECT 1 FROM "Product" WHERE id = '"a"' FOR UPDATE""")
                put = asyncio.ensure_future(client.put("/Product/a", json={"name": "A"}))
                await _wait_for_lock(conn, time.monotonic() + 10)
                blocked = await client.get("/Product/b")
                assert blocked.status_code == 503
                assert blocked.headers["retry-after"] == "1"
                assert blocked.json()["error"]["code"] == "UNAVAILABLE"
                await locker.rollback()
                assert (await put).status_code < 300
            finally:
                await conn.close()
            assert (await client.get("/Product/b")).json() == {"id": "b", "name": "b"}
            assert (await client.get("/Product/a")).json() == {"id": "a", "name": "A"}

    with Server(f"{app_file}:app", "--database", f"{database}&pool_size=1") as srv:
        asyncio.run(scenario(srv.url))

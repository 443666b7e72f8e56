"""``charter serve --workers N``: several processes, one port, one database, on every backend.

Many concurrent writers across the workers: no "database is locked", no lost write, and
``add_to`` increments from every worker add up exactly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.servers import Server

pytestmark = pytest.mark.slow

APP = """
from charter import App, Field, Table, post

class Note(Table):
    id: str = Field(primary_key=True)
    text: str
    n: int = Field(default=0, indexed=True)

class Counter(Table):
    id: str = Field(primary_key=True)
    n: int = 0

    @post
    async def bump(self, by: int = 1) -> None:
        await Counter.add_to(self.get_id(), "n", by)

app = App(tables=[Note, Counter])
"""

WRITERS = 64


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "workers_app.py"
    path.write_text(APP)
    return path


async def _write_all(url: str, writers: int, per_writer: int) -> tuple[set[str], list[str]]:
    """Each writer creates then updates its records; the ids acknowledged and every failure."""
    acknowledged: set[str] = set()
    failures: list[str] = []
    limits = httpx.Limits(max_connections=writers)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def writer(w: int) -> None:
            for i in range(per_writer):
                key = f"w{w}-{i}"
                created = await client.post("/Note/", json={"id": key, "text": "x", "n": i})
                if created.status_code != 201:
                    failures.append(f"POST {key}: {created.status_code} {created.text}")
                    continue
                changed = await client.patch(f"/Note/{key}", json={"text": "changed"})
                if changed.status_code != 204:
                    failures.append(f"PATCH {key}: {changed.status_code} {changed.text}")
                    continue
                acknowledged.add(key)

        await asyncio.gather(*(writer(w) for w in range(writers)))
    return acknowledged, failures


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_writers_on_several_workers_lose_nothing(
    app_file: Path, database: str, workers: int
) -> None:
    server = Server(f"{app_file}:app", "--workers", str(workers), "--database", database)
    server.start()
    try:
        acknowledged, failures = asyncio.run(_write_all(server.url, WRITERS, 10))
        stored = httpx.get(server.url + "/Note/?limit(100000)", timeout=60).json()
    finally:
        log = server.stop()
    assert failures == []
    assert "database is locked" not in log
    assert len(acknowledged) == WRITERS * 10
    by_id = {note["id"]: note for note in stored}
    assert set(by_id) == acknowledged
    assert all(note["text"] == "changed" for note in by_id.values())


def test_add_to_from_four_workers_adds_up_exactly(app_file: Path, database: str) -> None:
    server = Server(f"{app_file}:app", "--workers", "4", "--database", database)
    with server:
        assert httpx.put(server.url + "/Counter/c", json={"n": 0}).status_code == 204

        async def bump_all() -> list[int]:
            limits = httpx.Limits(max_connections=WRITERS)
            async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as c:
                gate = asyncio.Semaphore(WRITERS)

                async def bump() -> int:
                    async with gate:
                        return (await c.post("/Counter/c/bump", json={})).status_code

                return await asyncio.gather(*(bump() for _ in range(1000)))

        statuses = asyncio.run(bump_all())
        final = httpx.get(server.url + "/Counter/c").json()
    assert [s for s in statuses if s >= 300] == []
    assert final["n"] == 1000

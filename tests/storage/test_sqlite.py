"""SQLite storage concurrency: readers never wait on writers, handlers never hold the lock."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from charter import App, Field, Table
from charter.testing import TestClient


class Slow(Table):
    id: str = Field(primary_key=True)
    n: int = 0

    async def put(self, data: dict) -> None:  # type: ignore[override]
        await super().put(data)
        await asyncio.sleep(0.5)  # the handler awaits other work after staging its write


class Fast(Table):
    id: str = Field(primary_key=True)
    n: int = 0


class Note(Table):
    id: str = Field(primary_key=True)
    text: str = ""


def _app(tmp_path: Path) -> App:
    return App(tables=[Slow, Fast], database=f"sqlite:///{tmp_path}/c.db")


async def test_a_waiting_handler_does_not_hold_the_write_lock(tmp_path: Path) -> None:
    async with TestClient(_app(tmp_path)) as client:
        slow = asyncio.create_task(client.put("/Slow/a", json={"n": 1}))
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        fast = await client.put("/Fast/b", json={"n": 2})
        elapsed = time.perf_counter() - started
        assert fast.status_code == 204
        assert not slow.done()  # the slow request is still running while Fast committed
        assert elapsed < 0.4
        assert (await slow).status_code == 204
        assert (await client.get("/Slow/a")).json() == {"id": "a", "n": 1}


def test_reads_do_not_wait_on_a_write_in_progress(tmp_path: Path) -> None:
    app = _app(tmp_path)
    with TestClient(app) as client:
        assert client.put("/Fast/x", json={"n": 1}).status_code == 204
        blocker = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute(
            "UPDATE \"Fast\" SET data = json_set(data, '$.n', 99) WHERE id = 'x'"
        )  # uncommitted: holds the write lock
        try:
            started = time.perf_counter()
            response = client.get("/Fast/x")
            listed = client.get("/Fast/?n=1")
            elapsed = time.perf_counter() - started
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert response.json() == {"id": "x", "n": 1}  # the committed state
        assert [r["id"] for r in listed.json()] == ["x"]
        assert elapsed < 1.0


def test_a_failed_request_leaves_none_of_its_writes(tmp_path: Path) -> None:
    class Pair(Table):
        id: str = Field(primary_key=True)
        n: int = 0

        async def post(self, data: dict) -> Table:  # type: ignore[override]
            await Fast.put({"id": "side", "n": 1})
            created = await super().post(data)
            if data.get("n") == 13:
                raise RuntimeError("unlucky")
            return created  # type: ignore[no-any-return]

    app = App(tables=[Pair, Fast], database=f"sqlite:///{tmp_path}/f.db")
    with TestClient(app) as client:
        failed = client.post("/Pair/", json={"id": "p", "n": 13})
        assert failed.status_code == 500
        assert "unlucky" not in failed.text
        assert client.get("/Pair/p").status_code == 404
        assert client.get("/Fast/side").status_code == 404
        ok = client.post("/Pair/", json={"id": "q", "n": 1})
        assert ok.status_code == 201
        assert client.get("/Fast/side").json() == {"id": "side", "n": 1}


def test_the_wal_is_copied_into_the_database_file_in_the_background(tmp_path: Path) -> None:
    """Checkpoints run off the commit path (charter/storage/sqlite_checkpoint.py): shortly
    after writes, what they put in the WAL is in the database file, long before SQLite's own
    automatic checkpoint (thousands of pages) would have run."""
    path = tmp_path / "wal.db"
    with TestClient(App(tables=[Note], database=f"sqlite:///{path}")) as client:
        before = path.stat().st_size
        for i in range(40):
            assert client.put(f"/Note/n{i}", json={"text": "x" * 4000}).status_code == 204
        deadline = time.monotonic() + 5
        while path.stat().st_size < before + 40 * 4000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= before + 40 * 4000

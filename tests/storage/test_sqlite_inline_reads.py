"""SQLite reads on the event loop (sqlite_inline) and indexed attributes held in generated
columns (sqlite_schema): the two halves of issue 9's query speed-up, each with what must still
hold when it does not apply."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from charter import App, Field, Table
from charter.storage.sqlite_inline import MISSED, InlineReader
from charter.testing import TestClient

HEAVY = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 200000) "
    "SELECT count(*) FROM r"
)


def _reader() -> InlineReader:
    return InlineReader(lambda: sqlite3.connect(":memory:", check_same_thread=False))


def test_a_small_read_is_answered_inline() -> None:
    reader = _reader()
    assert reader.run(lambda c: c.execute("SELECT 41 + 1").fetchone()[0]) == 42
    assert reader.interrupted == 0


def test_a_read_past_the_budget_is_interrupted_and_missed() -> None:
    reader = _reader()
    assert reader.run(lambda c: c.execute(HEAVY).fetchone()[0]) is MISSED
    assert reader.interrupted == 1
    # The budget is per read: the next small one runs.
    assert reader.run(lambda c: c.execute("SELECT 1").fetchone()[0]) == 1


def test_an_error_is_missed_for_the_thread_to_report() -> None:
    reader = _reader()
    assert reader.run(lambda c: c.execute("SELECT * FROM nowhere").fetchall()) is MISSED
    assert reader.interrupted == 0


def test_another_thread_never_shares_the_connection() -> None:
    reader = _reader()
    assert reader.run(lambda c: 1) == 1
    seen: list[object] = []
    worker = threading.Thread(target=lambda: seen.append(reader.run(lambda c: 2)))
    worker.start()
    worker.join()
    assert seen == [MISSED]


class Reading(Table):
    id: int = Field(primary_key=True)
    kind: str = Field(indexed=True)
    n: int = 0


async def test_a_slow_small_query_falls_back_to_a_thread_with_the_same_rows(
    tmp_path: Path,
) -> None:
    """A limited query that scans (its condition has no index) runs past the budget on the
    loop: it is answered by a reader thread, correctly, and the next ones go there at once."""
    app = App(tables=[Reading], database=f"sqlite:///{tmp_path / 'r.db'}")
    async with TestClient(app) as client:
        async with app.transaction():
            for i in range(6000):
                await Reading.put({"id": i, "kind": f"k{i % 3}", "n": i})
        inline = app.database._inline  # type: ignore[attr-defined]
        before = inline.interrupted
        for _ in range(3):
            response = await client.get("/Reading/?n=ge=5997&limit(5)")
            assert response.status_code == 200
            assert [r["id"] for r in response.json()] == [5997, 5998, 5999]
        assert inline.interrupted == before + 1  # then remembered: sent to a thread directly
        # A point read and an indexed query are answered inline (nothing interrupted).
        assert (await client.get("/Reading/42")).json()["n"] == 42
        listed = await client.get("/Reading/?kind=k1&limit(2)")
        assert [r["id"] for r in listed.json()] == [1, 4]
        assert inline.interrupted == before + 1


# -- indexed attributes in generated columns -------------------------------------------------


class Plain(Table):
    id: str = Field(primary_key=True)
    kind: str
    n: int = 0


class Indexed(Table):
    id: str = Field(primary_key=True)
    kind: str = Field(indexed=True)
    n: int = 0


def _generated(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[1] for r in conn.execute(f'PRAGMA table_xinfo("{table}")') if r[6] == 3]
    finally:
        conn.close()


async def _explain(client: TestClient, table: str, query: str) -> list[str]:
    plan = (await client.get(f"/{table}/?{query}&explain(true)")).json()
    return list(plan["sqlite"])


async def test_declaring_an_index_later_rebuilds_the_table_once(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    first = App(tables=[Plain], database=f"sqlite:///{path}")
    async with TestClient(first) as client:
        for i in range(50):
            assert (await client.put(f"/Plain/p{i}", json={"kind": f"k{i % 5}", "n": i})).is_success
    assert _generated(path, "Plain") == []

    class Plain2(Table, name="Plain"):
        id: str = Field(primary_key=True)
        kind: str = Field(indexed=True)
        n: int = 0

    second = App(tables=[Plain2], database=f"sqlite:///{path}")
    async with TestClient(second) as client:
        assert _generated(path, "Plain") == ["$.kind"]
        lines = await _explain(client, "Plain", "kind=k3")
        assert any("Plain__kind" in line for line in lines), lines
        rows = (await client.get("/Plain/?kind=k3&sort(n)")).json()
        assert [r["n"] for r in rows] == list(range(3, 50, 5))
        # The column follows every kind of write.
        assert (await client.patch("/Plain/p3", json={"kind": "k9"})).is_success
        assert (await client.put("/Plain/p8", json={"kind": "k9", "n": 8})).is_success
        assert [r["id"] for r in (await client.get("/Plain/?kind=k9&sort(n)")).json()] == [
            "p3",
            "p8",
        ]
        assert (await client.delete("/Plain/p8")).is_success
        assert [r["id"] for r in (await client.get("/Plain/?kind=k9")).json()] == ["p3"]
        assert len((await client.get("/Plain/?kind=k3")).json()) == 8

    # Dropping the index drops its column; nothing else changes.
    third = App(tables=[Plain], database=f"sqlite:///{path}")
    async with TestClient(third) as client:
        assert _generated(path, "Plain") == []
        assert len((await client.get("/Plain/")).json()) == 49


async def test_the_previous_expression_index_layout_is_rebuilt(tmp_path: Path) -> None:
    """A table written by the release before generated columns: indexes on the expression."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE _charter_tables (name TEXT PRIMARY KEY, fields TEXT NOT NULL,
            indexes TEXT NOT NULL);
        CREATE TABLE "Indexed" (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL,
            version INTEGER NOT NULL);
        CREATE INDEX "Indexed__kind" ON "Indexed" (json_extract(data, '$.kind'), id);
        INSERT INTO _charter_tables VALUES ('Indexed',
            '{"id": "str", "kind": "str", "n": "int"}', '["Indexed__kind"]');
        INSERT INTO "Indexed" VALUES ('a', '{"id":"a","kind":"x","n":1}', 1),
            ('b', '{"id":"b","kind":"y","n":2}', 1), ('c', '{"id":"c","kind":"x","n":3}', 1);
        """
    )
    conn.close()
    app = App(tables=[Indexed], database=f"sqlite:///{path}")
    async with TestClient(app) as client:
        assert _generated(path, "Indexed") == ["$.kind"]
        assert [r["id"] for r in (await client.get("/Indexed/?kind=x")).json()] == ["a", "c"]
        lines = await _explain(client, "Indexed", "kind=x")
        assert any("Indexed__kind ($.kind=?)" in line for line in lines), lines
        assert (await client.get("/Indexed/b")).json()["n"] == 2


class Loose(Table):
    id: str = Field(primary_key=True)
    v: Any = Field(indexed=True)
    w: Any = None


LOOSE = [1, 1.5, "1", True, None, [1], {"a": 1}, "x", 0, "", -2]


async def test_a_generated_column_compares_as_the_document_does(tmp_path: Path) -> None:
    """No affinity: a value of any JSON type is held and compared exactly as json_extract
    gives it, so an indexed and an unindexed attribute answer every query alike."""
    app = App(tables=[Loose], database=f"sqlite:///{tmp_path / 'l.db'}")
    async with TestClient(app) as client:
        for key, item in enumerate(LOOSE):
            assert (await client.put(f"/Loose/r{key:02}", json={"v": item, "w": item})).is_success
        for value in ("1", "1.5", "number:1", "string:1", "true", "null", "x", "0", "-2"):
            for op in ("=", "=gt=", "=lt=", "=ge=", "=ne="):
                left = (await client.get(f"/Loose/?v{op}{value}&sort(id)")).json()
                right = (await client.get(f"/Loose/?w{op}{value}&sort(id)")).json()
                assert [r["id"] for r in left] == [r["id"] for r in right], (op, value)
            by_v = (await client.get("/Loose/?sort(v)")).json()
            by_w = (await client.get("/Loose/?sort(w)")).json()
            assert [r["id"] for r in by_v] == [r["id"] for r in by_w]

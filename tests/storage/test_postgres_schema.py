"""PostgreSQL migrations at start-up: defaults filled in, indexes follow, fields archived."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from charter import App, Field, Table
from charter.storage.postgres_dialect import POSTGRES
from charter.testing import TestClient


def _v1() -> type[Table]:
    class Item(Table):
        id: str = Field(primary_key=True)
        name: str = Field(indexed=True)
        old: str = ""

    return Item


def _v2() -> type[Table]:
    class Item(Table):
        id: str = Field(primary_key=True)
        name: str
        price: float = Field(default=9.5, indexed=True)

    return Item


async def _inspect(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        indexes = {
            r["indexname"]: r["indexdef"]
            for r in await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND tablename = 'Item'"
            )
        }
        archive = [
            (r["tbl"], json.loads(r["id"]), r["field"], json.loads(r["value"]))
            for r in await conn.fetch(
                "SELECT tbl, id::text, field, value::text FROM _charter_archive ORDER BY id"
            )
        ]
        return {"indexes": indexes, "archive": archive}
    finally:
        await conn.close()


def test_a_changed_declaration_migrates_without_loss(postgres_url: str) -> None:
    with TestClient(App(tables=[_v1()], database=postgres_url)) as client:
        for key in ("a", "b"):
            assert client.put(f"/Item/{key}", json={"name": key, "old": key * 2}).status_code == 204
    before = asyncio.run(_inspect(postgres_url))
    assert "Item__name" in before["indexes"]
    assert any("gin" in d.lower() for d in before["indexes"].values())

    for _ in range(2):  # a second start changes nothing
        with TestClient(App(tables=[_v2()], database=postgres_url)) as client:
            assert client.get("/Item/a").json() == {"id": "a", "name": "a", "price": 9.5}
            assert [r["id"] for r in client.get("/Item/?price=9.5&sort(id)").json()] == ["a", "b"]
        after = asyncio.run(_inspect(postgres_url))
        assert "Item__name" not in after["indexes"]
        assert "Item__price" in after["indexes"]
        assert after["archive"] == [("Item", "a", "old", "aa"), ("Item", "b", "old", "bb")]


def test_declared_indexes_are_on_the_compilers_expression(postgres_url: str) -> None:
    with TestClient(App(tables=[_v2()], database=postgres_url)):
        pass
    definition = asyncio.run(_inspect(postgres_url))["indexes"]["Item__price"]
    assert POSTGRES.attribute("t0", ["price"]) == "NULLIF(t0.data->'price', 'null'::jsonb)"
    assert "(NULLIF((data -> 'price'::text), 'null'::jsonb) NULLS FIRST)" in definition


def test_workers_starting_together_migrate_once(postgres_url: str) -> None:
    """Four workers start on a changed declaration at once: every one starts, the removed field
    is archived exactly once per record, indexes follow, and no record is lost."""
    with TestClient(App(tables=[_v1()], database=postgres_url)) as client:
        for key in "abcdef":
            assert client.put(f"/Item/{key}", json={"name": key, "old": key * 2}).status_code == 204

    async def start_many() -> list[BaseException | None]:
        apps = [App(tables=[_v2()], database=postgres_url) for _ in range(4)]
        outcomes = await asyncio.gather(*(app.startup() for app in apps), return_exceptions=True)
        for app in apps:
            await app.shutdown()
        return list(outcomes)

    assert asyncio.run(start_many()) == [None] * 4
    after = asyncio.run(_inspect(postgres_url))
    assert after["archive"] == [("Item", k, "old", k * 2) for k in "abcdef"]
    assert "Item__price" in after["indexes"] and "Item__name" not in after["indexes"]
    with TestClient(App(tables=[_v2()], database=postgres_url)) as client:
        found = client.get("/Item/?price=9.5&sort(id)").json()
        assert [r["id"] for r in found] == list("abcdef")

"""Writes of one record in one transaction mean what they would mean one after the other
(statement order): ``add_to``, ``put``, ``patch`` and ``delete`` in any order, on every backend;
``get`` inside the transaction shows the result, increments included."""

from __future__ import annotations

import asyncio

import pytest

from charter import App, Conflict, Field, NotFound, Table, ValidationError
from charter.testing import TestClient


class Stock(Table):
    id: str = Field(primary_key=True)
    n: int = 0
    m: int = 0
    note: str = ""


async def test_add_to_then_put_keeps_the_put(database: str) -> None:
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await Stock.put({"id": "a", "n": 1})
        async with app.transaction():
            await Stock.add_to("a", "n", 5)
            assert (await Stock.get("a")).n == 6  # the increment is visible
            await Stock.put({"id": "a", "n": 100})
            assert (await Stock.get("a")).n == 100
        assert (await client.get("/Stock/a")).json()["n"] == 100


async def test_put_then_add_to_applies_on_top(database: str) -> None:
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        async with app.transaction():
            await Stock.put({"id": "a", "n": 10})
            await Stock.add_to("a", "n", 5)
            await Stock.add_to("a", "m", 2)  # absent from nothing: counted from 0
            record = await Stock.get("a")
            assert (record.n, record.m) == (15, 2)
        body = (await client.get("/Stock/a")).json()
        assert (body["n"], body["m"]) == (15, 2)


async def test_put_add_to_put_is_the_last_put(database: str) -> None:
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await Stock.put({"id": "a", "n": 1})
        async with app.transaction():
            await Stock.put({"id": "a", "n": 10})
            await Stock.add_to("a", "n", 5)
            await Stock.put({"id": "a", "n": 20})
            await Stock.add_to("a", "n", 1)
            assert (await Stock.get("a")).n == 21
        assert (await client.get("/Stock/a")).json()["n"] == 21


async def test_add_to_then_patch_sees_the_increment(database: str) -> None:
    """A patch read the record with the increment in it: it keeps it (and sets its own)."""
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await Stock.put({"id": "a", "n": 1, "m": 1})
        async with app.transaction():
            await Stock.add_to("a", "n", 5)
            await Stock.add_to("a", "m", 5)
            await Stock.patch("a", {"m": 0, "note": "reset m"})
            await Stock.add_to("a", "m", 2)
            record = await Stock.get("a")
            assert (record.n, record.m, record.note) == (6, 2, "reset m")
        body = (await client.get("/Stock/a")).json()
        assert (body["n"], body["m"], body["note"]) == (6, 2, "reset m")


async def test_blind_merge_and_increments_in_any_order(database: str) -> None:
    """A PATCH without a precondition is a blind merge: increments of the attributes it sets
    before it are replaced, after it added to it; increments of other attributes stay."""
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await Stock.put({"id": "a", "n": 1, "m": 1})
        runtime = app.tables["Stock"]
        async with app.transaction():
            await Stock.add_to("a", "n", 100)
            await Stock.add_to("a", "m", 10)
            await runtime.merge_blind("a", {"n": 7})
            await Stock.add_to("a", "n", 3)
            record = await Stock.get("a")
            assert (record.n, record.m) == (10, 11)
        body = (await client.get("/Stock/a")).json()
        assert (body["n"], body["m"]) == (10, 11)


async def test_delete_drops_earlier_increments_and_refuses_later_ones(database: str) -> None:
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await Stock.put({"id": "a", "n": 1})
        async with app.transaction():
            await Stock.add_to("a", "n", 5)
            await Stock.delete("a")
            assert await Stock.get("a") is None
            with pytest.raises(NotFound):
                await Stock.add_to("a", "n", 1)
            await Stock.put({"id": "a", "n": 50})
            await Stock.add_to("a", "n", 1)
        assert (await client.get("/Stock/a")).json()["n"] == 51


async def test_add_to_a_value_that_is_not_a_number_is_refused(database: str) -> None:
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        with pytest.raises(ValidationError):
            async with app.transaction():
                await Stock.put({"id": "a", "n": 1, "note": "x"})
                await Stock.add_to("a", "note", 1)
        assert (await client.get("/Stock/a")).status_code == 404


async def test_lone_add_to_stays_conflict_free_beside_a_put_elsewhere(database: str) -> None:
    """Concurrent transactions that each add to one record (and write another) never conflict
    and lose nothing."""
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await Stock.put({"id": "hot", "n": 0})

        async def one(i: int) -> None:
            async with app.transaction():
                await Stock.add_to("hot", "n", 1)
                await Stock.put({"id": f"own-{i}", "n": i})
                await Stock.add_to(f"own-{i}", "n", 1)
                await asyncio.sleep(0)

        await asyncio.gather(*(one(i) for i in range(30)))
        assert (await client.get("/Stock/hot")).json()["n"] == 30
        assert (await client.get("/Stock/own-7")).json()["n"] == 8


async def test_a_savepoint_undoes_its_increments_only(database: str) -> None:
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await Stock.put({"id": "a", "n": 0})
        async with app.transaction() as tx:
            await Stock.add_to("a", "n", 1)
            with pytest.raises(RuntimeError), tx.savepoint():
                await Stock.add_to("a", "n", 10)
                await Stock.put({"id": "a", "n": 500})
                raise RuntimeError("undo the step")
            assert (await Stock.get("a")).n == 1  # the step's writes are gone
            await Stock.add_to("a", "n", 1)
        assert (await client.get("/Stock/a")).json()["n"] == 2


async def test_delete_then_create_of_one_key_replaces_the_record(database: str) -> None:
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await Stock.put({"id": "a", "n": 1, "note": "old"})
        async with app.transaction():
            assert await Stock.delete("a")
            assert await Stock.get("a") is None
            await Stock.post({"id": "a", "n": 2})
            assert (await Stock.get("a")).n == 2
        assert (await client.get("/Stock/a")).json() == {"id": "a", "n": 2, "m": 0, "note": ""}
        # Still checked against the version the delete saw: a write meanwhile conflicts.
        started, go = asyncio.Event(), asyncio.Event()

        async def slow() -> None:
            assert await Stock.delete("a")
            started.set()
            await go.wait()
            await Stock.post({"id": "a", "n": 3})

        task = asyncio.ensure_future(app.transaction(slow))
        await started.wait()
        await Stock.patch("a", {"note": "meanwhile"})  # commits in between
        go.set()
        with pytest.raises(Conflict):
            await task
        assert (await client.get("/Stock/a")).json()["note"] == "meanwhile"

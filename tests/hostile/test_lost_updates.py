"""Point 1 of the hardening issue: a record read by any API and then written is version-checked.

Model methods read with ``Table.search`` and write ``stock + amount``; concurrent calls must
never lose an increment: the stock equals the sum of the increments of the calls that answered
200 (a call that lost every retry answers 409 and changed nothing).
"""

from __future__ import annotations

import asyncio
from typing import Any

from charter import App, Field, Table, post
from charter.testing import TestClient

ROUNDS = 25


def _in(category: str) -> dict[str, Any]:
    return {"conditions": [{"attribute": "category", "value": category}]}


CALLERS = 6


class Stock(Table):
    id: str = Field(primary_key=True)
    category: str = Field(indexed=True)
    stock: int = 0

    @post
    @staticmethod
    async def restock_by_id(category: str, amount: int) -> int:
        """Reads by search, writes through the static helper (which reloads the record)."""
        count = 0
        async for item in Stock.search(_in(category)):
            await Stock.patch(item.id, {"stock": item.stock + amount})
            count += 1
        return count

    @post
    @staticmethod
    async def restock_instance(category: str, amount: int) -> int:
        """Reads by search, writes through the instance it read."""
        count = 0
        async for item in Stock.search(_in(category)):
            await item.patch({"stock": item.stock + amount})
            count += 1
        return count

    @post
    @staticmethod
    async def bump(id: str) -> int:
        """Reads one record and writes it back plus one (a read-modify-write)."""
        item = await Stock.get(id)
        assert item is not None
        await Stock.patch(id, {"stock": item.stock + 1})
        return int(item.stock) + 1

    @post
    @staticmethod
    async def restock_put(category: str, amount: int) -> int:
        """Reads by search, replaces the whole record."""
        count = 0
        async for item in Stock.search(_in(category)):
            await Stock.put({**item.to_dict(), "stock": item.stock + amount})
            count += 1
        return count


async def _hammer(database: str, method: str) -> None:
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        for i in range(3):
            created = await client.post("/Stock/", json={"id": f"s{i}", "category": "c"})
            assert created.status_code == 201
        ok = 0

        async def call(amount: int) -> None:
            nonlocal ok
            for _ in range(ROUNDS):
                answer = await client.post(
                    f"/Stock/{method}", json={"category": "c", "amount": amount}
                )
                assert answer.status_code in (200, 409), answer.text
                if answer.status_code == 200:
                    assert answer.json() == 3
                    ok += amount

        await asyncio.gather(*(call(1) for _ in range(CALLERS)))
        assert ok > 0
        for i in range(3):
            record = (await client.get(f"/Stock/s{i}")).json()
            assert record["stock"] == ok, (method, record, ok)


async def test_search_then_static_patch_loses_no_update(database: str) -> None:
    await _hammer(database, "restock_by_id")


async def test_search_then_instance_patch_loses_no_update(database: str) -> None:
    await _hammer(database, "restock_instance")


async def test_search_then_put_loses_no_update(database: str) -> None:
    await _hammer(database, "restock_put")


async def test_explicit_transaction_search_then_write_conflicts(database: str) -> None:
    """``app.transaction()``: a record read by search and changed before commit is a 409."""
    from charter.errors import Conflict

    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await client.post("/Stock/", json={"id": "x", "category": "c", "stock": 1})
        try:
            async with app.transaction():
                async for item in Stock.search(_in("c")):
                    other = await client.patch("/Stock/x", json={"stock": 100})
                    assert other.status_code == 204
                    await Stock.patch(item.id, {"stock": item.stock + 1})
        except Conflict:
            pass
        else:
            raise AssertionError("the stale write was committed")
        assert (await client.get("/Stock/x")).json()["stock"] == 100


async def test_concurrent_patches_by_id_outside_a_request_all_apply(database: str) -> None:
    """``Table.patch(id, changes)`` reads the record in the transaction that writes it: a
    conflict re-runs both, so concurrent patches by id from script code all succeed."""
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await client.post("/Stock/", json={"id": "x", "category": "c", "stock": 0})

        async def bump(i: int) -> None:
            await Stock.patch("x", {"category": f"c{i}"})
            await Stock.add_to("x", "stock", 1)

        await asyncio.gather(*(bump(i) for i in range(8)))
        assert (await client.get("/Stock/x")).json()["stock"] == 8


async def test_contended_read_modify_write_requests_all_commit(database: str) -> None:
    """Eight callers hammer one record with read-modify-write requests: a request that lost a
    round goes first on its re-run (``charter.runtime.contention``), so none runs out of retries."""
    app = App(tables=[Stock], database=database)
    async with TestClient(app) as client:
        await client.post("/Stock/", json={"id": "hot", "category": "c"})
        statuses: list[int] = []

        async def caller() -> None:
            for _ in range(15):
                answer = await client.post("/Stock/bump", json={"id": "hot"})
                statuses.append(answer.status_code)

        await asyncio.gather(*(caller() for _ in range(8)))
        assert statuses == [200] * 120
        assert (await client.get("/Stock/hot")).json()["stock"] == 120

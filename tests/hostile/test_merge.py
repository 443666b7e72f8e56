"""MERGE: attributes set in whatever version of a record is current at commit.

Blind PATCHes of one record used to read it, write the whole record back checked against the
version they read, and collide: one wins, the others retry and collide again. A merge needs no
check, so concurrent merges never conflict and none is lost. It sets exactly what it is given
(a null is a null, an object replaces the old one), bumps the version, and finds a missing
record missing. Staged after another write of the same record in one transaction, it combines
with it. Through the storage and transaction API, on both backends.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from charter import App, Field, Table
from charter.errors import NotFound
from charter.runtime.transaction import Transaction, run_in_transaction
from charter.storage import Row
from charter.testing import TestClient


class Doc(Table, extra="allow"):
    id: str = Field(primary_key=True)
    name: str | None = ""
    n: int = 0
    price: float = 0.0
    meta: dict[str, Any] = Field(default_factory=dict)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _stored(app: App, key: str) -> tuple[dict[str, Any], int]:
    row = await app.database.fetch("Doc", key)
    assert row is not None
    return msgspec.json.decode(row.data), row.version


async def _put(app: App, key: str, document: dict[str, Any]) -> None:
    async def write(txn: Transaction) -> None:
        txn.put("Doc", key, _json(document))

    await run_in_transaction(app.database, write)


async def test_concurrent_merges_of_one_record_never_conflict(database: str) -> None:
    app = App(tables=[Doc], database=database)
    async with TestClient(app):
        await _put(app, "d", {"id": "d", "name": "d", "n": 0})
        _, before = await _stored(app, "d")

        async def merge(i: int) -> None:
            async def step(txn: Transaction) -> None:
                seen = await txn.read("Doc", "d")  # read, as a PATCH does, then merge blindly
                assert seen is not None
                txn.merge("Doc", "d", _json({f"f{i}": i, "name": f"by {i}"}))

            await run_in_transaction(app.database, step, attempts=1)  # a conflict would raise

        for _ in range(3):  # bounded: three bursts of 30 merges at once
            await asyncio.gather(*(merge(i) for i in range(30)))
        document, after = await _stored(app, "d")
        assert {document[f"f{i}"] for i in range(30)} == set(range(30))  # no merge lost
        assert document["name"].startswith("by ") and document["n"] == 0
        assert after > before


async def test_a_merge_sets_exactly_the_given_attributes(database: str) -> None:
    app = App(tables=[Doc], database=database)
    async with TestClient(app):
        original = {"id": "d", "name": "d", "n": 7, "price": 2.5, "meta": {"a": 1, "b": [1, 2]}}
        await _put(app, "d", original)
        _, before = await _stored(app, "d")
        plain = {
            "name": None,  # a null is set, not a deletion (json_patch would delete it)
            "meta": {"c": 3},  # an object replaces the old one (json_patch would merge them)
        }
        odd = {'odd "key"': "q", "a.b": 1, "back\\slash": [None, {"x": None}]}  # no JSON path
        for changes in (plain, odd):

            async def step(txn: Transaction, changes: dict[str, Any] = changes) -> None:
                txn.merge("Doc", "d", _json(changes))

            _, txn = await run_in_transaction(app.database, step)
            document, after = await _stored(app, "d")
            assert after > before and txn.versions[("Doc", "d")] == after
            before = after
        assert document == {**original, **plain, **odd}

        async def nothing(txn: Transaction) -> None:
            txn.merge("Doc", "d", "{}")

        await run_in_transaction(app.database, nothing)
        unchanged, bumped = await _stored(app, "d")
        assert unchanged == document and bumped > before


async def test_a_merge_of_a_missing_record_is_a_404_and_changes_nothing(database: str) -> None:
    app = App(tables=[Doc], database=database)
    async with TestClient(app):

        async def step(txn: Transaction) -> None:
            txn.put("Doc", "other", _json({"id": "other", "n": 1}))
            txn.merge("Doc", "ghost", _json({"n": 1}))

        with pytest.raises(NotFound):
            await run_in_transaction(app.database, step)
        assert await app.database.fetch("Doc", "ghost") is None
        assert await app.database.fetch("Doc", "other") is None  # the whole change set failed


async def test_a_merge_combines_with_the_writes_staged_before_and_after_it(
    database: str,
) -> None:
    app = App(tables=[Doc], database=database)
    async with TestClient(app):
        await _put(app, "d", {"id": "d", "name": "d", "n": 1, "meta": {}})

        async def staged(txn: Transaction) -> Row | None:
            txn.merge("Doc", "d", _json({"n": 2}))
            txn.merge("Doc", "d", _json({"name": "e"}))  # two merges: both sets of attributes
            return await txn.read("Doc", "d")  # the transaction sees its own merges

        seen, _ = await run_in_transaction(app.database, staged)
        assert seen is not None
        assert msgspec.json.decode(seen.data) == {"id": "d", "name": "e", "n": 2, "meta": {}}
        assert (await _stored(app, "d"))[0] == {"id": "d", "name": "e", "n": 2, "meta": {}}

        async def put_then_merge(txn: Transaction) -> None:
            txn.put("Doc", "p", _json({"id": "p", "name": "p", "n": 1}), insert=True)
            txn.merge("Doc", "p", _json({"n": 5}))  # folded into the insert

        await run_in_transaction(app.database, put_then_merge)
        assert (await _stored(app, "p"))[0] == {"id": "p", "name": "p", "n": 5}

        async def merge_then_put(txn: Transaction) -> None:
            txn.merge("Doc", "p", _json({"n": 6}))
            txn.put("Doc", "p", _json({"id": "p", "name": "q"}))  # the whole record wins

        await run_in_transaction(app.database, merge_then_put)
        assert (await _stored(app, "p"))[0] == {"id": "p", "name": "q"}

        async def increment_then_merge(txn: Transaction) -> None:
            txn.increment("Doc", "d", "n", 10)
            txn.merge("Doc", "d", _json({"name": "f"}))

        await run_in_transaction(app.database, increment_then_merge)
        assert (await _stored(app, "d"))[0] == {"id": "d", "name": "f", "n": 12, "meta": {}}

        async def delete_then_merge(txn: Transaction) -> None:
            txn.delete("Doc", "d")
            txn.merge("Doc", "d", _json({"n": 1}))

        with pytest.raises(NotFound):
            await run_in_transaction(app.database, delete_then_merge)
        assert (await _stored(app, "d"))[0]["name"] == "f"  # nothing was committed

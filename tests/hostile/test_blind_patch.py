"""Point 8 of the hardening issue: PATCHes without a precondition never conflict.

A PATCH with no ``If-Match`` (and no hook or override that must see the stored record) is
merged at commit into whatever version is current, so clients patching one record at once all
get 204 and every attribute ends with the last value its own client wrote.
"""

from __future__ import annotations

import asyncio

from charter import App, Field, Table
from charter.testing import TestClient

CLIENTS = 8
ROUNDS = 20


class Board(Table):
    id: str = Field(primary_key=True)
    a0: int = 0
    a1: int = 0
    a2: int = 0
    a3: int = 0
    a4: int = 0
    a5: int = 0
    a6: int = 0
    a7: int = 0
    touched: int = Field(default=0, updated_time=True)


async def test_concurrent_blind_patches_all_apply(database: str) -> None:
    app = App(tables=[Board], database=database)
    async with TestClient(app) as client:
        assert (await client.put("/Board/b", json={})).status_code == 204
        statuses: list[int] = []

        async def writer(i: int) -> None:
            for j in range(1, ROUNDS + 1):
                answer = await client.patch("/Board/b", json={f"a{i}": j})
                statuses.append(answer.status_code)

        await asyncio.gather(*(writer(i) for i in range(CLIENTS)))
        assert statuses == [204] * (CLIENTS * ROUNDS)
        record = (await client.get("/Board/b")).json()
        assert [record[f"a{i}"] for i in range(CLIENTS)] == [ROUNDS] * CLIENTS
        assert record["touched"] > 0


def test_a_blind_patch_of_a_missing_record_is_404_and_writes_nothing(serve) -> None:
    client = serve(Board)
    response = client.patch("/Board/nope", json={"a0": 1})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert client.get("/Board/nope").status_code == 404


def test_a_blind_patch_answers_an_etag_and_validates(serve) -> None:
    client = serve(Board)
    client.put("/Board/b", json={})
    before = client.get("/Board/b").headers["etag"]
    patched = client.patch("/Board/b", json={"a1": 5})
    assert patched.status_code == 204
    assert patched.headers["etag"] != before
    assert patched.headers["etag"] == client.get("/Board/b").headers["etag"]
    assert client.patch("/Board/b", json={"a1": "5"}).status_code == 422
    assert client.patch("/Board/b", json={"nope": 1}).status_code == 422
    assert client.get("/Board/b").json()["a1"] == 5


async def test_a_blind_patch_does_not_read_the_record_first(database: str) -> None:
    """What makes it conflict-free: nothing was read, so there is no version to check."""
    app = App(tables=[Board], database=database)
    async with TestClient(app) as client:
        await client.put("/Board/b", json={})
        reads = 0
        fetch = app.database.fetch

        async def counting_fetch(table: str, key: object) -> object:
            nonlocal reads
            reads += 1
            return await fetch(table, key)

        app.database.fetch = counting_fetch  # type: ignore[method-assign]
        try:
            assert (await client.patch("/Board/b", json={"a0": 1})).status_code == 204
            assert reads == 0
            checked = await client.patch("/Board/b", json={"a0": 2}, headers={"if-match": "*"})
            assert checked.status_code == 204
            assert reads == 1  # with a precondition the record is read and version-checked
        finally:
            app.database.fetch = fetch  # type: ignore[method-assign]

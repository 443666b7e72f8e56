"""Searches inside a transaction see its pending writes: ``Table.search``, the REST collection
GET (counts, sort, paging, select, joins), row rules; and a search of tables the transaction
did not write reads committed data as always. A property test compares "search inside the
transaction" with "commit, then search" for random sequences of writes."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charter import App, Condition, Field, Grant, Query, Role, Table, User, relationship
from charter.auth import add_user
from charter.runtime.transaction import _current
from charter.testing import TestClient


class Brand(Table):
    id: str = Field(primary_key=True)
    name: str = Field(default="", indexed=True)


class Item(Table):
    id: str = Field(primary_key=True)
    name: str = Field(default="", indexed=True)
    n: int = Field(default=0, indexed=True)
    brand_id: str | None = Field(default=None, indexed=True)
    brand: Brand | None = relationship(from_="brand_id")


async def ids(query: dict[str, Any] | None = None) -> list[str]:
    return [item.id async for item in Item.search(query)]


async def test_a_search_sees_puts_patches_deletes_and_increments(database: str) -> None:
    app = App(tables=[Brand, Item], database=database)
    async with TestClient(app) as client:
        for i, name in enumerate(["a", "b", "c"]):
            await Item.put({"id": name, "name": name, "n": i})
        async with app.transaction():
            await Item.delete("a")
            await Item.put({"id": "d", "name": "d", "n": 10})
            await Item.patch("b", {"n": 20})
            await Item.add_to("c", "n", 30)  # c: 32
            assert await ids({"sort": {"attribute": "n"}}) == ["d", "b", "c"]
            big = {"conditions": [{"attribute": "n", "comparator": "gt", "value": 15}]}
            assert await ids(big) == ["b", "c"]
            found = {item.id: item.n async for item in Item.search(None)}
            assert found == {"b": 20, "c": 32, "d": 10}
            # The same through HTTP, in a request of its own: committed data only.
            outside = (await client.get("/Item/?sort(n)")).json()
            assert [r["id"] for r in outside] == ["a", "b", "c"]
        committed = (await client.get("/Item/?sort(n)")).json()
        assert [r["id"] for r in committed] == ["d", "b", "c"]


async def test_joins_and_selects_see_pending_writes_of_related_tables(database: str) -> None:
    app = App(tables=[Brand, Item], database=database)
    async with TestClient(app):
        await Brand.put({"id": "acme", "name": "Acme"})
        await Item.put({"id": "x", "name": "x", "brand_id": "acme"})
        async with app.transaction():
            await Brand.patch("acme", {"name": "Acme 2"})  # a write to the joined table only
            joined = {"conditions": [{"attribute": "brand.name", "value": "Acme 2"}]}
            assert await ids(joined) == ["x"]
            assert await ids({"conditions": [{"attribute": "brand.name", "value": "Acme"}]}) == []
            await Brand.put({"id": "new", "name": "New"})
            await Item.put({"id": "y", "name": "y", "brand_id": "new"})
            selected = [
                row
                async for row in Item.search(
                    {
                        "select": ["id", {"name": "brand", "select": ["name"]}],
                        "sort": {"attribute": "id"},
                    }
                )
            ]
            assert selected == [
                {"id": "x", "brand": {"name": "Acme 2"}},
                {"id": "y", "brand": {"name": "New"}},
            ]


async def test_count_sort_limit_and_offset_in_a_request(database: str) -> None:
    """A handler that writes, then pages and counts (the reads REST's collection GET uses)."""

    class Batch(Table):
        id: str = Field(primary_key=True)

        async def post(self, data):  # type: ignore[no-untyped-def]
            for i in range(5):
                await Item.put({"id": f"new{i}", "name": "new", "n": 100 + i})
            await Item.delete("old0")
            newest = {"sort": {"attribute": "n", "descending": True}, "limit": 2, "offset": 1}
            page = [item.id async for item in Item.search(newest)]
            reads = app.tables["Item"].reads
            schema = app.tables["Item"].schema
            named = Query.coerce({"conditions": [{"attribute": "name", "value": "new"}]})
            total = await reads.count(schema, named)
            counted, rows = await reads.search_counted(schema, Query(limit=3))
            listed = [row async for row in rows]
            return {"id": data["id"], "page": page, "total": total, "all": counted,
                    "listed": len(listed)}  # fmt: skip

    app = App(tables=[Brand, Item, Batch], database=database)
    async with TestClient(app) as client:
        await Item.put({"id": "old0", "name": "old", "n": 0})
        await Item.put({"id": "old1", "name": "old", "n": 1})
        response = await client.post("/Batch/", json={"id": "b"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["page"] == ["new3", "new2"]
        assert (body["total"], body["all"], body["listed"]) == (5, 6, 3)


class Note(Table):
    id: str = Field(primary_key=True)
    owner: str = Field(default="", indexed=True)
    text: str = ""

    @classmethod
    def read_filter(cls, user: User | None) -> Any:
        return Condition("owner", "equals", user.username if user else "")


class Writer(Table):
    """POST /Writer/ writes notes as the signed-in user, then lists what that user sees."""

    id: str = Field(primary_key=True)

    async def post(self, data):  # type: ignore[no-untyped-def]
        context = self.get_context()
        me = context.user.username
        await Note.put({"id": "mine-new", "owner": me, "text": "new"}, context)
        # A write of a record created in this transaction: its row rule is checked on the
        # record as staged (it is not committed yet).
        await Note.patch("mine-new", {"text": "edited"}, context)
        await Note.put({"id": "theirs-new", "owner": "bob", "text": "new"})  # server code
        await Note.delete("mine-old", context)
        seen = sorted([(n.id, n.text) async for n in Note.search(None, context)])
        return {"id": data["id"], "seen": seen}


async def test_row_rules_apply_to_pending_writes_as_to_committed_ones(database: str) -> None:
    roles = [
        Role("writer", tables={"Note": Grant(read=True, insert=True, update=True, delete=True),
                               "Writer": Grant(read=True, insert=True)})
    ]  # fmt: skip
    app = App(tables=[Note, Writer], database=database, auth=True, roles=roles)
    async with TestClient(app) as client:
        await add_user(app, "ann", "secret-ann-1", role="writer")
        await Note.put({"id": "mine-old", "owner": "ann"})
        await Note.put({"id": "mine-kept", "owner": "ann"})
        await Note.put({"id": "theirs-old", "owner": "bob"})
        response = await client.post("/Writer/", json={"id": "w"}, auth=("ann", "secret-ann-1"))
        assert response.status_code == 201, response.text
        assert response.json()["seen"] == [["mine-kept", ""], ["mine-new", "edited"]]
        listed = (await client.get("/Note/", auth=("ann", "secret-ann-1"))).json()
        assert sorted(n["id"] for n in listed) == ["mine-kept", "mine-new"]


class Folder(Table):
    id: str = Field(primary_key=True)
    owner: str = Field(default="", indexed=True)


class Doc(Table):
    """Readable by the owner of its folder: a row rule through a relationship."""

    id: str = Field(primary_key=True)
    folder_id: str = Field(default="", indexed=True)
    folder: Folder | None = relationship(from_="folder_id")

    @classmethod
    def read_filter(cls, user: User | None) -> Any:
        return Condition("folder.owner", "equals", user.username if user else "")


class Handover(Table):
    """POST /Handover/ gives folder f2 to the signed-in user, then lists the docs they see."""

    id: str = Field(primary_key=True)

    async def post(self, data):  # type: ignore[no-untyped-def]
        context = self.get_context()
        await Folder.patch("f2", {"owner": context.user.username})  # the related table only
        seen = sorted([d.id async for d in Doc.search(None, context)])
        return {"id": data["id"], "seen": seen}


async def test_a_row_rule_through_a_relationship_sees_pending_writes(database: str) -> None:
    roles = [Role("reader", tables={"Doc": Grant(read=True), "Folder": Grant(read=True),
                                     "Handover": Grant(read=True, insert=True)})]  # fmt: skip
    app = App(tables=[Folder, Doc, Handover], database=database, auth=True, roles=roles)
    async with TestClient(app) as client:
        await add_user(app, "ann", "secret-ann-1", role="reader")
        await Folder.put({"id": "f1", "owner": "ann"})
        await Folder.put({"id": "f2", "owner": "bob"})
        await Doc.put({"id": "d1", "folder_id": "f1"})
        await Doc.put({"id": "d2", "folder_id": "f2"})
        response = await client.post("/Handover/", json={"id": "h"}, auth=("ann", "secret-ann-1"))
        assert response.status_code == 201, response.text
        assert response.json()["seen"] == ["d1", "d2"]


async def test_a_search_of_an_unwritten_table_reads_committed_data(database: str) -> None:
    app = App(tables=[Brand, Item], database=database)
    async with TestClient(app):
        await Brand.put({"id": "b1", "name": "B"})
        storage = app.database
        calls: list[str] = []
        original = storage.search_with

        async def spy(*args: Any, **kwargs: Any) -> Any:
            calls.append("search_with")
            return await original(*args, **kwargs)

        storage.search_with = spy  # type: ignore[method-assign]
        async with app.transaction():
            await Item.put({"id": "i1", "name": "i"})
            assert [b.id async for b in Brand.search(None)] == ["b1"]
            assert calls == []  # Brand was not written: the committed read
            assert await ids() == ["i1"]
            assert calls == ["search_with"]
        async with app.transaction():
            assert await ids() == ["i1"]
            assert calls == ["search_with"]  # no pending writes: the committed read


async def test_records_a_search_read_are_still_version_checked(database: str) -> None:
    """A search with pending writes records the versions it read: a record changed by
    another transaction before the commit is a conflict, and the function is re-run."""
    app = App(tables=[Brand, Item], database=database)
    async with TestClient(app):
        await Item.put({"id": "a", "n": 1})
        runs = 0

        async def step() -> None:
            nonlocal runs
            runs += 1
            await Item.put({"id": "other", "n": runs})  # a pending write: the overlay path
            where = {"conditions": [{"attribute": "id", "value": "a"}]}
            (found,) = [item async for item in Item.search(where)]
            if runs == 1:  # another transaction commits a change of "a" meanwhile
                await asyncio.ensure_future(_elsewhere(Item.put({"id": "a", "n": 100})))
            await Item.put({"id": "a", "n": found.n + 1})

        await app.transaction(step, retries=3)
        assert runs == 2
        assert (await Item.get("a")).n == 101
        assert (await Item.get("other")).n == 2


async def test_a_record_found_as_staged_can_be_written_again(database: str) -> None:
    """A record the transaction wrote comes back from a search as staged (version 0, as from
    ``get``): writing it again checks the version the transaction read, not one the pending
    read made up (which would conflict at every commit)."""
    app = App(tables=[Brand, Item], database=database)
    async with TestClient(app) as client:
        await Item.put({"id": "a", "n": 1})
        async with app.transaction():
            await Item.add_to("a", "n", 1)  # blind: nothing read
            (found,) = [
                item
                async for item in Item.search({"conditions": [{"attribute": "id", "value": "a"}]})
            ]
            assert found.n == 2
            await found.patch({"name": "seen"})
        body = (await client.get("/Item/a")).json()
        assert (body["n"], body["name"]) == (2, "seen")


async def _elsewhere(write: Any) -> None:
    """Run ``write`` outside the current transaction (committed on its own)."""
    token = _current.set(None)
    try:
        await write
    finally:
        _current.reset(token)


# -- a property: search inside the transaction == commit, then search ------------------------

KEYS = ["k0", "k1", "k2", "k3"]
step = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(-5, 5)),
    st.tuples(st.just("patch"), st.sampled_from(KEYS), st.integers(-5, 5)),
    st.tuples(st.just("delete"), st.sampled_from(KEYS), st.just(0)),
    st.tuples(st.just("add_to"), st.sampled_from(KEYS), st.integers(-3, 3)),
    st.tuples(st.just("merge"), st.sampled_from(KEYS), st.integers(-5, 5)),
)
QUERIES: list[dict[str, Any]] = [
    {},
    {"sort": {"attribute": "n", "next": {"attribute": "id"}}},
    {
        "conditions": [{"attribute": "n", "comparator": "ge", "value": 0}],
        "sort": {"attribute": "id"},
    },
    {
        "sort": {"attribute": "n", "descending": True, "next": {"attribute": "id"}},
        "limit": 2,
        "offset": 1,
    },
    {"conditions": [{"attribute": "brand.name", "value": "B"}], "sort": {"attribute": "id"}},
]


async def apply(app: App, steps: list[tuple[str, str, int]], model: dict[str, int]) -> None:
    """Run ``steps`` in the current transaction, and on ``model`` (what each would do run
    alone, one after the other); after each step ``get`` answers what the model holds."""
    runtime = app.tables["Item"]
    for kind, key, value in steps:
        exists = await Item.get(key) is not None
        if kind == "put":
            await Item.put({"id": key, "n": value, "brand_id": "b" if value % 2 else None})
            model[key] = value
        elif kind == "delete":
            await Item.delete(key)
            model.pop(key, None)
        elif exists and kind == "patch":
            await Item.patch(key, {"n": value})
            model[key] = value
        elif exists and kind == "add_to":
            await Item.add_to(key, "n", value)
            model[key] += value
        elif exists and kind == "merge":
            await runtime.merge_blind(key, {"n": value})
            model[key] = value
        record = await Item.get(key)
        assert (record.n if record is not None else None) == model.get(key), (kind, key)


async def snapshot(app: App) -> list[list[Any]]:
    runtime = app.tables["Item"]
    out: list[list[Any]] = []
    for query in QUERIES:
        out.append([await runtime.reads.count(runtime.schema, Query.coerce(query))])
        found = [(i.id, i.n) async for i in Item.search(query)]
        out.append(found if "sort" in query else sorted(found))  # (no sort: any order)
    out.append([await Item.get(key) is not None for key in KEYS])
    return out


def test_search_inside_equals_commit_then_search(database: str) -> None:
    """For random put/patch/delete/add_to/merge sequences (on random committed data): every
    query answers inside the transaction what it answers after the commit, and what is
    committed is what the writes do run one after the other (statement order)."""
    app = App(tables=[Brand, Item], database=database)
    with TestClient(app) as client:
        client.put("/Brand/b", json={"name": "B"})

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(before=st.lists(step, max_size=4), steps=st.lists(step, min_size=1, max_size=8))
        def check(before: list[tuple[str, str, int]], steps: list[tuple[str, str, int]]) -> None:
            async def run() -> None:
                model: dict[str, int] = {}
                async with app.transaction():
                    for key in KEYS:
                        await Item.delete(key)
                    await apply(app, before, model)
                async with app.transaction():
                    await apply(app, steps, model)
                    inside = await snapshot(app)
                after = await snapshot(app)
                assert inside == after, (before, steps)
                committed = {item.id: item.n async for item in Item.search(None)}
                assert committed == model, (before, steps)  # statement order, as committed

            client.run(run())

        check()

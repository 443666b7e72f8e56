"""The PostgreSQL backend: versions, optimistic checks, increments, error mapping, explain."""

from __future__ import annotations

import asyncio
import urllib.parse

import asyncpg
import pytest

from charter import App, Field, Table
from charter.errors import Conflict, Unavailable, ValidationError
from charter.storage import ConflictError, StorageFull, open_storage
from charter.storage.postgres import PostgresStorage
from charter.storage.postgres_dialect import POSTGRES, adapt
from charter.storage.postgres_errors import Outcome, outcome, translate
from charter.storage.postgres_pool import pool_options
from charter.testing import TestClient


class Item(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    n: int = 0


class Numbered(Table):
    id: int = Field(primary_key=True)
    label: str = ""


async def _sql(url: str, statement: str, *args: object) -> object:
    parts = urllib.parse.urlsplit(url)
    conn = await asyncpg.connect(url)
    try:
        assert "search_path" in parts.query
        return await conn.fetchval(statement, *args)
    finally:
        await conn.close()


# -- the SQLSTATE table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (asyncpg.exceptions.UniqueViolationError("dup"), Outcome.CONFLICT),
        (asyncpg.exceptions.SerializationError("ser"), Outcome.RETRY),
        (asyncpg.exceptions.DeadlockDetectedError("dl"), Outcome.RETRY),
        (asyncpg.exceptions.AdminShutdownError("bye"), Outcome.UNAVAILABLE),
        (asyncpg.exceptions.CannotConnectNowError("starting"), Outcome.UNAVAILABLE),
        (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), Outcome.UNAVAILABLE),
        (asyncpg.exceptions.ConnectionFailureError("08006"), Outcome.UNAVAILABLE),
        (asyncpg.exceptions.TooManyConnectionsError("53300"), Outcome.UNAVAILABLE),
        (ConnectionRefusedError(111, "refused"), Outcome.UNAVAILABLE),
        (TimeoutError(), Outcome.UNAVAILABLE),
        (asyncpg.exceptions.UntranslatableCharacterError("nul"), Outcome.INVALID),
        (asyncpg.exceptions.UndefinedTableError("no table"), None),
        (asyncpg.exceptions.DataError("client-side bad value"), None),
        (ValueError("not a database error"), None),
    ],
)
def test_driver_errors_are_mapped_by_sqlstate(error: BaseException, expected: Outcome) -> None:
    assert outcome(error) is expected


def test_mapped_errors_are_charter_errors() -> None:
    unavailable = translate(asyncpg.exceptions.AdminShutdownError("bye"))
    assert isinstance(unavailable, Unavailable)
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"]
    assert isinstance(translate(asyncpg.exceptions.UniqueViolationError("d")), Conflict)
    assert isinstance(translate(asyncpg.exceptions.SerializationError("s")), ConflictError)
    assert isinstance(
        translate(asyncpg.exceptions.UntranslatableCharacterError("")), ValidationError
    )
    full = translate(asyncpg.exceptions.DiskFullError("no space"))
    assert isinstance(full, StorageFull) and isinstance(full, Unavailable)  # as SQLite's FULL
    assert (full.status_code, full.code, full.headers["retry-after"]) == (503, "STORAGE_FULL", "30")
    assert outcome(asyncpg.exceptions.OutOfMemoryError("oom")) is Outcome.UNAVAILABLE


# -- configuration --------------------------------------------------------------------------------


def test_open_storage_picks_the_backend_and_the_pool_size(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = open_storage("postgresql://u@h/db", pool_size=7)
    assert isinstance(storage, PostgresStorage) and storage.pool_size == 7
    assert isinstance(open_storage("postgres://u@h/db"), PostgresStorage)
    assert pool_options("postgresql://u@h/db?pool_size=3&search_path=s", 9, None) == (
        "postgresql://u@h/db?search_path=s",
        3,
        10.0,
    )
    assert pool_options("postgresql://u@h/db?pool_timeout=2.5", None, 7) == (
        "postgresql://u@h/db",
        10,
        2.5,
    )
    with pytest.raises(ValueError, match="unsupported database URL"):
        open_storage("mysql://u@h/db")
    monkeypatch.setenv("CHARTER_POOL_SIZE", "4")
    app = App(tables=[Item], database="postgresql://u@h/db")
    assert app.config.pool_size == 4
    assert isinstance(app.database, PostgresStorage) and app.database.pool_size == 4
    monkeypatch.setenv("CHARTER_POOL_TIMEOUT", "0.5")
    app = App(tables=[Item], database="postgresql://u@h/db")
    assert isinstance(app.database, PostgresStorage) and app.database.pool_timeout == 0.5


def test_adapt_numbers_parameters_outside_quotes() -> None:
    sql = "SELECT 1 FROM t WHERE a = '?' AND \"b?\" = ? AND c = '' LIMIT ? OFFSET ?"
    assert adapt(sql) == (
        "SELECT 1 FROM t WHERE a = '?' AND \"b?\" = $1 AND c = '' LIMIT $2 OFFSET $3"
    )


def test_the_dialect_spells_postgresql() -> None:
    """Nulls sort as on SQLite; the empty string is a jsonb literal."""
    assert POSTGRES.order_term("c", True) == "c DESC NULLS LAST"
    assert POSTGRES.order_term("d", False) == "d NULLS FIRST"
    assert POSTGRES.empty_text == "'\"\"'"
    assert POSTGRES.finish("a = ? AND b = ?") == "a = $1 AND b = $2"


# -- semantics ------------------------------------------------------------------------------------


def test_versions_strictly_increase_even_behind_a_clock(postgres_url: str) -> None:
    with TestClient(App(tables=[Item], database=postgres_url)) as client:
        assert client.put("/Item/a", json={"name": "a"}).status_code == 204
        first = int(client.get("/Item/a").headers["etag"].strip('"'))
        future = first + 10_000_000
        asyncio.run(_sql(postgres_url, 'UPDATE "Item" SET version = $1', future))
        assert client.put("/Item/a", json={"name": "b"}).status_code == 204
        assert int(client.get("/Item/a").headers["etag"].strip('"')) == future + 1
        versions = []
        for i in range(20):
            client.patch("/Item/a", json={"n": i})
            versions.append(int(client.get("/Item/a").headers["etag"].strip('"')))
        assert versions == sorted(set(versions))


def test_create_conflict_increment_and_integer_keys(postgres_url: str) -> None:
    with TestClient(App(tables=[Item, Numbered], database=postgres_url)) as client:
        assert client.post("/Item/", json={"id": "x", "name": "x"}).status_code == 201
        duplicate = client.post("/Item/", json={"id": "x", "name": "y"})
        assert duplicate.status_code == 409
        assert duplicate.json()["error"]["code"] == "CONFLICT"
        assert client.put("/Numbered/7", json={"label": "seven"}).status_code == 204
        assert client.get("/Numbered/7").json() == {"id": 7, "label": "seven"}
        assert client.get("/Numbered/?id=gt=6").json() == [{"id": 7, "label": "seven"}]

        async def increments() -> None:
            await asyncio.gather(*(Item.add_to("x", "n", 1) for _ in range(50)))
            await Item.add_to("x", "n", 0.5)

        asyncio.run(increments())
        assert client.get("/Item/x").json()["n"] == 50.5
        with pytest.raises(Exception) as missing:
            asyncio.run(Item.add_to("nobody", "n", 1))
        assert getattr(missing.value, "status_code", None) == 404


def test_a_nul_character_is_a_422_not_a_500(postgres_url: str) -> None:
    with TestClient(App(tables=[Item], database=postgres_url)) as client:
        response = client.put("/Item/z", json={"name": "a\u0000b"})
        assert response.status_code == 422


def test_explain_reports_postgresqls_plan_on_the_declared_index(postgres_url: str) -> None:
    with TestClient(App(tables=[Item], database=postgres_url)) as client:

        async def fill() -> None:
            conn = await asyncpg.connect(postgres_url)
            try:
                await conn.execute(
                    "INSERT INTO \"Item\" (id, data, version) SELECT to_jsonb('i' || g), "
                    "jsonb_build_object('id', 'i' || g, 'name', 'n' || g, 'n', g), 1 "
                    "FROM generate_series(1, 5000) AS g"
                )
                await conn.execute('ANALYZE "Item"')
            finally:
                await conn.close()

        asyncio.run(fill())
        plan = client.get("/Item/?name=n42&explain(true)").json()
        assert plan["conditions"][0]["access"] == "index"
        assert any("Index" in line and "Item__name" in line for line in plan["postgresql"])
        assert [i["id"] for i in client.get("/Item/?name=n42").json()] == ["i42"]
        assert client.get("/Item/?name=sw=n4999").json()[0]["id"] == "i4999"


def test_the_storage_proxy_says_it_needs_sqlite(postgres_url: str) -> None:
    app = App(tables=[Item], database=postgres_url)

    async def use() -> None:
        await app.startup()
        try:
            with pytest.raises(Exception) as failed:
                await app.storage.carts.set("k", {"a": 1})
            assert getattr(failed.value, "status_code", None) == 501
            assert "SQLite" in str(failed.value)
        finally:
            await app.shutdown()

    asyncio.run(use())


def test_postgresql_down_at_start_is_503_unavailable() -> None:
    app = App(tables=[Item], database="postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(Unavailable):
        asyncio.run(app.startup())

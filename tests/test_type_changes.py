"""Re-declaring a field with another type converts its stored values, or refuses to start.

Issue 9, part 3: ``stock: int`` -> ``stock: str`` used to migrate silently; queries then missed
the old values. Each test writes records with one declaration, starts again with another and
checks what clients see (both backends).
"""

import asyncio
import contextlib
import logging
import sqlite3
from typing import Any

import pytest

from charter import App, CharterError, Field, Table
from charter.testing import TestClient


def table(stock_type: Any, key_type: Any = str) -> type[Table]:
    """The ``Product`` table with ``stock`` (indexed) of the given type."""

    class Product(Table):
        id: key_type = Field(primary_key=True)  # type: ignore[valid-type]
        name: str = ""
        stock: stock_type = Field(indexed=True)  # type: ignore[valid-type]

    return Product


def write(database: str, stock: Any, values: dict[str, Any], key: Any = str) -> dict[str, str]:
    """Store ``{id: stock}`` under a declaration; the ETag of each record."""
    with TestClient(App(tables=[table(stock, key)], database=database)) as client:
        for id_, value in values.items():
            response = client.put(f"/Product/{id_}", json={"name": f"n{id_}", "stock": value})
            assert response.status_code == 204, response.text
        return {str(id_): client.get(f"/Product/{id_}").headers["etag"] for id_ in values}


def refusal(database: str, stock: Any, key: Any = str) -> str:
    """Why the app refuses to start with ``stock`` declared as ``stock``."""
    app = App(tables=[table(stock, key)], database=database)
    with pytest.raises(CharterError) as refused:
        asyncio.run(app.startup())
    asyncio.run(app.shutdown())
    assert not app.started
    return str(refused.value)


def stocks(client: TestClient, query: str = "sort(id)") -> dict[str, Any]:
    response = client.get(f"/Product/?{query}")
    assert response.status_code == 200, response.text
    return {r["id"]: r["stock"] for r in response.json()}


def test_int_to_str_converts_every_value(database, caplog):
    etags = write(database, int, {"a": 5, "b": 12, "c": -3})
    app = App(tables=[table(str)], database=database)
    with caplog.at_level(logging.WARNING, logger="charter"), TestClient(app) as client:
        assert stocks(client) == {"a": "5", "b": "12", "c": "-3"}
        # a rewritten record is a new version: a cached copy is not revalidated as current
        assert client.get("/Product/a", headers={"if-none-match": etags["a"]}).status_code == 200
        assert stocks(client, "stock=5") == {"a": "5"}
        assert stocks(client, "stock=sw=1") == {"b": "12"}
        # string order now, through the index: "-3" < "12" < "5"
        assert list(stocks(client, "sort(stock)")) == ["c", "b", "a"]
        assert client.patch("/Product/a", json={"name": "x"}).status_code == 204
        assert client.get("/Product/a").json() == {"id": "a", "name": "x", "stock": "5"}
        assert client.patch("/Product/b", json={"stock": "many"}).status_code == 204
    assert any("stock" in r.getMessage() and "3 stored" in r.getMessage() for r in caplog.records)


def test_str_to_int_converts_when_every_value_parses(database):
    write(database, str, {"a": "5", "b": "-12", "c": "0"})
    with TestClient(App(tables=[table(int)], database=database)) as client:
        assert stocks(client) == {"a": 5, "b": -12, "c": 0}
        assert stocks(client, "stock=gt=0") == {"a": 5}
        assert list(stocks(client, "sort(stock)")) == ["b", "c", "a"]
        assert client.patch("/Product/c", json={"name": "y"}).status_code == 204
        assert client.get("/Product/c").json() == {"id": "c", "name": "y", "stock": 0}


def test_int_and_float_convert_both_ways_when_exact(database):
    write(database, int, {"a": 5, "b": 7})
    with TestClient(App(tables=[table(float)], database=database)) as client:
        assert stocks(client) == {"a": 5.0, "b": 7.0}
        assert client.put("/Product/c", json={"stock": 2.0}).status_code == 204
    with TestClient(App(tables=[table(int)], database=database)) as client:
        assert stocks(client) == {"a": 5, "b": 7, "c": 2}
        assert all(type(v) is int for v in stocks(client).values())
        assert stocks(client, "stock=5") == {"a": 5}


def test_widening_to_optional_rewrites_nothing(database):
    etags = write(database, int, {"a": 5, "b": 7})
    with TestClient(App(tables=[table(int | None)], database=database)) as client:
        assert {k: client.get(f"/Product/{k}").headers["etag"] for k in etags} == etags
        assert client.put("/Product/c", json={"stock": None}).status_code == 204
    message = refusal(database, int)
    assert "1 of 3 stored records" in message and 'id "c": null' in message
    with TestClient(App(tables=[table(int | None)], database=database)) as client:
        assert client.delete("/Product/c").status_code == 204
    with TestClient(App(tables=[table(int)], database=database)) as client:
        assert stocks(client) == {"a": 5, "b": 7}


def test_a_restart_with_the_same_types_changes_nothing(database, caplog):
    write(database, int, {"a": 5})
    with TestClient(App(tables=[table(str)], database=database)) as client:
        etag = client.get("/Product/a").headers["etag"]
    caplog.clear()
    app = App(tables=[table(str)], database=database)
    with caplog.at_level(logging.WARNING, logger="charter"), TestClient(app) as client:
        assert client.get("/Product/a").headers["etag"] == etag
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("before", "values", "after", "bad", "example"),
    [
        (str, {"a": "5", "b": "five", "c": "7", "d": "x"}, int, 2, 'id "b": "five"'),
        (str, {"a": "5", "b": "05"}, int, 1, 'id "b": "05"'),
        (float, {"a": 1.0, "b": 2.5}, int, 1, 'id "b": 2.5'),
        (int, {"a": 1, "b": 2**60 + 1}, float, 1, f'id "b": {2**60 + 1}'),
        (bool, {"a": True, "b": False}, int, 2, 'id "a": true'),
        (int | None, {"a": 1, "b": None}, str, 1, 'id "b": null'),
        (list[int], {"a": [], "b": [1]}, int, 2, 'id "a": []'),
    ],
    ids=["words", "leading-zero", "fraction", "float-rounds", "bool", "null", "list"],
)
def test_a_lossy_change_refuses_to_start_and_changes_nothing(
    database, before, values, after, bad, example
):
    etags = write(database, before, values)
    message = refusal(database, after)
    old = {int | None: "int | None", list[int]: "list[int]"}.get(before) or before.__name__
    assert f"Product.stock changed type from {old} to {after.__name__}, but " in message
    assert f"{bad} of {len(values)} stored records" in message
    assert f"(e.g. {example} does not convert exactly to {after.__name__})" in message
    assert "Nothing was changed" in message and "new field" in message
    with TestClient(App(tables=[table(before)], database=database)) as client:
        assert stocks(client) == values
        assert {k: client.get(f"/Product/{k}").headers["etag"] for k in values} == etags


def test_a_primary_key_is_not_converted(database):
    write(database, int, {1: 5, 2: 6}, int)
    assert "Product.id changed type from int to str" in refusal(database, int, str)
    with TestClient(App(tables=[table(int, int)], database=database)) as client:
        assert stocks(client) == {1: 5, 2: 6}


def test_an_empty_table_takes_any_new_type(database):
    write(database, int, {}, int)
    with TestClient(App(tables=[table(str, str)], database=database)) as client:
        assert client.put("/Product/k", json={"stock": "x"}).status_code == 204
        assert stocks(client) == {"k": "x"}


def test_workers_starting_together_convert_once(database, caplog):
    write(database, str, {k: str(n) for n, k in enumerate("abcdef")})

    async def start_many() -> list[BaseException | None]:
        apps = [App(tables=[table(int)], database=database) for _ in range(4)]
        outcomes = await asyncio.gather(*(app.startup() for app in apps), return_exceptions=True)
        for app in apps:
            await app.shutdown()
        return list(outcomes)

    with caplog.at_level(logging.WARNING, logger="charter"):
        assert asyncio.run(start_many()) == [None] * 4
    converted = [r for r in caplog.records if "converted" in r.getMessage()]
    assert len(converted) == 1, [r.getMessage() for r in converted]
    with TestClient(App(tables=[table(int)], database=database)) as client:
        assert stocks(client) == {k: n for n, k in enumerate("abcdef")}


@pytest.mark.sqlite_only
def test_a_database_migrated_before_types_were_recorded_is_repaired(database):
    """Before this change the catalog held field names only, and ``int`` -> ``str`` went
    through silently: such a database is checked once against the declared types."""
    write(database, int, {"a": 5, "b": 6})
    with contextlib.closing(sqlite3.connect(database.removeprefix("sqlite:///"))) as conn:
        conn.execute("""UPDATE _charter_tables SET fields = '["id", "name", "stock"]'""")
        conn.commit()
    with TestClient(App(tables=[table(str)], database=database)) as client:
        assert stocks(client, "stock=5") == {"a": "5"}
    with contextlib.closing(sqlite3.connect(database.removeprefix("sqlite:///"))) as conn:
        conn.execute("""UPDATE _charter_tables SET fields = '["id", "name", "stock"]'""")
        conn.execute("""UPDATE "Product" SET data = json_set(data, '$.stock', 'x')""")
        conn.commit()
    assert "Product.stock is declared int (the type its values were written" in refusal(
        database, int
    )

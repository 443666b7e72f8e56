"""Re-declaring a table migrates its stored records (SQLite)."""

import contextlib
import logging
import sqlite3
from pathlib import Path

import pytest

from charter import App, Field, Table
from charter.testing import TestClient


class ItemV1(Table, name="Item"):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    legacy: str = ""


class ItemV2(Table, name="Item"):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    legacy: str = ""
    color: str = Field(default="black", indexed=True)
    tags: list[str] = Field(default_factory=lambda: ["new"])


class ItemV3(Table, name="Item"):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    color: str = Field(default="black", indexed=True)
    tags: list[str] = Field(default_factory=lambda: ["new"])


ROWS = [
    {"id": "a", "name": "Anvil", "legacy": "old-a"},
    {"id": "b", "name": "Bolt", "legacy": "old-b"},
    {"id": "c", "name": "Cog", "legacy": ""},
]

QUERIES = [
    "/Item/?sort(name)",
    "/Item/?color=black&sort(-name)",
    "/Item/?color=red",
    "/Item/?name=Bolt",
    "/Item/?tags=ct=new&sort(name)",
    "/Item/?name=sw=A",
]


def path_of(database: str) -> str:
    return database.removeprefix("sqlite:///")


def indexes(database: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(path_of(database))) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'Item'"
        ).fetchall()
    return {name for (name,) in rows if not name.startswith("sqlite_")}


def write_v1(database: str) -> None:
    with TestClient(App(tables=[ItemV1], database=database)) as client:
        for row in ROWS:
            assert client.put(f"/Item/{row['id']}", json=row).status_code == 204


def answers(client: TestClient) -> dict[str, object]:
    out: dict[str, object] = {path: client.get(path).json() for path in QUERIES}
    for row in ROWS:
        out[row["id"]] = client.get(f"/Item/{row['id']}").json()
    return out


def test_a_new_field_gets_its_default_and_a_new_index(database, caplog):
    write_v1(database)
    assert indexes(database) == {"Item__name"}
    with caplog.at_level(logging.WARNING, logger="charter"):
        client = TestClient(App(tables=[ItemV2], database=database))
        with client:
            assert client.get("/Item/a").json() == {
                "id": "a",
                "name": "Anvil",
                "legacy": "old-a",
                "color": "black",
                "tags": ["new"],
            }
            assert [r["id"] for r in client.get("/Item/?color=black&sort(name)").json()] == [
                "a",
                "b",
                "c",
            ]
            assert client.patch("/Item/b", json={"color": "red"}).status_code == 204
            assert [r["id"] for r in client.get("/Item/?color=red").json()] == ["b"]
    assert indexes(database) == {"Item__name", "Item__color"}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_migrated_and_fresh_databases_answer_the_same(tmp_path: Path):
    migrated = f"sqlite:///{tmp_path}/migrated.db"
    fresh = f"sqlite:///{tmp_path}/fresh.db"
    write_v1(migrated)
    with TestClient(App(tables=[ItemV2], database=fresh)) as client:
        for row in ROWS:
            assert client.put(f"/Item/{row['id']}", json=row).status_code == 204
        expected = answers(client)
    with TestClient(App(tables=[ItemV2], database=migrated)) as client:
        assert answers(client) == expected
    assert indexes(migrated) == indexes(fresh)
    assert expected["/Item/?tags=ct=new&sort(name)"] == [
        expected["a"],
        expected["b"],
        expected["c"],
    ]


def test_reopening_with_the_same_declaration_changes_nothing(database):
    write_v1(database)
    with TestClient(App(tables=[ItemV1], database=database)) as client:
        assert client.get("/Item/a").json() == ROWS[0]
        etag = client.get("/Item/a").headers["etag"]
    with TestClient(App(tables=[ItemV1], database=database)) as client:
        assert client.get("/Item/a").headers["etag"] == etag
        assert [r["id"] for r in client.get("/Item/?sort(name)").json()] == ["a", "b", "c"]


def test_a_removed_field_is_archived(database, caplog):
    write_v1(database)
    app = App(tables=[ItemV3], database=database)
    with caplog.at_level(logging.WARNING, logger="charter"), TestClient(app) as client:
        assert client.get("/Item/a").json() == {
            "id": "a",
            "name": "Anvil",
            "color": "black",
            "tags": ["new"],
        }
        assert client.patch("/Item/a", json={"color": "red"}).status_code == 204
        assert client.patch("/Item/a", json={"legacy": "x"}).status_code == 422
    assert any("legacy" in r.getMessage() for r in caplog.records)
    with contextlib.closing(sqlite3.connect(path_of(database))) as conn:
        archived = conn.execute(
            "SELECT tbl, id, field, value FROM _charter_archive ORDER BY id"
        ).fetchall()
        documents = [d for (d,) in conn.execute('SELECT data FROM "Item"').fetchall()]
    assert archived == [
        ("Item", "a", "legacy", "old-a"),
        ("Item", "b", "legacy", "old-b"),
        ("Item", "c", "legacy", ""),
    ]
    assert not any("legacy" in d for d in documents)


def test_a_table_can_be_added_to_an_existing_database(database):
    class Other(Table):
        id: str = Field(primary_key=True)
        n: int = 0

    write_v1(database)
    with TestClient(App(tables=[ItemV1, Other], database=database)) as client:
        assert client.put("/Other/o", json={"n": 1}).status_code == 204
        assert client.get("/Item/a").json() == ROWS[0]


@pytest.mark.parametrize("table", [ItemV2, ItemV3])
def test_migrating_an_empty_table(database, table):
    with TestClient(App(tables=[ItemV1], database=database)):
        pass
    with TestClient(App(tables=[table], database=database)) as client:
        assert client.put("/Item/z", json={"name": "Z"}).status_code == 204
        assert client.get("/Item/z").json()["color"] == "black"

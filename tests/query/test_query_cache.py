"""Parsed and planned queries are remembered (issue 9: the 100,000-row query), exactly.

A query string is parsed once per table, a query planned once per storage, and the probe that
chooses between walking the sort's index and the default plan runs again only once the table
has seen enough writes to change its verdict. A remembered query must give what a fresh one
gives: values that are equal but compile differently are different queries, and what
application code does to its query stays in its request.
"""

from __future__ import annotations

import decimal
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import charter.storage.sqlite as sqlite_storage
from charter import App, Field, Table
from charter.query import Condition, Query
from charter.testing import TestClient

Serve = Callable[..., TestClient]
Traced = tuple[TestClient, list[str]]


class Lot(Table):
    id: str = Field(primary_key=True)
    kind: str = Field(indexed=True)
    price: float = Field(indexed=True)
    code: str = ""
    extra: Any = None


QUERY = "kind=a&price=gt=-1&sort(-price)&limit(5)"  # probe threshold: 256 matches


def _lot(i: int, kind: str) -> dict[str, Any]:
    return {"id": f"l{i:04d}", "kind": kind, "price": float((i * 7919) % 5000), "code": ""}


def _top(rows: dict[str, dict[str, Any]], kind: str) -> list[str]:
    found = [r for r in rows.values() if r["kind"] == kind]
    found.sort(key=lambda r: (r["price"], r["id"]), reverse=True)  # ties by id, descending
    return [r["id"] for r in found[:5]]


@pytest.fixture
def traced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, list[str]]]:
    """A client on a SQLite app, and every statement its reader connections ran."""
    statements: list[str] = []
    connect = sqlite_storage._connect

    def tracing(path: str, *, readonly: bool = False, **options: Any) -> sqlite3.Connection:
        conn = connect(path, readonly=readonly, **options)
        if readonly:
            conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite_storage, "_connect", tracing)
    with TestClient(App(tables=[Lot], database=f"sqlite:///{tmp_path}/c.db")) as client:
        yield client, statements


def _probes(statements: list[str]) -> int:
    return sum(1 for s in statements if s.startswith("SELECT count(*) FROM (SELECT 1"))


def _walked(statements: list[str]) -> bool:
    """Whether the last page was read by walking the price index (else the kind index)."""
    last = [s for s in statements if s.startswith("SELECT t0.data")][-1]
    assert ('INDEXED BY "Lot__price"' in last) != ('INDEXED BY "Lot__kind"' in last), last
    return 'INDEXED BY "Lot__price"' in last


def _get(client: TestClient, statements: list[str], rows: dict[str, dict[str, Any]]) -> bool:
    response = client.get(f"/Lot/?{QUERY}")
    assert response.status_code == 200
    assert [r["id"] for r in response.json()] == _top(rows, "a")
    return _walked(statements)


def test_a_repeated_query_is_probed_once(traced: Traced) -> None:
    client, statements = traced
    rows = {r["id"]: r for r in (_lot(i, "a" if i < 300 else "b") for i in range(600))}
    for row in rows.values():
        assert client.put(f"/Lot/{row['id']}", json=row).status_code == 204
    statements.clear()
    for _ in range(20):
        assert _get(client, statements, rows)  # 300 matches: unselective, walk
    assert _probes(statements) == 1


def test_enough_writes_end_the_probes_verdict(traced: Traced) -> None:
    client, statements = traced
    rows = {r["id"]: r for r in (_lot(i, "a" if i < 300 else "b") for i in range(600))}
    for row in rows.values():
        client.put(f"/Lot/{row['id']}", json=row)
    assert _get(client, statements, rows)
    # 100 of the 300 become "b": 200 matches, selective; the kind index drives the search.
    for i in range(100):
        rows[f"l{i:04d}"]["kind"] = "b"
        assert client.patch(f"/Lot/l{i:04d}", json={"kind": "b"}).status_code == 204
    assert not _get(client, statements, rows)
    probes = _probes(statements)
    assert not _get(client, statements, rows)
    assert _probes(statements) == probes  # the new verdict is remembered
    # 60 more "a": 260 matches, unselective again (the verdict held for 256 - 200 writes).
    for i in range(600, 660):
        rows[f"l{i:04d}"] = _lot(i, "a")
        client.put(f"/Lot/l{i:04d}", json=rows[f"l{i:04d}"])
    assert _get(client, statements, rows)


def test_values_equal_but_compiled_differently_are_different_queries(serve: Serve) -> None:
    client = serve(Lot)
    client.put("/Lot/m", json={"kind": "a", "price": 1, "code": "m-0.0", "extra": "1.00"})
    client.put("/Lot/p", json={"kind": "a", "price": 2, "code": "p0.0", "extra": "1.0"})

    async def ids(condition: Condition) -> list[str]:
        return sorted([r.id async for r in Lot.search(Query([condition], limit=10))])

    def search(condition: Condition) -> list[str]:
        return client._run(ids(condition))  # type: ignore[attr-defined]

    # -0.0 == 0.0, but as text (what ct compares) "-0.0" is not "0.0".
    assert search(Condition("code", "contains", -0.0)) == ["m"]
    assert search(Condition("code", "contains", 0.0)) == ["m", "p"]
    # Decimal("1.0") == Decimal("1.00"), but they are stored as different strings.
    assert search(Condition("extra", "equals", decimal.Decimal("1.0"))) == ["p"]
    assert search(Condition("extra", "equals", decimal.Decimal("1.00"))) == ["m"]


class Tenanted(Table):
    id: str = Field(primary_key=True)
    kind: str = Field(indexed=True)

    async def search(self, query: Any = None) -> AsyncIterator[Any]:
        query.conditions.append(Condition("kind", "equals", "a"))  # application code edits it
        query.offset = (query.offset or 0) + 1  # the first match is never shown
        async for record in super().search(query):
            yield record


def test_application_code_changing_its_query_changes_only_that_request(serve: Serve) -> None:
    client = serve(Tenanted)
    for key, kind in (("w", "a"), ("x", "a"), ("y", "b"), ("z", "a")):
        client.put(f"/Tenanted/{key}", json={"kind": kind})
    for _ in range(3):
        assert [r["id"] for r in client.get("/Tenanted/?sort(id)").json()] == ["x", "z"]
        assert [r["id"] for r in client.get("/Tenanted/?sort(id)&limit(1)").json()] == ["x"]

"""The planner walks the sort's index when the conditions are unselective, and not otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter import App, Field, Table
from charter.testing import TestClient


class Part(Table):
    id: str = Field(primary_key=True)
    kind: str = Field(indexed=True)  # two values: unselective
    code: str = Field(indexed=True)  # unique: selective
    price: float = Field(indexed=True)


ROWS = [
    {"id": f"p{i:04d}", "kind": "ab"[i % 2], "code": f"x{i}", "price": float((i * 7919) % 5000)}
    for i in range(2000)
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    path: Path = tmp_path_factory.mktemp("planner") / "p.db"
    app = App(tables=[Part], database=f"sqlite:///{path}")
    with TestClient(app) as client:
        for row in ROWS:
            assert client.put(f"/Part/{row['id']}", json=row).status_code == 204
        yield client


def expected(kind: str | None = None, code: str | None = None, low: float = -1) -> list[str]:
    rows = [
        r
        for r in ROWS
        if (kind is None or r["kind"] == kind)
        and (code is None or r["code"] == code)
        and r["price"] > low
    ]
    rows.sort(key=lambda r: (r["price"], r["id"]), reverse=True)  # ties by id, descending
    return [r["id"] for r in rows[:5]]


def test_unselective_condition_walks_the_sort_index(client: TestClient) -> None:
    query = "kind=a&price=gt=100&sort(-price)&limit(5)"
    plan = client.get(f"/Part/?{query}&explain(true)").json()
    assert plan["conditions"][0] == {
        "sort": "price",
        "access": "index",
        "index": "json_extract(data, '$.price')",
    }
    kind = next(c for c in plan["conditions"] if c.get("attribute") == "kind")
    assert kind["access"] == "filter"
    assert any("Part__price" in line for line in plan["sqlite"])
    # Ties go by key in the sort's direction: the index is walked backwards, nothing sorted.
    assert not any("TEMP B-TREE" in line for line in plan["sqlite"]), plan["sqlite"]
    rows = client.get(f"/Part/?{query}").json()
    assert [r["id"] for r in rows] == expected(kind="a", low=100)


def test_selective_condition_drives_the_search(client: TestClient) -> None:
    query = "code=x17&sort(-price)&limit(5)"
    plan = client.get(f"/Part/?{query}&explain(true)").json()
    assert "sort" not in plan["conditions"][0]
    assert plan["conditions"][0]["attribute"] == "code"
    assert plan["conditions"][0]["access"] == "index"
    assert [r["id"] for r in client.get(f"/Part/?{query}").json()] == expected(code="x17")


def test_no_condition_walks_the_sort_index(client: TestClient) -> None:
    plan = client.get("/Part/?sort(-price)&limit(5)&explain(true)").json()
    assert plan["conditions"][0]["sort"] == "price"
    rows = client.get("/Part/?sort(-price)&limit(5)").json()
    assert [r["id"] for r in rows] == expected()

"""A write rule checks a record before it is stored (``charter.query.match``), and a stored
row through SQL; both must agree. Every rule below is run both ways over the same rows, on
SQLite and PostgreSQL: the rows SQL selects are exactly the rows the matcher accepts."""

from __future__ import annotations

import random
from typing import Any

import msgspec

from charter import App, Condition, Field, Group, Query, Table, relationship
from charter.query.match import matches
from charter.testing import TestClient


class Maker(Table):
    id: str = Field(primary_key=True)
    country: str = Field(default="", indexed=True)


class Thing(Table):
    id: str = Field(primary_key=True)
    name: str = Field(default="", indexed=True)
    note: str | None = None
    qty: int = Field(default=0, indexed=True)
    price: float | None = None
    active: bool = False
    tags: list[str] = []
    maker_id: str | None = Field(default=None, indexed=True)
    maker: Maker | None = relationship(from_="maker_id")


NAMES = ["", "a", "ab", "abc", "b", "ba", "Zed", "ä", "a b", "85", "8"]
NUMBERS = [0, 1, 2, 5, 85, -3]


def _row(rng: random.Random, key: str) -> dict[str, Any]:
    return {
        "id": key,
        "name": rng.choice(NAMES),
        "note": rng.choice([None, "x", "xy", "yx", ""]),
        "qty": rng.choice(NUMBERS),
        "price": rng.choice([None, 0.0, 1.5, 85.0, 2.25, -1.0]),
        "active": rng.choice([True, False]),
        "tags": rng.sample(["red", "blue", "8", "x"], rng.randint(0, 3)),
        "maker_id": rng.choice([None, "m1", "m2", "gone"]),
    }


def _rules() -> list[list[Condition | Group]]:
    rules: list[list[Condition | Group]] = []
    values: dict[str, list[Any]] = {
        "name": ["a", "", "ab", "85", None, "Zed"],
        "note": ["x", None, "y", ""],
        "qty": [0, 2, 85, None, "2", 2.0],
        "price": [1.5, 85, None, 0],
        "active": [True, False, None],
    }
    for attribute, candidates in values.items():
        for comparator in ("equals", "not_equal", "less_than", "less_than_equal",
                           "greater_than", "greater_than_equal"):  # fmt: skip
            for value in candidates:
                rules.append([Condition(attribute, comparator, value)])
        for comparator in ("starts_with", "ends_with", "contains"):
            for value in ("a", "", "b", "5", "8", "x", "true"):
                rules.append([Condition(attribute, comparator, value)])
        rules.append([Condition(attribute, "between", [candidates[0], candidates[1]])])
        rules.append([Condition(attribute, "between", [None, candidates[0]])])
    for value in ("red", "8", "nothing"):
        rules.append([Condition("tags", "contains", value)])
        rules.append([Condition("tags", "equals", value)])
    rules.append([Condition("$id", "starts_with", "t1")])
    rules.append([Condition(["maker", "country"], "equals", "fr")])
    rules.append([Condition("maker.country", "not_equal", "fr")])
    rules.append(
        [Group("or", [Condition("qty", "greater_than", 2), Condition("active", "equals", True)])]
    )
    rules.append([Condition("name", "starts_with", "a"), Condition("qty", "less_than", 5)])
    rules.append([Group("or", [])])
    rules.append([Group("and", [])])
    return rules


def test_the_matcher_agrees_with_sql(database: str) -> None:
    rng = random.Random(11)
    rows = [_row(rng, f"t{i}") for i in range(60)]
    app = App(tables=[Maker, Thing], database=database)
    runtime = app.tables["Thing"]
    catalog = {name: rt.schema for name, rt in app.tables.items()}
    with TestClient(app) as client:

        async def run() -> list[str]:
            async with app.transaction():
                await Maker.put({"id": "m1", "country": "fr"})
                await Maker.put({"id": "m2", "country": "jp"})
                for row in rows:
                    await Thing.put(row)
            stored = {}
            async for thing in Thing.search({}):
                document = msgspec.json.decode(runtime._encode(thing.to_dict()))
                stored[thing.id] = document
            problems = []
            for rule in _rules():
                by_sql = sorted([t.id async for t in Thing.search(Query(conditions=list(rule)))])
                by_match = sorted(
                    [
                        key
                        for key, doc in stored.items()
                        if await matches(catalog, runtime.schema, rule, doc, runtime._related)
                    ]
                )
                if by_sql != by_match:
                    problems.append(f"{rule}: sql {by_sql} match {by_match}")
            return problems

        problems = client.run(run())
    assert not problems, "\n".join(problems[:20])

"""Hostile queries: never a 500, never SQL from a value, never a change to any table."""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

import pytest

from charter import Condition, Query, Sort
from charter.errors import InvalidQuery
from charter.limits import MAX_QUERY_LENGTH
from tests.query.shop import Product

PAYLOADS = [
    "'", "''", '"', "\\", "' OR '1'='1", "' OR 1=1 --", "1; DROP TABLE Brand; --",
    "'); DELETE FROM \"Brand\"; --", "*/ SELECT * FROM Brand /*", "-- comment", "/*", ";",
    "(", ")", "((((", "))))", "[", "]", "{", "}", "%", "%%", "%25", "%00", "\x00", "a\x00b",
    "é", "💥", "\u202e", "\ufeff", "\U0010ffff", "9" * 400, "-" + "9" * 30, "1e400", "-1e400",
    "NaN", "Infinity", "0x10", "1.5e-320", "null", "NULL", "true", "$.name", "$id",
    "json_extract(data, '$.name')", "name') OR ('1'='1", "|", "&", "=", "=gt=", ",", "+", " ",
    "\t\n", "a" * 10000,
]  # fmt: skip

TEMPLATES = [
    "name={v}", "price={v}", "stock=gt={v}", "price=bt={v},{v}", "name=sw={v}", "name=ew={v}",
    "name=ct={v}", "tags=ct={v}", "brand.name={v}", "reviews.stars={v}", "{v}=1", "brand.{v}=1",
    "sort({v})", "sort(-{v})", "select({v})", "select(id,brand{{{v}}})", "limit({v})",
    "limit(1,{v})", "offset({v})", "explain({v})", "[name={v}|price={v}]", "{v}",
    "name=number:{v}", "name=date:{v}", "active=boolean:{v}", "id={v}", "$updatedtime=gt={v}",
]  # fmt: skip


def _raw(payload: str) -> str:
    """The payload as sent unencoded (what a URL cannot carry is still encoded)."""
    return "".join(c if c.isprintable() and c not in "# " else quote(c, safe="") for c in payload)


def _snapshot(path: str) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}
    finally:
        conn.close()


@pytest.mark.parametrize("encode", [True, False])
def test_no_500_and_no_other_table_touched(shop, database, encode):
    path = database.removeprefix("sqlite:///")
    before = _snapshot(path)
    statuses = set()
    for template in TEMPLATES:
        for payload in PAYLOADS:
            value = quote(payload, safe="") if encode else _raw(payload)
            qs = template.format(v=value)
            for response in (shop.get("/Product/?" + qs), shop.get("/Brand/?" + qs)):
                statuses.add(response.status_code)
                if len(qs) > MAX_QUERY_LENGTH:  # docs/limits.md
                    assert response.status_code == 414, (qs, response.text)
                    assert response.json()["error"]["code"] == "URI_TOO_LONG"
                    continue
                assert response.status_code in (200, 400), (qs, response.text)
                if response.status_code == 400:
                    assert response.json()["error"]["code"] == "INVALID_QUERY"
    assert statuses == {200, 400, 414}
    assert _snapshot(path) == before


def test_hostile_delete_queries_delete_only_matches(shop, database):
    path = database.removeprefix("sqlite:///")
    before = _snapshot(path)
    for payload in PAYLOADS:
        qs = "name=" + quote(payload, safe="")
        response = shop.delete("/Brand/?" + qs)
        assert response.status_code in (200, 400), qs
        if response.status_code == 200:
            assert response.json() == 0
    assert _snapshot(path) == before


async def test_python_queries_reject_hostile_names(shop):
    hostile = ["name') OR 1=1 --", "name'", "a.b'c", "", "$.x", "name; DROP TABLE x"]
    for name in hostile:
        for query in (Query([Condition(name, "equals", 1)]), Query(sort=Sort(name)),
                      Query(select=[name]), Query([Condition("name", name, 1)])):  # fmt: skip
            with pytest.raises(InvalidQuery):
                [p async for p in Product.search(query)]
    for payload in PAYLOADS:  # values are bound: these only ever match nothing
        query = Query([Condition("name", "equals", payload)])
        assert [p async for p in Product.search(query)] == []
    with pytest.raises(InvalidQuery):
        [p async for p in Product.search(Query([Condition("name", "equals", "\ud800")]))]
    with pytest.raises(InvalidQuery):
        [p async for p in Product.search(Query(limit=-1))]

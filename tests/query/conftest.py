"""Fixtures of the query tests: ``shop``, a served app holding the data of ``shop.py``."""

from __future__ import annotations

import pytest

from tests.query.shop import BRANDS, BUNDLES, COUNTRIES, PRODUCTS, REVIEWS, TABLES


@pytest.fixture
def shop(serve):
    client = serve(*TABLES)
    for table, rows in (
        ("Country", COUNTRIES), ("Brand", BRANDS), ("Product", PRODUCTS),
        ("Review", REVIEWS), ("Bundle", BUNDLES),
    ):  # fmt: skip
        for row in rows:
            response = client.put(f"/{table}/{row['id']}", json=row)
            assert response.status_code == 204, response.text
    client.put("/Strict/s1", json={"code": "A", "note": "x"})
    return client

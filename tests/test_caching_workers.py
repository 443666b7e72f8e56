"""Caching tables on ``charter serve --workers 2``: 1,000 concurrent misses for one id, spread
over both workers, make exactly one call to the origin (the per-record lock across workers of
``charter.sources.lease``), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.origin_server import Origin
from tests.servers import Server

pytestmark = pytest.mark.slow

APP = """
import os
from charter import App, Field, Table
from tests.origin_server import OriginApi

class Weather(Table, source=OriginApi, expiration=60, source_timeout=10):
    id: str = Field(primary_key=True)
    temp: float = 0

async def worker(ctx, call_next):
    response = await call_next()
    response.headers["x-worker"] = str(os.getpid())
    return response

app = App(tables=[Weather], middleware=[worker])
"""
MISSES = 1000


@pytest.fixture
def origin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Origin]:
    server = Origin()
    server.records["paris"] = {"id": "paris", "temp": 21.5}
    monkeypatch.setenv("ORIGIN_URL", server.url)  # the workers' OriginApi reads it
    yield server
    server.close()


async def _miss_together(url: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=MISSES)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.get("/Weather/paris") for _ in range(MISSES)))


def test_concurrent_misses_on_two_workers_make_one_origin_call(
    origin: Origin, database: str, tmp_path: Path
) -> None:
    app_file = tmp_path / "caching_workers_app.py"
    app_file.write_text(APP)
    root = Path(__file__).resolve().parent.parent
    server = Server(f"{app_file}:app", "--workers", "2", "--database", database, cwd=root)
    with server:
        # Both workers have answered once (a warm-up that misses nothing: an unknown id is
        # a 404 from the origin, and not cached).
        warm = {httpx.get(f"{server.url}/Weather/none{i}").headers["x-worker"] for i in range(20)}
        origin.delay = 2.0  # every miss arrives while the one load is at the origin
        answers = asyncio.run(_miss_together(server.url))
    assert {a.status_code for a in answers} == {200}, {a.text for a in answers}
    assert {a.json()["temp"] for a in answers} == {21.5}
    assert len({a.headers["x-worker"] for a in answers}) == 2, "one worker served every miss"
    assert len(warm) == 2
    assert origin.gets("paris") == 1

"""An atomic ``map_route`` on a real 2-worker server, on both backends: concurrent sign-ups of
the same names from both workers leave exactly one user per name with exactly one profile
(the losers' steps leave no trace), and failing requests leave nothing at all."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.servers import Server

pytestmark = pytest.mark.slow

APP = """
from charter import App, Field, Operation, Table, map_route

class User(Table):
    id: str = Field(primary_key=True)

class Profile(Table):
    id: str = Field(primary_key=True)
    user_id: str = Field(indexed=True)
    age: int = Field(ge=0)

sign_up = map_route("POST", "/sign-up", atomic=True, operations=[
    Operation("User", "create", data=lambda ctx: {"id": ctx.body["name"]}),
    Operation("Profile", "create",
              data=lambda ctx: {"user_id": ctx.results["User"]["id"], "age": ctx.body["age"]}),
])

app = App(tables=[User, Profile], routes=[sign_up])
"""

NAMES = 40
ATTEMPTS = 4  # concurrent sign-ups per name


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "flows_workers_app.py"
    path.write_text(APP)
    return path


async def _sign_up_all(url: str) -> list[tuple[str, int]]:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(name: str, age: int) -> tuple[str, int]:
            answer = await client.post("/sign-up", json={"name": name, "age": age})
            return name, answer.status_code

        requests = [one(f"u{i}", 30) for i in range(NAMES) for _ in range(ATTEMPTS)]
        requests += [one(f"bad{i}", -1) for i in range(NAMES)]  # the second step fails
        return await asyncio.gather(*requests)


def test_atomic_sign_ups_across_two_workers(app_file: Path, database: str) -> None:
    server = Server(f"{app_file}:app", "--workers", "2", "--database", database)
    with server:
        statuses = asyncio.run(_sign_up_all(server.url))
        users = httpx.get(server.url + "/User/?limit(100000)", timeout=60).json()
        profiles = httpx.get(server.url + "/Profile/?limit(100000)", timeout=60).json()
    created = Counter(name for name, status in statuses if status == 201)
    assert created == Counter({f"u{i}": 1 for i in range(NAMES)})
    assert {s for n, s in statuses if n.startswith("u")} == {201, 409}
    assert {s for n, s in statuses if n.startswith("bad")} == {422}
    assert sorted(u["id"] for u in users) == sorted(f"u{i}" for i in range(NAMES))
    per_user = Counter(p["user_id"] for p in profiles)
    assert per_user == Counter({f"u{i}": 1 for i in range(NAMES)})  # no orphan profile

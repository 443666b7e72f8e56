"""The rules hold the same on a real server with two worker processes (issue 11 point 8): the
shop of tests/auth_rules_shop.py served by ``charter serve --workers 2``, its users signing in
over HTTP Basic, requests spread over many connections (so over both workers), on both
backends. Each cell checks the status, the rows and attributes shown, and that no sentinel of a
value the actor may not see is in the raw bytes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.auth_rules_shop import PASSWORD, PRODUCT_OWNERS, cheap_passwords, hidden, open_shop
from tests.servers import Server

ROOT = Path(__file__).resolve().parent.parent
APP = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.auth_rules_shop import build
app = build(None)
"""


@pytest.fixture
def seeded(database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    cheap_passwords(monkeypatch)
    with open_shop(database):
        pass  # users and rows stored; the server reads them
    return database


def _expected(actor: str | None) -> set[str]:
    """The products an actor sees: public ones and its own (viewers: public ones)."""
    return {key for key, owner in PRODUCT_OWNERS.items() if owner in ("", actor)}


def test_two_workers_apply_the_same_rules(seeded: str, tmp_path: Path) -> None:
    app_file = tmp_path / "rules_app.py"
    app_file.write_text(APP)
    server = Server(f"{app_file}:app", "--workers", "2", "--database", seeded)
    actors: list[str | None] = ["ann", "bob", "vic", None]
    with server:

        async def run() -> list[str]:
            failures: list[str] = []
            limits = httpx.Limits(max_connections=16)
            async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as c:

                async def cell(actor: str | None, round_: int) -> None:
                    auth = (actor, PASSWORD) if actor else None
                    listed = await c.get("/Product/", auth=auth)
                    if actor is None:
                        if listed.status_code != 401:
                            failures.append(f"anonymous list: {listed.status_code}")
                        return
                    rows = listed.json()
                    seen = {r["id"] for r in rows}
                    if seen != _expected(actor if actor != "vic" else ""):
                        failures.append(f"{actor} rows {seen}")
                    for key, owner in PRODUCT_OWNERS.items():
                        got = await c.get(f"/Product/{key}", auth=auth)
                        visible = owner in ("", actor)
                        if got.status_code != (200 if visible else 404):
                            failures.append(f"{actor} {key}: {got.status_code}")
                        if hidden("Product", "secret", key).encode() in got.content:
                            failures.append(f"{actor} {key}: secret leaked")
                    probe = await c.get("/Product/?cost=gt=a", auth=auth)
                    unknown = await c.get("/Product/?nosuch=gt=a", auth=auth)
                    restricted = actor in ("ann", "bob")
                    if restricted and (
                        probe.status_code != 400
                        or probe.json()["error"]["message"]
                        != unknown.json()["error"]["message"].replace("nosuch", "cost")
                    ):
                        failures.append(f"{actor} cost probe: {probe.text}")
                    for key in PRODUCT_OWNERS:
                        if restricted and hidden("Product", "cost", key).encode() in listed.content:
                            failures.append(f"{actor} list leaks {key}'s cost")
                    if actor == "ann":
                        patched = await c.patch("/Product/bob1", json={"name": "x"}, auth=auth)
                        if patched.status_code != 404:
                            failures.append(f"ann patches bob1: {patched.status_code}")

                await asyncio.gather(*(cell(a, r) for a in actors for r in range(3)))
            return failures

        failures = asyncio.run(run())
        log = server.read_log()
    assert not failures, failures
    assert "Traceback" not in log, log[-2000:]

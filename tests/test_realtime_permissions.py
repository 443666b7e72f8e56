"""Permissions on events (issue 12 point 4): each subscriber sees in its events exactly what a GET
shows it, and its stream ends when its credentials do.

The shop of tests/auth_rules_shop.py runs as a real server (an SSE stream is read as it comes);
its users sign in for real. For each role, after every write the test GETs the written record
as that role: a 200 must come as that event with that body, a 404 as nothing, or as one
``leaving`` delete when the role saw the record before. Both backends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_rules_shop import PASSWORD, cheap_passwords, hidden, open_shop
from tests.servers import Server
from tests.sse_client import SSE, Message, subscribe

ROOT = Path(__file__).resolve().parent.parent
SHOP = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.realtime_shop import build
app = build(None)
"""
NOTES = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.auth_support import make_app
app = make_app(None, access_token_ttl={{ttl}})
"""
READERS = ["boss", "ann", "bob", "vic", "max"]  # every role that may read Product


def _auth(actor: str | None) -> Any:
    return None if actor is None else (actor, PASSWORD)


@pytest.fixture
def shop(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The seeded shop served on ``database``: (its server, the users' ids)."""
    cheap_passwords(monkeypatch)
    with open_shop(database) as front:
        ids = dict(front.ids)
    app_file = tmp_path / "realtime_shop_app.py"
    app_file.write_text(SHOP)
    with Server(f"{app_file}:app", "--database", database) as server:
        yield server, ids


def _shown(message: Message) -> tuple[str, Any, Any, bool]:
    data = message.data
    return data["type"], data["id"], data["value"], bool(data.get("leaving"))


class Oracle:
    """What each reader must receive, from GETs made as that reader after every write."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.seen: dict[str, set[str]] = {actor: set() for actor in READERS}
        self.expected: dict[str, list[tuple[str, Any, Any, bool]]] = {a: [] for a in READERS}

    async def current(self) -> dict[str, set[tuple[str, Any, str]]]:
        """Each reader's records now, as ``put`` events of their GET bodies."""
        out: dict[str, set[tuple[str, Any, str]]] = {}
        for actor in READERS:
            listed = await self.client.get("/Product/", auth=_auth(actor))
            assert listed.status_code == 200, listed.text
            rows = set()
            for row in listed.json():
                got = await self.client.get(f"/Product/{row['id']}", auth=_auth(actor))
                rows.add(("put", row["id"], got.text))
                self.seen[actor].add(row["id"])
            out[actor] = rows
        return out

    async def wrote(self, kind: str, key: str, message: Any = None) -> None:
        """After a write of ``kind`` (put, patch, delete, publish) to ``key``."""
        for actor in READERS:
            got = await self.client.get(f"/Product/{key}", auth=_auth(actor))
            assert got.status_code in (200, 404), got.text
            seen = self.seen[actor]
            expected = self.expected[actor]
            if kind == "delete":
                if key in seen:
                    expected.append(("delete", key, None, False))
                    seen.discard(key)
            elif kind == "publish":
                if got.status_code == 200:
                    expected.append(("publish", key, message, False))
            elif got.status_code == 200:
                expected.append((kind, key, got.json(), False))
                seen.add(key)
            elif key in seen:
                expected.append(("delete", key, None, True))  # it left this reader's view
                seen.discard(key)


async def _boss(client: httpx.AsyncClient, method: str, path: str, body: Any = None) -> None:
    response = await client.request(method, path, json=body, auth=_auth("boss"))
    assert response.status_code in (200, 201, 204), response.text


def _no_sentinel(actor: str, raw: str) -> None:
    for key in ("pub1", "ann1", "ann2", "bob1", "end"):
        assert hidden("Product", "secret", key) not in raw, f"{actor} got a secret"
        if actor in ("ann", "bob"):
            assert hidden("Product", "cost", key) not in raw, f"{actor} got a cost"


async def test_each_role_sees_in_events_what_a_get_shows(shop: Any) -> None:
    server, ids = shop
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        oracle = Oracle(client)
        now = await oracle.current()
        async with contextlib.AsyncExitStack() as stack:
            streams: dict[str, SSE] = {}
            for actor in READERS:
                streams[actor] = await stack.enter_async_context(
                    subscribe(client, "/Product/", auth=_auth(actor))
                )
                assert streams[actor].status == 200
            # The current records first: as GET shows them, and only those.
            for actor, stream in streams.items():
                first = await stream.events(len(now[actor]))
                got = set()
                for message in first:
                    kind, key, value, _ = _shown(message)
                    answer = await client.get(f"/Product/{key}", auth=_auth(actor))
                    assert answer.json() == value, (actor, key)
                    got.add((kind, key, answer.text))
                assert got == now[actor], actor

            def product(key: str, owner: str, **more: Any) -> dict[str, Any]:
                return {
                    "name": f"product {key}",
                    "price": 12.5,
                    "cost": hidden("Product", "cost", key),
                    "owner": ids.get(owner, ""),
                    "secret": hidden("Product", "secret", key),
                    **more,
                }

            steps: list[tuple[str, str, Any]] = [
                ("PUT", "pub1", product("pub1", "", name="renamed")),  # public: everyone
                ("PATCH", "ann1", {"price": 99.0}),  # ann's: ann and boss
                ("PUT", "bob1", product("bob1", "")),  # bob's becomes public: it enters
                ("PUT", "pub1", product("pub1", "ann")),  # public becomes ann's: it leaves
                ("PATCH", "pub1", {"name": "ann's now"}),  # gone already: nothing more
                ("DELETE", "ann2", None),  # ann's, deleted
                ("PUBLISH", "bob1", {"note": "public topic"}),
                ("PUBLISH", "ann1", {"note": "ann's topic"}),
                ("PUT", "pub1", product("pub1", "")),  # public again: it enters again
                ("PUT", "end", product("end", "")),  # the last event everyone sees
            ]
            for method, key, body in steps:
                if method == "PUBLISH":
                    await _boss(client, "POST", "/publish", {"id": key, "message": body})
                    await oracle.wrote("publish", key, body)
                    continue
                await _boss(client, method, f"/Product/{key}", body)
                await oracle.wrote(method.lower(), key)
            for actor, stream in streams.items():
                received = await stream.until(lambda m: m.data["id"] == "end")
                assert [_shown(m) for m in received] == oracle.expected[actor], actor
                _no_sentinel(actor, repr([m.data for m in received]))
                positions = [m.id for m in received]
                assert positions == sorted(positions) and None not in positions


async def test_subscribing_needs_the_read_right(shop: Any) -> None:
    server, _ = shop
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        for path, actor, status in [
            ("/Product/", None, 401),
            ("/Product/", "nia", 403),
            ("/Product/pub1", "nia", 403),
            ("/Product/pu/", "nia", 403),
            ("/Product/?name=x", "nia", 403),
            ("/Brand/", "vic", 403),
        ]:
            async with subscribe(client, path, auth=_auth(actor)) as stream:
                assert stream.status == status, (path, actor)
                body = stream.response.json()
                assert body["error"]["status"] == status if "status" in body["error"] else True
        async with subscribe(client, "/Brand/") as stream:  # anonymous may read Brand
            assert stream.status == 200
            first = await stream.message()
            assert first.data["id"] == "acme"  # the public brand, its owner's brands hidden


async def test_a_query_on_a_hidden_attribute_is_refused(shop: Any) -> None:
    server, _ = shop
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        async with subscribe(client, "/Product/?cost=x", auth=_auth("ann")) as stream:
            assert stream.status == 400  # as a GET's query: clerks may not name cost


async def test_python_subscribe_in_a_request_acts_as_its_user(shop: Any) -> None:
    server, _ = shop
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        for actor in READERS:
            peeked = await client.get("/peek", auth=_auth(actor))
            assert peeked.status_code == 200, peeked.text
            listed = await client.get("/Product/", auth=_auth(actor))
            shown = {}
            for row in listed.json():
                shown[row["id"]] = (
                    await client.get(f"/Product/{row['id']}", auth=_auth(actor))
                ).json()
            assert {e["id"]: e["value"] for e in peeked.json()} == shown, actor
        refused = await client.get("/peek", auth=_auth("nia"))
        assert refused.status_code == 403

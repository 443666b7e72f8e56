"""Permissions on events (issue 12 point 4): each subscriber sees in its events exactly what a GET
shows it, and its stream ends when its credentials do.

The shop of tests/auth_rules_shop.py runs as a real server (an SSE stream is read as it comes);
its users sign in for real. For each role, after every write the test GETs the written record
as that role: a 200 must come as that event with that body, a 404 as nothing, or as one
``leaving`` delete when the role saw the record before. Both backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import charter
from charter import Grant, Role
from charter.testing import TestClient
from tests.auth_rules_shop import PASSWORD, cheap_passwords, hidden, open_shop
from tests.auth_support import make_app as make_notes
from tests.servers import Server
from tests.sse_client import SSE, Message, subscribe

ROOT = Path(__file__).resolve().parent.parent
SHOP = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.realtime_shop import build
app = build(None, keepalive=1.0)
"""
NOTES = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.auth_support import make_app
app = make_app(None, access_token_ttl={{ttl}}, keepalive=1.0)
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
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as client,
        subscribe(client, "/Product/?cost=x", auth=_auth("ann")) as stream,
    ):
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


# -- the stream ends when its credentials do -------------------------------------------------


@pytest.fixture
def notes(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``notes(ttl)``: tests/auth_support.py's app served with access tokens valid ``ttl``
    seconds; users ann (clerk), bea (clerk), tim (the stored role ``temp``) and root; the
    stored role ``anonymous`` may read notes."""
    cheap_passwords(monkeypatch)
    app = make_notes(database)
    with TestClient(app) as client:
        for role in ("temp", "anonymous"):
            client.run(charter.auth.add_role(app, Role(role, tables={"Note": Grant(read=True)})))
        for name, role in (("ann", "clerk"), ("bea", "clerk"), ("tim", "temp")):
            client.run(charter.auth.add_user(app, name, PASSWORD, role=role))
        client.run(charter.auth.add_user(app, "root", PASSWORD, super_user=True))
    app_file = tmp_path / "notes_app.py"
    servers: list[Server] = []

    def start(ttl: float = 900, workers: int = 1) -> Server:
        app_file.write_text(NOTES.format(ttl=ttl))
        options = ("--database", database, "--workers", str(workers))
        server = Server(f"{app_file}:app", *options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _cli(tmp_path: Path, database: str, *args: str) -> None:
    app_file = tmp_path / "notes_app.py"
    argv = [sys.executable, "-m", "charter.cli", *args, str(app_file), "--database", database]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _closed(stream: SSE) -> str:
    """The reason of the ``close`` message that ends ``stream`` (nothing may follow it)."""
    messages = await stream.end()
    assert messages and messages[-1].event == "close", messages
    assert all(m.event == "message" for m in messages[:-1])
    return str(messages[-1].data["reason"])


async def _note(client: httpx.AsyncClient, key: str) -> None:
    response = await client.put(f"/Note/{key}", json={"text": key}, auth=("root", PASSWORD))
    assert response.status_code in (200, 204), response.text


async def test_signing_out_ends_the_stream_and_only_that_one(notes: Any) -> None:
    server = notes()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        ann = await _login(client, "ann")
        other = await _login(client, "ann")  # a second sign-in of ann: another session
        async with (
            subscribe(client, "/Note/", _bearer(ann)) as stream,
            subscribe(client, "/Note/n1", _bearer(ann)) as same,  # the same session
            subscribe(client, "/Note/", _bearer(other)) as kept,
        ):
            assert stream.status == same.status == kept.status == 200
            await _note(client, "n1")
            assert (await stream.message()).data["id"] == "n1"
            out = await client.post("/auth/logout", headers=_bearer(ann))
            assert out.status_code == 204
            assert "signed out" in await _closed(stream)
            assert "signed out" in await _closed(same)
            await _note(client, "n2")  # the other session's stream goes on
            assert (await kept.message()).data["id"] == "n1"
            assert (await kept.message()).data["id"] == "n2"


async def test_signing_out_ends_the_streams_of_the_session_on_every_worker(notes: Any) -> None:
    server = notes(workers=2)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as signer:
        token = await _login(signer, "ann")
        async with contextlib.AsyncExitStack() as stack:
            streams = []
            for _ in range(6):  # each on its own connection: the workers share them out
                client = await stack.enter_async_context(
                    httpx.AsyncClient(base_url=server.url, timeout=60)
                )
                stream = await stack.enter_async_context(
                    subscribe(client, "/Note/", _bearer(token))
                )
                assert stream.status == 200
                streams.append(stream)
            out = await signer.post("/auth/logout", headers=_bearer(token))
            assert out.status_code == 204
            for stream in streams:
                assert "signed out" in await _closed(stream)


async def _login(client: httpx.AsyncClient, name: str) -> str:
    response = await client.post("/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_a_changed_or_removed_user_ends_the_stream(notes: Any) -> None:
    server = notes()
    root = ("root", PASSWORD)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        token = await _login(client, "ann")
        async with (
            subscribe(client, "/Note/", _bearer(token)) as by_token,
            subscribe(client, "/Note/", auth=("bea", PASSWORD)) as by_basic,
        ):
            assert by_token.status == by_basic.status == 200
            changed = await client.patch("/auth/users/ann", json={"role": "reader"}, auth=root)
            assert changed.status_code == 200, changed.text
            await _closed(by_token)
            removed = await client.delete("/auth/users/bea", auth=root)
            assert removed.status_code == 204
            assert "removed" in await _closed(by_basic)


async def test_a_cookie_session_ends_with_a_new_password(notes: Any) -> None:
    server = notes()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        signed = await client.post(
            "/auth/login", json={"username": "ann", "password": PASSWORD, "cookie": True}
        )
        assert signed.status_code == 200, signed.text
        async with subscribe(client, "/Note/") as stream:
            assert stream.status == 200
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as admin:
                changed = await admin.patch(
                    "/auth/users/ann", json={"password": "another-pw-1"}, auth=("root", PASSWORD)
                )
                assert changed.status_code == 200, changed.text
            assert "signed out" in await _closed(stream)


async def test_changes_from_the_command_line_end_streams(
    notes: Any, tmp_path: Path, database: str
) -> None:
    """Another process changes users and roles: every worker's streams follow."""
    server = notes()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        token = await _login(client, "ann")
        async with (
            subscribe(client, "/Note/", _bearer(token)) as ann,
            subscribe(client, "/Note/", auth=("tim", PASSWORD)) as tim,
            subscribe(client, "/Note/", auth=("root", PASSWORD)) as root,
            subscribe(client, "/Note/") as anonymous,
        ):
            assert ann.status == tim.status == root.status == anonymous.status == 200
            await asyncio.to_thread(
                _cli, tmp_path, database, "users", "grant", "ann", "--role", "reader"
            )
            assert "role" in await _closed(ann)
            await asyncio.to_thread(_cli, tmp_path, database, "roles", "remove", "temp")
            assert "role" in await _closed(tim)
            await asyncio.to_thread(_cli, tmp_path, database, "roles", "remove", "anonymous")
            assert "role" in await _closed(anonymous)
            await _note(client, "still")
            assert (await root.message()).data["id"] == "still"


async def test_the_stream_ends_when_its_access_token_expires(notes: Any) -> None:
    server = notes(ttl=2)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        token = await _login(client, "ann")
        async with subscribe(client, "/Note/", _bearer(token)) as stream:
            assert stream.status == 200
            assert "expired" in await _closed(stream)

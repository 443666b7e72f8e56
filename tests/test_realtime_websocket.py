"""WebSocket subscriptions on a table's REST paths, against a real server (SPEC section 8):
order, the current record first, resume with ``lastEventId`` after a dropped connection,
refusals as HTTP answers, sign-in from a browser (``access_token``, a cookie and its origin),
and a ``connect`` conversation."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.realtime_ws_support import (
    PASSWORD,
    basic,
    put,
    receive,
    receive_n,
    served,
    socket,
)
from tests.servers import Server


async def until(ws: ClientConnection, key: str, kind: str = "put") -> dict[str, Any]:
    """The next event of ``kind`` on ``key``. A write committed just before a subscription
    opened may come as an event after the current state (sent twice, never missed)."""
    while True:
        event = await receive(ws)
        if (event.get("id"), event.get("type")) == (key, kind):
            return event


@pytest.fixture
def server(tmp_path: Path, database: str) -> Iterator[Server]:
    with served(tmp_path, database) as running:
        yield running


@pytest.fixture
def auth_server(tmp_path: Path, database: str) -> Iterator[Server]:
    with served(tmp_path, database, auth=True) as running:
        yield running


async def test_events_arrive_in_commit_order(server: Server) -> None:
    async with socket(server, "/Product/?omitCurrent=true") as ws:
        for i in range(12):
            await put(server, f"p{i % 3}", name=f"v{i}")
        events = await receive_n(ws, 12)
    assert [e["value"]["name"] for e in events] == [f"v{i}" for i in range(12)]
    assert [e["id"] for e in events] == [f"p{i % 3}" for i in range(12)]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions) and len(set(positions)) == 12
    assert all(e["type"] == "put" for e in events)


async def test_a_record_sends_its_current_state_first(server: Server) -> None:
    await put(server, "p1", name="first", price=2)
    async with socket(server, "/Product/p1") as ws:
        current = await receive(ws)
        assert (current["type"], current["value"]["name"]) == ("put", "first")
        await put(server, "p2", name="other")  # not this record's topic
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.patch("/Product/p1", json={"price": 3})).status_code == 204
            assert (await client.delete("/Product/p1")).status_code == 204
        patched = await until(ws, "p1", "patch")
        deleted = await receive(ws)
    assert (patched["type"], patched["id"], patched["value"]["price"]) == ("patch", "p1", 3)
    assert (deleted["type"], deleted["id"]) == ("delete", "p1")
    assert current["position"] < patched["position"] < deleted["position"]


async def test_a_prefix_subscribes_to_the_keys_under_it(server: Server) -> None:
    async with socket(server, "/Product/a/?omitCurrent=true") as ws:
        for key in ("b1", "a1", "b2", "a2"):
            await put(server, key, name=key)
        got = await receive_n(ws, 2)
    assert [e["id"] for e in got] == ["a1", "a2"]


async def test_resume_after_a_dropped_connection_misses_nothing(server: Server) -> None:
    async with socket(server, "/Product/?omitCurrent=true") as ws:
        for i in range(3):
            await put(server, f"r{i}", name=f"before{i}")
        seen = await receive_n(ws, 3)
    last = seen[-1]["position"]
    for i in range(5):  # while nobody listens
        await put(server, f"r{i}", name=f"missed{i}")
    async with socket(server, f"/Product/?lastEventId={last}") as ws:
        await put(server, "r9", name="live")
        resumed = await receive_n(ws, 6)
    # Exactly what was missed, in order, then live: no current state on a resume.
    assert [e["value"]["name"] for e in resumed] == [f"missed{i}" for i in range(5)] + ["live"]
    assert resumed[0]["position"] > last
    # The header works as well (a client that can set one).
    async with socket(server, "/Product/", additional_headers={"Last-Event-ID": str(last)}) as ws:
        again = await receive_n(ws, 6)
    assert [e["position"] for e in again] == [e["position"] for e in resumed]


async def test_refusals_are_http_answers_in_the_envelope(server: Server) -> None:
    for path, status in [
        ("/Nowhere/", 404),
        ("/Product", 404),  # the table's description is no subscription
        ("/openapi.json", 404),
        ("/Product/?startTime=soon", 400),
        ("/Product/p1?name=x", 400),  # one record takes no query
        ("/Product/?block", 403),  # the middleware runs around a handshake as around a GET
    ]:
        headers = {"x-block": "1"} if path.endswith("block") else {}
        with pytest.raises(InvalidStatus) as refused:
            async with socket(server, path.removesuffix("?block"), additional_headers=headers):
                pass
        response = refused.value.response
        assert response.status_code == status, path
        assert json.loads(bytes(response.body or b""))["error"]["status"] == status


async def test_a_connect_override_holds_the_conversation(server: Server) -> None:
    async with socket(server, "/Echo/e1") as ws:
        await ws.send(json.dumps({"n": 1}))
        await ws.send(json.dumps([1, 2]))
        first, second = await receive_n(ws, 2)
        await ws.send("not json")
        error = await receive(ws)
    assert first == {"echo": {"n": 1}, "id": "e1"}
    assert second == {"echo": [1, 2], "id": "e1"}
    assert (error["type"], error["status"]) == ("error", 400)


async def test_signing_in(auth_server: Server) -> None:
    server = auth_server
    with pytest.raises(InvalidStatus) as refused:  # anonymous has no read right
        async with socket(server, "/Product/"):
            pass
    assert refused.value.response.status_code == 401
    async with socket(server, "/Product/?omitCurrent=true", additional_headers=basic("rita")):
        pass
    token = httpx.post(
        server.url + "/auth/login", json={"username": "rita", "password": PASSWORD}
    ).json()["access_token"]
    # A browser cannot set headers: the token rides in the query (and is no query condition).
    async with socket(server, f"/Product/?omitCurrent=true&access_token={token}") as ws:
        async with httpx.AsyncClient(base_url=server.url, auth=("root", PASSWORD)) as client:
            response = await client.put("/Product/k1", json={"id": "k1", "name": "x"})
            assert response.status_code == 204
        event = await receive(ws)
        assert (event["id"], event["user"]) == ("k1", "root")
    with pytest.raises(InvalidStatus) as refused:
        async with socket(server, "/Product/?access_token=forged"):
            pass
    assert refused.value.response.status_code == 401


async def test_a_cookie_session_must_come_from_the_apps_own_origin(auth_server: Server) -> None:
    server = auth_server
    signin = {"username": "rita", "password": PASSWORD, "cookie": True}
    response = httpx.post(server.url + "/auth/login", json=signin)
    assert response.status_code == 200, response.text
    cookie = "; ".join(f"{k}={v}" for k, v in response.cookies.items())
    own = {"cookie": cookie, "origin": server.url}
    async with socket(server, "/Product/?omitCurrent=true", additional_headers=own):
        pass
    for origin in ("https://evil.example", "null"):
        with pytest.raises(InvalidStatus) as refused:
            headers = {"cookie": cookie, "origin": origin}
            async with socket(server, "/Product/", additional_headers=headers):
                pass
        assert refused.value.response.status_code == 403, origin
    # Basic credentials are sent by a browser by itself too.
    with pytest.raises(InvalidStatus) as refused:
        headers = {**basic("rita"), "origin": "https://evil.example"}
        async with socket(server, "/Product/", additional_headers=headers):
            pass
    assert refused.value.response.status_code == 403


async def test_a_signed_out_token_closes_the_socket_at_its_next_message(
    auth_server: Server,
) -> None:
    """Whichever notices first: the message's own check (401, then 4401), or the credential
    watch of realtime/credentials.py (a close message, then 1001)."""
    server = auth_server
    signin = {"username": "walt", "password": PASSWORD}
    token = httpx.post(server.url + "/auth/login", json=signin).json()["access_token"]
    async with socket(server, f"/Product/w1?access_token={token}") as ws:
        await ws.send(json.dumps({"n": 1}))
        assert (await receive(ws))["value"] == {"n": 1}
        out = httpx.post(server.url + "/auth/logout", headers={"authorization": f"Bearer {token}"})
        assert out.status_code == 204
        with contextlib.suppress(ConnectionClosed):  # the watch may have closed it already
            await ws.send(json.dumps({"n": 2}))
        with pytest.raises(ConnectionClosed) as closed:
            message = await receive(ws)
            assert message.get("status") == 401 or message.get("type") == "close", message
            await receive(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code in (4401, 1001)


async def test_a_subscriber_that_falls_behind_is_closed_with_its_position(
    tmp_path: Path, database: str
) -> None:
    with served(tmp_path, database, options="subscriber_buffer=2") as server:
        for i in range(5):
            await put(server, f"o{i}", name="x")
        async with socket(server, "/Product/?omitCurrent=true") as ws:
            await put(server, "z1", name="y")
            last = (await until(ws, "z1"))["position"]
            # One commit of five deletes: more than the buffer at once, whoever reads.
            deleted = httpx.delete(server.url + "/Product/?name=x")
            assert deleted.json() == 5
            overflow = await receive(ws)
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
        assert overflow == {"type": "overflow", "position": last}
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        async with socket(server, f"/Product/?lastEventId={last}") as ws:
            resumed = await receive_n(ws, 5)
        assert [(e["type"], e["id"]) for e in resumed] == [("delete", f"o{i}") for i in range(5)]

"""Publishing to a record's topic (SPEC section 8, issue 12 point 5), against a real server:
a WebSocket message or ``POST /Table/{id}`` reaches ``publish()`` and then every subscriber
(WebSocket and SSE), only with the ``update`` right, through an override too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.realtime_ws_support import (
    PASSWORD,
    WAIT,
    basic,
    receive,
    receive_n,
    served,
    socket,
)
from tests.servers import Server


@pytest.fixture
def server(tmp_path: Path, database: str) -> Iterator[Server]:
    with served(tmp_path, database) as running:
        yield running


@pytest.fixture
def auth_server(tmp_path: Path, database: str) -> Iterator[Server]:
    with served(tmp_path, database, auth=True) as running:
        yield running


async def _sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


async def test_a_message_reaches_every_subscriber(server: Server) -> None:
    headers = {"accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client,
        client.stream("GET", "/Product/t1?omitCurrent=true", headers=headers) as sse,
        socket(server, "/Product/t1?omitCurrent=true") as listener,
        socket(server, "/Product/t1?omitCurrent=true") as speaker,
    ):
        assert sse.status_code == 200
        sse_events = _sse_events(sse)
        await speaker.send(json.dumps({"text": "hello"}))
        heard = [await receive(listener)]  # logged: the POST comes after it
        posted = await client.post("/Product/t1", json={"text": "by post"})
        assert posted.status_code == 204
        heard.append(await receive(listener))
        echoed = await receive_n(speaker, 2)  # the speaker is subscribed as well
        over_sse = [await asyncio.wait_for(anext(sse_events), WAIT) for _ in range(2)]
    for events in (heard, echoed, over_sse):
        assert [(e["type"], e["id"], e["value"]) for e in events] == [
            ("publish", "t1", {"text": "hello"}),
            ("publish", "t1", {"text": "by post"}),
        ]
    assert [e["position"] for e in heard] == [e["position"] for e in echoed]
    # A message is no record: nothing was written.
    assert httpx.get(server.url + "/Product/t1").status_code == 404


async def test_post_on_the_collection_still_creates(server: Server) -> None:
    created = httpx.post(server.url + "/Product/", json={"id": "n1", "name": "new"})
    assert created.status_code == 201
    for body, content_type, status in [
        (b"", "application/json", 400),
        (b"{oops", "application/json", 400),
        (b"a=1", "application/x-www-form-urlencoded", 415),
    ]:
        response = httpx.post(
            server.url + "/Product/n1", content=body, headers={"content-type": content_type}
        )
        assert response.status_code == status, body
        assert response.json()["error"]["status"] == status
    assert httpx.get(server.url + "/Product/n1").json()["name"] == "new"
    # A literal dot starts a format or a property, as for a GET; %2E is part of the key.
    for path in ("/Product/n1.json", "/Product/n1.name"):
        assert httpx.post(server.url + path, json={"m": 1}).status_code == 405, path
    async with socket(server, "/Product/n1%2Ename?omitCurrent=true") as ws:
        assert httpx.post(server.url + "/Product/n1%2Ename", json={"m": 1}).status_code == 204
        event = await receive(ws)
    assert (event["id"], event["value"]) == ("n1.name", {"m": 1})


async def test_messages_on_a_collection_are_refused(server: Server) -> None:
    async with socket(server, "/Product/?omitCurrent=true") as ws:
        await ws.send(json.dumps({"text": "to whom?"}))
        error = await receive(ws)
    assert (error["type"], error["status"]) == ("error", 405)


async def test_publish_needs_the_update_right(auth_server: Server) -> None:
    server = auth_server
    async with (
        socket(server, "/Product/q1?omitCurrent=true", additional_headers=basic("root")) as root,
        socket(server, "/Product/q1?omitCurrent=true", additional_headers=basic("rita")) as rita,
        socket(server, "/Product/q1?omitCurrent=true", additional_headers=basic("walt")) as walt,
    ):
        await rita.send(json.dumps({"from": "rita"}))  # a reader: refused
        refused = await receive(rita)
        await walt.send(json.dumps({"from": "walt"}))
        heard = await receive(root)
        assert (await receive(rita))["value"] == {"from": "walt"}  # rita still subscribes
        assert (await receive(walt))["value"] == {"from": "walt"}
    assert (refused["type"], refused["status"], refused["code"]) == ("error", 403, "FORBIDDEN")
    assert (heard["value"], heard["user"]) == ({"from": "walt"}, "walt")
    url = server.url + "/Product/q1"
    assert httpx.post(url, json={"m": 1}).status_code == 401
    assert httpx.post(url, json={"m": 1}, auth=("rita", PASSWORD)).status_code == 403
    assert httpx.post(url, json={"m": 1}, auth=("walt", PASSWORD)).status_code == 204


async def test_an_override_of_publish_is_reached_and_still_guarded(auth_server: Server) -> None:
    server = auth_server
    path = "/Product/shout-s1?omitCurrent=true"
    async with socket(server, path, additional_headers=basic("root")) as ws:
        url = server.url + "/Shout/s1"
        assert httpx.post(url, json={"text": "hi"}, auth=("rita", PASSWORD)).status_code == 403
        assert httpx.post(url, json={"text": "hi"}, auth=("walt", PASSWORD)).status_code == 204
        event = await receive(ws)
    assert (event["type"], event["value"], event["user"]) == ("publish", {"shout": "HI"}, "walt")
    async with socket(server, "/Shout/s1", additional_headers=basic("rita")) as ws:
        await ws.send(json.dumps({"text": "hi"}))
        assert (await receive(ws))["status"] == 403


async def test_a_write_rule_decides_which_topics_a_user_may_publish_to(
    auth_server: Server,
) -> None:
    server = auth_server
    root = ("root", PASSWORD)
    for key, owner in (("m-walt", "walt"), ("m-rita", "rita")):
        created = httpx.put(f"{server.url}/Memo/{key}", json={"id": key, "owner": owner}, auth=root)
        assert created.status_code == 204
    walt = ("walt", PASSWORD)
    assert httpx.post(server.url + "/Memo/m-walt", json={"m": 1}, auth=walt).status_code == 204
    assert httpx.post(server.url + "/Memo/m-rita", json={"m": 1}, auth=walt).status_code == 403
    # A topic without a record cannot be checked against the rule: refused (fail closed).
    assert httpx.post(server.url + "/Memo/nobody", json={"m": 1}, auth=walt).status_code == 403
    assert httpx.post(server.url + "/Memo/nobody", json={"m": 1}, auth=root).status_code == 204

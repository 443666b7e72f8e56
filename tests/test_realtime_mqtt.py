"""The MQTT bridge against a real Mosquitto: changes out (retained, QoS 1), client messages in
(through ``publish()`` and its permission checks), one publisher per deployment, and the
broker catching up after it restarts (from the log, or from the state when the log was pruned).

Each test starts its own broker on a free port (retained messages would otherwise leak between
tests); one test uses the broker ``.ci/run`` starts on 1883.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from charter import App, Field, Grant, Role, Table
from charter.realtime import Event
from charter.realtime.mqtt import parse_mqtt_url
from tests.servers import Server, free_port

aiomqtt = pytest.importorskip("aiomqtt")

WAIT = 30.0  # seconds a test waits for something that must happen (never a timing assertion)


def _service_missing(reason: str) -> None:
    if os.environ.get("CHARTER_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class Broker:
    """A Mosquitto of the test's own, with persistence (a restart keeps retained messages)."""

    def __init__(self, folder: Path, *, persistence: bool = True) -> None:
        self.port = free_port()
        self.folder = folder
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence {str(persistence).lower()}\npersistence_location {folder}/\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=WAIT)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if shutil.which("mosquitto") is None:
        _service_missing("mosquitto is not installed")
    folder = tmp_path / "broker"
    folder.mkdir()
    running = Broker(folder)
    running.start()
    yield running
    running.stop()


class Product(Table):
    id: int
    name: str = ""
    price: float = 0
    secret: str = Field("", returned=False)  # never reaches the broker


class Gadget(Table):
    id: str
    name: str = ""


async def _started(database: str, url: str, **options: Any) -> App:
    app = App(tables=[Product, Gadget], database=database, mqtt=url, **options)
    await app.startup()
    assert app.mqtt is not None
    await asyncio.wait_for(app.mqtt.connected.wait(), WAIT)
    return app


async def _caught_up(app: App) -> None:
    """Wait until the broker acknowledged every event of the log (and the bridge saved it)."""
    assert app.mqtt is not None
    _, newest = await app.database.event_bounds()
    deadline = time.monotonic() + WAIT
    while await app.mqtt.saved() != newest:
        assert time.monotonic() < deadline, "the bridge did not catch up"
        await asyncio.sleep(0.05)


class Listener:
    """An MQTT client of the test: every message on ``Product/#`` and ``Gadget/#``."""

    def __init__(self, url: str) -> None:
        self.target = parse_mqtt_url(url)
        self.messages: list[tuple[str, bytes, bool]] = []
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._new = asyncio.Event()

    async def __aenter__(self) -> Listener:
        self._client = aiomqtt.Client(
            self.target.host, self.target.port, protocol=aiomqtt.ProtocolVersion.V5
        )
        await self._client.__aenter__()
        await self._client.subscribe([("Product/#", 1), ("Gadget/#", 1)])
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        async for message in self._client.messages:
            payload = bytes(message.payload) if message.payload else b""
            self.messages.append((str(message.topic), payload, bool(message.retain)))
            self._new.set()

    async def publish(self, topic: str, payload: Any) -> None:
        await self._client.publish(topic, msgspec.json.encode(payload), qos=1)

    async def until(self, topic: str, test: Any = None) -> dict[str, Any] | None:
        """The newest message on ``topic`` once one passes ``test`` (its JSON, None: empty)."""
        deadline = time.monotonic() + WAIT
        while True:
            for name, payload, _ in reversed(self.messages):
                if name == topic:
                    body = msgspec.json.decode(payload) if payload else None
                    if test is None or test(body):
                        return body
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"no message on {topic} passed; got {self.messages}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), 1)

    def on(self, topic: str) -> list[bytes]:
        return [payload for name, payload, _ in self.messages if name == topic]


async def _next_event(events: AsyncIterator[Event]) -> Event:
    return await asyncio.wait_for(anext(events), WAIT)


# -- out: changes to the broker ----------------------------------------------------------------


async def test_changes_are_published_retained_and_a_delete_clears(
    database: str, broker: Broker
) -> None:
    app = await _started(database, broker.url)
    try:
        await Product.put({"id": 1, "name": "hat", "price": 5, "secret": "s"})
        await Product.patch(1, {"price": 6})
        await Product.put({"id": 2, "name": "cap"})
        await Product.delete(2)
        await _caught_up(app)
        async with Listener(broker.url) as live:
            # A client that subscribes afterwards gets the retained state: the newest put of
            # record 1, and nothing for the deleted record 2.
            body = await live.until("Product/1", lambda b: b["type"] == "patch")
            assert body is not None
            assert body["id"] == 1
            assert body["value"] == {"id": 1, "name": "hat", "price": 6}
            assert isinstance(body["position"], int)
            await Product.put({"id": 3, "name": "scarf"})
            await live.until("Product/3")
            assert live.on("Product/2") == []
            # Live: a delete is an empty retained message (it clears the retained state).
            await Product.delete(3)
            assert await live.until("Product/3", lambda b: b is None) is None
        await _caught_up(app)
        async with Listener(broker.url) as late:
            await late.until("Product/1")
            await Product.put({"id": 4})
            await late.until("Product/4")
            assert late.on("Product/3") == []
    finally:
        await app.shutdown()


async def test_the_broker_of_ci_on_1883(tmp_path: Path) -> None:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError:
        _service_missing("no MQTT broker on 127.0.0.1:1883 (.ci/run starts one)")
    # Its own table name: the shared broker keeps retained messages of earlier runs.
    name = f"Mqtt{secrets.token_hex(4)}"
    table = type(name, (Table,), {"__annotations__": {"id": int, "name": str}, "name": ""})
    app = App(tables=[table], database=f"sqlite:///{tmp_path}/t.db", mqtt="mqtt://127.0.0.1")
    await app.startup()
    try:
        assert app.mqtt is not None
        await asyncio.wait_for(app.mqtt.connected.wait(), WAIT)
        async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as c:
            await c.subscribe(f"{name}/#", qos=1)
            await table.put({"id": 7, "name": "x"})
            async with asyncio.timeout(WAIT):
                async for message in c.messages:
                    body = msgspec.json.decode(message.payload)
                    assert str(message.topic) == f"{name}/7"
                    assert body["value"] == {"id": 7, "name": "x"}
                    break
    finally:
        await app.shutdown()


# -- in: client messages to publish() ------------------------------------------------------------


async def test_a_client_message_reaches_publish_and_subscribers_once(
    database: str, broker: Broker
) -> None:
    app = await _started(database, broker.url)
    try:
        after = app.hub.position
        events = Product.subscribe(5, after=after, omit_current=True)
        async with Listener(broker.url) as live:
            await live.publish("Product/5", {"say": "hello"})
            event = await _next_event(events)
            assert (event.type, event.id, event.value) == ("publish", 5, {"say": "hello"})
            # The bridge does not send the message to the broker again: when a later change
            # (published after it, in log order) arrives, no second copy came before it.
            await Product.put({"id": 5, "name": "after"})
            await live.until("Product/5", lambda b: b is not None and b.get("type") == "put")
            assert next(msgspec.json.decode(p) for p in live.on("Product/5")) == {"say": "hello"}
            assert len(live.on("Product/5")) == 2
            # A publish made elsewhere (server code, REST, WebSocket) reaches the broker,
            # not retained.
            await Product.publish(5, {"say": "from the server"})
            body = await live.until("Product/5", lambda b: b.get("type") == "publish")
            assert body is not None
            assert body["value"] == {"say": "from the server"}
            assert live.messages[-1][2] is False
        await events.aclose()  # type: ignore[attr-defined]
    finally:
        await app.shutdown()


async def test_malformed_messages_are_dropped(database: str, broker: Broker) -> None:
    app = await _started(database, broker.url)
    try:
        events = Product.subscribe(None, after=app.hub.position, omit_current=True)
        async with Listener(broker.url) as live:
            await live._client.publish("Product/8", b"not json", qos=1)
            await live.publish("Product/not-a-number", {"x": 1})
            await live.publish("Nothing/1", {"x": 1})
            await live.publish("Product/8", {"ok": True})
            event = await _next_event(events)
            assert (event.type, event.id, event.value) == ("publish", 8, {"ok": True})
        await events.aclose()  # type: ignore[attr-defined]
    finally:
        await app.shutdown()


@pytest.mark.parametrize("granted", [False, True])
async def test_client_messages_act_as_anonymous(
    database: str, broker: Broker, granted: bool
) -> None:
    roles = [
        Role(
            "anonymous",
            tables={
                "Product": Grant(read=True, insert=True, update=granted),
                "Gadget": Grant(read=True, update=True),
            },
        )
    ]
    app = await _started(database, broker.url, auth=True, roles=roles)
    try:
        products = Product.subscribe(6, after=app.hub.position, omit_current=True)
        gadgets = Gadget.subscribe("g", after=app.hub.position, omit_current=True)
        async with Listener(broker.url) as live:
            await live.publish("Product/6", {"say": "hi"})
            # The bridge handles one client's messages in order: once this one is through,
            # the first was delivered or refused.
            await live.publish("Gadget/g", {"say": "through"})
            assert (await _next_event(gadgets)).value == {"say": "through"}
            await Product.put({"id": 6, "name": "after"})
            first = await _next_event(products)
            if granted:
                assert (first.type, first.value, first.user) == ("publish", {"say": "hi"}, None)
                first = await _next_event(products)
            assert (first.type, first.id) == ("put", 6)  # refused: nothing before the put
        await products.aclose()  # type: ignore[attr-defined]
        await gadgets.aclose()  # type: ignore[attr-defined]
    finally:
        await app.shutdown()


# -- one publisher; catching the broker up ---------------------------------------------------------


async def test_one_bridge_leads_and_another_takes_over(database: str, broker: Broker) -> None:
    first = await _started(database, broker.url)
    second = App(tables=[Product, Gadget], database=database, mqtt=broker.url)
    await second.startup()
    try:
        assert first.mqtt is not None and second.mqtt is not None
        assert first.mqtt.leading and not second.mqtt.leading
        await first.shutdown()
        await asyncio.wait_for(second.mqtt.connected.wait(), WAIT)
        assert second.mqtt.leading
        async with Listener(broker.url) as live:
            await Product.put({"id": 11, "name": "second"})
            body = await live.until("Product/11")
            assert body is not None
            assert body["value"]["name"] == "second"
    finally:
        await first.shutdown()
        await second.shutdown()


async def test_a_restarted_broker_gets_what_it_missed(database: str, broker: Broker) -> None:
    app = await _started(database, broker.url)
    try:
        assert app.mqtt is not None
        await Product.put({"id": 1, "name": "before"})
        await Product.put({"id": 2, "name": "deleted while down"})
        async with Listener(broker.url) as live:
            await live.until("Product/2")
        broker.stop()
        await Product.put({"id": 1, "name": "changed while down"})
        await Product.put({"id": 3, "name": "new while down"})
        await Product.delete(2)
        broker.start()
        async with Listener(broker.url) as live:
            one = await live.until("Product/1", lambda b: b["value"]["name"] != "before")
            assert one is not None
            assert one["value"]["name"] == "changed while down"
            three = await live.until("Product/3")
            assert three is not None
            assert three["value"]["name"] == "new while down"
            await Product.put({"id": 4})
            await live.until("Product/4")
            assert live.on("Product/2") in ([], [b""])
    finally:
        await app.shutdown()


async def test_a_broker_that_forgot_everything_gets_the_state_again(
    database: str, tmp_path: Path
) -> None:
    if shutil.which("mosquitto") is None:
        _service_missing("mosquitto is not installed")
    broker = Broker(tmp_path, persistence=False)  # a restart loses every retained message
    broker.start()
    try:
        app = await _started(database, broker.url)
        try:
            await Product.put({"id": 1, "name": "before"})
            await _caught_up(app)
            broker.stop()
            await Product.put({"id": 2, "name": "while down"})
            broker.start()
            async with Listener(broker.url) as live:
                for key, name in ((1, "before"), (2, "while down")):
                    body = await live.until(f"Product/{key}")
                    assert body is not None
                    assert body["value"]["name"] == name
        finally:
            await app.shutdown()
    finally:
        broker.stop()


async def test_client_messages_sent_while_the_bridge_is_away_wait_for_it(
    database: str, broker: Broker
) -> None:
    app = await _started(database, broker.url)
    _, after = await app.database.event_bounds()
    await app.shutdown()
    async with Listener(broker.url) as live:
        await live.publish("Product/9", {"say": "while you were away"})
    again = await _started(database, broker.url)
    try:
        events = Product.subscribe(9, after=after, omit_current=True)
        event = await _next_event(events)
        assert (event.type, event.value) == ("publish", {"say": "while you were away"})
        await events.aclose()  # type: ignore[attr-defined]
    finally:
        await again.shutdown()
    assert again.mqtt is not None
    assert not again.mqtt.running  # it stopped, however its last wake-up came


async def test_a_pruned_log_republishes_the_state(database: str, broker: Broker) -> None:
    app = await _started(database, broker.url, event_retention_count=1)
    try:
        await Product.put({"id": 1, "name": "one"})
        async with Listener(broker.url) as live:
            await live.until("Product/1")
        broker.stop()
        for i in range(2, 6):
            await Product.put({"id": i, "name": f"record {i}"})
        await app.hub.prune()  # the log keeps one event: the bridge's position is gone
        broker.start()
        async with Listener(broker.url) as live:
            for i in range(2, 6):
                body = await live.until(f"Product/{i}")
                assert body is not None
                assert body["value"]["name"] == f"record {i}"
    finally:
        await app.shutdown()


async def test_the_acknowledged_position_survives_a_restart(database: str, broker: Broker) -> None:
    app = await _started(database, broker.url)
    await Product.put({"id": 1, "name": "one"})
    async with Listener(broker.url) as live:
        await live.until("Product/1")
    await _caught_up(app)
    await app.shutdown()
    async with Listener(broker.url) as live:
        await live.until("Product/1")  # the retained state
        again = await _started(database, broker.url)
        try:
            # Resumed from the log, not the whole state again: record 1 is not sent twice.
            await Product.put({"id": 2, "name": "two"})
            await live.until("Product/2")
            assert len(live.on("Product/1")) == 1
        finally:
            await again.shutdown()


async def test_an_id_no_topic_can_name_is_skipped(database: str, broker: Broker) -> None:
    app = await _started(database, broker.url)
    try:
        async with Listener(broker.url) as live:
            await Gadget.put({"id": "a+b#", "name": "wildcards"})
            await Gadget.put({"id": "a/b", "name": "a slash is a level"})
            body = await live.until("Gadget/a/b")
            assert body is not None
            assert body["id"] == "a/b"
            _, after = await app.database.event_bounds()
            events = Gadget.subscribe("a/b", after=after, omit_current=True)
            await live.publish("Gadget/a/b", {"to": "a/b"})
            event = await _next_event(events)
            assert (event.type, event.value) == ("publish", {"to": "a/b"})
            await events.aclose()  # type: ignore[attr-defined]
    finally:
        await app.shutdown()


def test_the_setting_must_be_an_mqtt_url(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cret-in-the-url"
    for bad in ("http://host", "mqtt://", f"mqtt://u:{secret}@host:port", "host:1883"):
        with pytest.raises(
            ValueError, match=r"App\(mqtt=...\) must be a URL like mqtt://host:1883"
        ) as caught:
            App(tables=[], database="sqlite://", mqtt=bad)
        assert secret not in str(caught.value)
    monkeypatch.setenv("CHARTER_MQTT", f"http://u:{secret}@host")
    with pytest.raises(ValueError, match="CHARTER_MQTT must be") as caught:
        App(tables=[], database="sqlite://")
    assert secret not in str(caught.value)
    assert parse_mqtt_url("mqtts://u:p%40ss@broker").port == 8883
    assert parse_mqtt_url("mqtts://u:p%40ss@broker").password == "p@ss"


# -- a real server with two workers ---------------------------------------------------------------

APP = """
from charter import App, Table

class Product(Table):
    id: int
    name: str = ""

app = App(tables=[Product])
"""


def _serve(
    tmp_path: Path, database: str, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> Server:
    app_file = tmp_path / "mqtt_app.py"
    app_file.write_text(APP)
    monkeypatch.setenv("CHARTER_MQTT", broker.url)
    return Server(f"{app_file}:app", "--workers", "2", "--database", database)


async def _put_many(url: str, keys: range) -> None:
    limits = httpx.Limits(max_connections=8)  # several connections: both workers write
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def put(key: int) -> None:
            answer = await client.put(f"/Product/{key}", json={"id": key, "name": f"n{key}"})
            assert answer.status_code in (200, 201, 204), answer.text

        await asyncio.gather(*(put(key) for key in keys))


async def test_two_workers_publish_each_change_once(
    tmp_path: Path, database: str, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _serve(tmp_path, database, broker, monkeypatch) as server:
        async with Listener(broker.url) as live:
            await _put_many(server.url, range(1, 41))
            for key in range(1, 41):
                await live.until(f"Product/{key}")
            # Both bridges publishing would send each change twice: once the last write's
            # message came after all of these, none came twice.
            await _put_many(server.url, range(41, 42))
            await live.until("Product/41")
            assert all(len(live.on(f"Product/{key}")) == 1 for key in range(1, 42))


async def test_acknowledged_writes_reach_the_broker_after_kill_9(
    tmp_path: Path, database: str, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = _serve(tmp_path, database, broker, monkeypatch)
    with server:
        await _put_many(server.url, range(1, 101))
        server.kill()  # SIGKILL: whatever the bridge had not published yet is in the log
    with _serve(tmp_path, database, broker, monkeypatch):
        async with Listener(broker.url) as live:
            for key in range(1, 101):
                body = await live.until(f"Product/{key}")
                assert body is not None
                assert body["value"] == {"id": key, "name": f"n{key}"}

"""The MQTT bridge (SPEC section 8): every table is also a topic tree ``Table/{id}`` on a broker.

Out: each event of the log is published on ``Table/{id}`` with QoS 1, its JSON as SSE sends it
(``type id value timestamp user``, plus ``position``). A ``put``/``patch`` is retained (a
client that subscribes later gets the record's current state); a ``delete`` is an empty
retained message, which is how MQTT removes a retained message (a live subscriber receives it
as an empty payload); a ``publish`` is not retained (it is a message, not state). The value is
the record as a GET by a super user shows it (``returned=False`` attributes never): who may
read the topics is the broker's access control.

In: a client's message on ``Table/{id}`` (JSON) reaches that record's ``publish()`` with the
checks of a ``POST /Table/{id}`` or a WebSocket message (the ``update`` right, then what
``publish()`` checks), acting as the role ``anonymous`` when auth is on: the broker tells the
bridge nothing it could trust about who sent a message, so it gets only what an
unauthenticated request would (nothing unless granted). With auth off every request has every
right, and so does a client message. A refused or malformed message is logged and dropped.
No loops: the bridge subscribes with MQTT 5's *no local* option (its own publishes never come
back to it) and without retained messages (they are its own); a message it delivered to
``publish()`` is not sent to the broker again (the broker delivered it already).

Lossless: the bridge keeps the position of the newest event the broker acknowledged (PUBACK)
in ``_charter_mqtt``. After a broker restart (or a bridge restart) it reconnects with backoff
and publishes the log from there. It publishes the current state of every record instead, then
follows the log, on the first start, when the log was pruned past that position, and when the
broker no longer has the bridge's session (a broker without persistence lost its retained
messages too). One worker of the deployment runs the bridge at a time (``realtime.leader``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import CharterError, HttpError
from ..model.fields import Field
from ..model.roles import ANONYMOUS
from ..model.table import Table, maybe_await
from ..query import Query
from ..runtime.access import UPDATE
from ..runtime.context import RequestContext
from ..runtime.events import EventBus
from ..schema import TableSchema, build_schema
from ..storage import LoggedEvent, Storage
from ..storage.base import PUT, Change
from .events import wire_dict
from .leader import Leadership, leadership_for

if TYPE_CHECKING:
    import aiomqtt

    from ..runtime.tables import TableRuntime

__all__ = ["MQTT_TABLE", "MqttBridge", "MqttTarget", "parse_mqtt_url"]

log = logging.getLogger("charter.realtime")
MQTT_TABLE = "_charter_mqtt"
_BATCH = 500  # events published (and acknowledged) at once
_SAFETY = 10.0  # seconds between looks at the log when nothing woke the bridge
_BACKOFF = (0.2, 5.0)  # first and longest pause between connection attempts (seconds)
_STOP = 15.0  # seconds stop() waits for the connection to close
_SESSION = 7 * 24 * 3600  # seconds the broker keeps the bridge's session while it is away
_PENDING = 10_000  # client messages remembered so as not to echo them (bounded)
_encode = msgspec.json.encode
_decode = msgspec.json.decode


class _NotLeading(CharterError):
    """The bridge's lock is lost: it must stop publishing (another worker may lead)."""


class _Position(Table, name=MQTT_TABLE):
    """The newest event position the broker acknowledged, per bridge name."""

    name: str = Field(primary_key=True, min_length=1, max_length=200)
    position: int = 0


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """Where the broker is: from ``mqtt://[user:password@]host[:port]`` (``mqtts://``: TLS)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_mqtt_url(url: str) -> MqttTarget:
    """The broker named by ``url``; ``ValueError`` when it is not an MQTT URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("the MQTT setting is a URL like mqtt://host:1883 (mqtts:// for TLS)")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError("the MQTT URL has a port that is not a number") from None
    return MqttTarget(
        parts.hostname,
        port,
        urllib.parse.unquote(parts.username) if parts.username else None,
        urllib.parse.unquote(parts.password) if parts.password else None,
        tls,
    )


class MqttBridge:
    """Publishes the event log to a broker and delivers client messages to ``publish()``.

    Args:
        url: the broker (``parse_mqtt_url``).
        storage: the app's database (the event log, the acknowledged position, the lock).
        tables: the app's tables by name (a topic's first level).
        bus: ``app.events``: the hub hands it every event, which wakes the bridge.
        identity: the request context a client message acts as (see the module docstring).
    """

    def __init__(
        self,
        url: str,
        storage: Storage,
        tables: Mapping[str, TableRuntime],
        bus: EventBus,
        identity: Callable[[], Awaitable[RequestContext]],
    ) -> None:
        self.target = parse_mqtt_url(url)
        self.storage = storage
        self.tables = tables
        self.bus = bus
        self.identity = identity
        self.name = _bridge_name(storage, self.target)
        self.leader: Leadership = leadership_for(storage, self.name)
        self.session_present = False  # the broker kept the bridge's session (its CONNACK)
        self.acked: int | None = None  # the newest position the broker acknowledged
        self.leading = False
        self.connected = asyncio.Event()  # set while connected and caught up once
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stops: list[Callable[[], None]] = []
        self._pending: Counter[tuple[str, str, str]] = Counter()

    @staticmethod
    def schemas() -> list[TableSchema]:
        """The bridge's system table, opened with the app's tables."""
        return [build_schema(_Position, _Position.__charter_options__)]

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.running:
            return
        self._woken = asyncio.Event()
        self.connected = asyncio.Event()
        self.leading = await self.leader.try_acquire()  # else the bridge waits for its turn
        self._task = asyncio.create_task(self._run(), name="charter-mqtt")

    async def stop(self) -> None:
        for stop in self._stops:
            stop()
        self._stops.clear()
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=_STOP)  # a broker that does not answer
            if not task.done():
                log.warning("MQTT bridge: did not stop within %.0f s; left behind", _STOP)
                return
            self._task = None
            if not task.cancelled():
                task.exception()  # retrieved: logged by the loop otherwise
        self.leading = False
        await self.leader.release()

    @property
    def running(self) -> bool:
        """Whether the bridge's task is alive (started, and not stopped yet)."""
        return self._task is not None and not self._task.done()

    def _wake(self, _event: Any = None) -> None:
        self._woken.set()

    # -- the connection --------------------------------------------------------------------

    async def _run(self) -> None:
        import aiomqtt

        if not self.leading:
            await self.leader.acquire()
            self.leading = True
        # Only the leading worker listens (a listener makes the hub build each event for it).
        for name in self.tables:
            self._stops.append(self.bus.subscribe(f"{name}/", self._wake))
        log.info("MQTT bridge: this worker publishes to %s", self.target.host)
        pause = _BACKOFF[0]
        while True:
            try:
                async with self._client() as client:
                    pause = _BACKOFF[0]
                    await self._session(client)
            except _NotLeading:
                self.connected.clear()
                log.warning("MQTT bridge: this worker lost the lock; waiting for it again")
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning("MQTT bridge: %s; reconnecting in %.1f s", exc, pause)
            except Exception:
                self.connected.clear()
                log.exception("MQTT bridge failed; reconnecting in %.1f s", pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _BACKOFF[1])
            if not await self.leader.held():  # its database connection was lost
                self.leading = False
                await self.leader.acquire()
                self.leading = True

    def _client(self) -> aiomqtt.Client:
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        # A session the broker keeps while the bridge is away: client messages wait for it,
        # and a broker that lost its state (no persistence) says so at connect (see
        # ``_outbound``).
        session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        session.SessionExpiryInterval = _SESSION
        target = self.target
        client = aiomqtt.Client(
            target.host,
            target.port,
            username=target.username,
            password=target.password,
            identifier=self.name,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=ssl.create_default_context() if target.tls else None,
            timeout=10,
            keepalive=30,
            clean_start=False,
            properties=session,
        )
        self.session_present = False
        paho: Any = client._client
        connected = paho.on_connect

        def on_connect(
            paho_client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None
        ) -> None:
            self.session_present = bool(getattr(flags, "session_present", False))
            connected(paho_client, userdata, flags, reason, properties)

        paho.on_connect = on_connect
        return client

    async def _session(self, client: aiomqtt.Client) -> None:
        """Subscribe, catch the broker up, then follow the log and the clients until the
        connection fails (an exception)."""
        from paho.mqtt.subscribeoptions import SubscribeOptions

        options = SubscribeOptions(qos=1, noLocal=True, retainHandling=2)
        if self.tables:
            await client.subscribe([(f"{name}/#", options) for name in self.tables])
        # Both directions end the session when either does: a dropped connection shows
        # first where the client's messages stop, while the log may be quiet for long.
        tasks = {
            asyncio.create_task(self._inbound(client), name="charter-mqtt-in"),
            asyncio.create_task(self._outbound(client), name="charter-mqtt-out"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # its error ends the session
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- out: the log to the broker --------------------------------------------------------

    async def _outbound(self, client: aiomqtt.Client) -> None:
        acked = await self._load()
        floor, newest = await self.storage.event_bounds()
        if acked is None or acked < floor or not self.session_present:
            # First start, the log no longer holds what the broker missed, or the broker lost
            # what it had (its session for the bridge is gone, and with it, as a rule, its
            # retained messages): the current state of every record (events after ``newest``
            # follow from the log).
            await self._publish_state(client)
            acked = newest
            await self._save(acked)
        self.acked = acked
        self.connected.set()
        while True:
            self._woken.clear()
            events = await self.storage.read_events(acked, _BATCH)
            if events:
                await asyncio.gather(*(self._publish_event(client, e) for e in events))
                acked = self.acked = events[-1].position
                await self._save(acked)
                continue
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for swallows a cancellation
            # that comes as the wake-up does, and the bridge would not stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SAFETY):
                    await self._woken.wait()
            if not await self.leader.held():  # its lock's database connection was lost:
                raise _NotLeading  # another worker may lead by now; publish no more
            floor, _ = await self.storage.event_bounds()
            if acked < floor:  # pruned while this bridge lagged: the state again
                _, newest = await self.storage.event_bounds()
                await self._publish_state(client)
                acked = self.acked = newest
                await self._save(acked)

    async def _publish_event(self, client: aiomqtt.Client, logged: LoggedEvent) -> None:
        runtime = self.tables.get(logged.table)
        if runtime is None:
            return  # a table this app no longer serves
        topic = _topic(logged.table, logged.key)
        if topic is None:
            return
        if logged.type == "delete":
            await client.publish(topic, b"", qos=1, retain=True)
            return
        if logged.type == "publish":
            mark = (logged.table, str(logged.key), logged.data or "null")
            if self._pending[mark]:  # a client's message: the broker delivered it already
                self._pending[mark] -= 1
                if not self._pending[mark]:
                    del self._pending[mark]
                return
            value = _decode(logged.data) if logged.data is not None else None
            payload = _message(logged, value)
            await client.publish(topic, payload, qos=1, retain=False)
            return
        document = _decode(logged.data) if logged.data is not None else None
        value = runtime.public(document) if isinstance(document, dict) else document
        await client.publish(topic, _message(logged, value), qos=1, retain=True)

    async def _publish_state(self, client: aiomqtt.Client) -> None:
        """Every record's current state, retained (``type`` ``put``, no user)."""
        count = 0
        for name, runtime in self.tables.items():
            key_name = runtime.schema.primary_key
            batch: list[Awaitable[None]] = []
            async for row in self.storage.search(runtime.schema, Query()):
                document = _decode(row.data)
                key = document.get(key_name)
                body = {
                    "type": "put",
                    "id": key,
                    "value": runtime.public(document),
                    "timestamp": row.version,
                    "user": None,
                }
                topic = _topic(name, key)
                if topic is not None:
                    batch.append(client.publish(topic, _encode(body), qos=1, retain=True))
                if len(batch) >= _BATCH:
                    await asyncio.gather(*batch)
                    count += len(batch)
                    batch = []
            await asyncio.gather(*batch)
            count += len(batch)
        log.info("MQTT bridge: published the current state of %d records", count)

    # -- in: clients' messages to publish() ------------------------------------------------

    async def _inbound(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if message.retain:
                continue  # retained state is the bridge's own, not a client's message
            try:
                await self._deliver(str(message.topic), message.payload)
            except Exception:
                log.exception("MQTT bridge: a message on %s failed", message.topic)

    async def _deliver(self, topic: str, payload: Any) -> None:
        """Hand one client message to its record's ``publish()`` (see the module docstring)."""
        name, _, raw_key = topic.partition("/")
        runtime = self.tables.get(name)
        if runtime is None or not raw_key:
            return
        try:
            key = runtime.schema.coerce_key(raw_key)
        except HttpError:
            key = None
        if key is None:
            log.warning("MQTT bridge: dropped a message on %s: not a %s key", topic, name)
            return
        try:
            data = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
            message = _decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            log.warning("MQTT bridge: dropped a message on %s: its payload is not JSON", topic)
            return
        context = await self.identity()
        mark = (name, str(key), _encode(message).decode())
        self._remember(mark)
        try:
            with context:  # as POST /Table/{id} and a WebSocket message do (rest_publish)
                access = runtime.access(context)
                if not access.unrestricted:
                    access.require(context, name, UPDATE)
                instance = runtime.cls._blank(key, context, acting=True)
                await maybe_await(instance.publish(message))
        except (HttpError, CharterError) as exc:
            self._forget(mark)
            log.warning("MQTT bridge: refused a message on %s: %s", topic, exc)
        except BaseException:
            self._forget(mark)
            raise

    def _remember(self, mark: tuple[str, str, str]) -> None:
        if len(self._pending) >= _PENDING:
            self._pending.clear()  # marks of messages whose publish() changed them: forget
        self._pending[mark] += 1

    def _forget(self, mark: tuple[str, str, str]) -> None:
        if self._pending[mark] > 1:
            self._pending[mark] -= 1
        else:
            self._pending.pop(mark, None)

    # -- the acknowledged position ---------------------------------------------------------

    async def saved(self) -> int | None:
        """The acknowledged position as stored (None: the bridge never ran here)."""
        return await self._load()

    async def _load(self) -> int | None:
        row = await self.storage.fetch(MQTT_TABLE, self.name)
        return None if row is None else int(_decode(row.data)["position"])

    async def _save(self, position: int) -> None:
        body = _encode({"name": self.name, "position": position}).decode()
        await self.storage.commit([Change(PUT, MQTT_TABLE, self.name, body)])


def _topic(table: str, key: Any) -> str | None:
    """The record's topic; None (logged) for an id no MQTT topic can name: the wildcards
    ``+`` and ``#`` and NUL are not allowed in a topic, and the bridge must not stop on it."""
    topic = f"{table}/{key}"
    if "+" in topic or "#" in topic or "\0" in topic or len(topic.encode()) > 65535:
        log.warning("MQTT bridge: %s %r has no MQTT topic; not published", table, key)
        return None
    return topic


def _message(logged: LoggedEvent, value: Any) -> bytes:
    return _encode(wire_dict(logged, value))


def _bridge_name(storage: Storage, target: MqttTarget) -> str:
    """The bridge's MQTT client id and position row: one per database and broker."""
    where = getattr(storage, "path", None) or getattr(storage, "url", "")
    digest = hashlib.sha256(f"{where}|{target.host}:{target.port}".encode()).hexdigest()
    return f"charter-{digest[:16]}"


def anonymous_identity(
    auth: bool, storage: Any, role: Callable[[str], Awaitable[Any]]
) -> Callable[[], Awaitable[RequestContext]]:
    """The identity of client messages: the role ``anonymous`` when auth is on."""

    async def identity() -> RequestContext:
        context = RequestContext(auth=auth, storage=storage)
        if auth:
            context.role = await role(ANONYMOUS)
        return context

    return identity

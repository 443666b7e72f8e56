"""The server's half of the encrypted RPC channel (``charter/channel.py`` has the protocol).

``POST /rpc/_handshake`` opens a session; a request to an RPC route with the content type
``application/charter-sealed`` is opened here before the dispatcher goes on exactly as for a
plain call (identification, middleware, the route's permission check, its transaction), and
its response sealed after: a sealed call has no data path of its own that could skip a check.

Where sessions live, so that every worker sees them and a message counter is accepted once:
with ``App(shared="redis://...")``, in Redis (the keys with the session's lifetime as TTL, the
counter advanced by ``app.shared.raise_to``, one Lua script); otherwise in the app's database,
the system table ``_charter_channels``, its counter advanced by an optimistic transaction (a
concurrent advance conflicts, re-reads, and is refused). The in-process store is never used:
with ``--workers N`` each worker would hold its own counters and a message replayed to another
worker would be accepted.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..channel import (
    CLIENT_TO_SERVER,
    KEY_NONCE_SIZE,
    MEDIA_TYPE,
    PUBLIC_KEY_SIZE,
    SERVER_TO_CLIENT,
    SESSION_SIZE,
    VERSION,
    ChannelError,
    Frame,
    HandshakeReply,
    HandshakeRequest,
    aead,
    b64decode,
    b64encode,
    derive_keys,
    open_frame,
    parse_frame,
    seal_frame,
    shared_secret,
    transcript_hash,
)
from ..errors import MalformedInput, UnsupportedMediaType
from ..http.request import Request
from ..http.response import Response
from ..http.routing import Route
from ..model.fields import Field
from ..model.table import Table
from ..query import Condition, Query
from ..runtime.shared import SharedStore
from ..runtime.transaction import Transaction, run_in_transaction
from ..schema import TableSchema, build_schema
from ..storage import Storage

__all__ = ["CHANNELS", "ChannelServer", "Opened", "is_sealed"]

CHANNELS = "_charter_channels"
_CACHED = 10_000  # sessions a worker keeps the keys of (they never change)
_PURGE_EVERY = 60.0  # seconds between two sweeps of expired sessions, per worker
_PURGE_BATCH = 1000
_JSON = "application/json"


class _ChannelRecord(Table, name=CHANNELS):
    id: str = Field(primary_key=True)
    c2s: str = ""  # base64url
    s2c: str = ""
    expires: float = Field(default=0.0, indexed=True)
    last: int = 0


class _Keys(msgspec.Struct, frozen=True):
    """What a worker needs of a session to open and seal (never changes after the handshake)."""

    c2s: bytes
    s2c: bytes
    expires: float


class _Live:
    """A session's keys as a worker keeps them: ready cipher objects."""

    __slots__ = ("c2s", "expires", "s2c")

    def __init__(self, keys: _Keys) -> None:
        self.c2s = aead(keys.c2s)
        self.s2c = aead(keys.s2c)
        self.expires = keys.expires


_decode_keys = msgspec.json.Decoder(_Keys).decode
_encode = msgspec.json.Encoder().encode


class Opened(msgspec.Struct, frozen=True):
    """A request the channel opened: what sealing its response needs."""

    session: bytes
    counter: int
    path: str
    s2c: Any  # the session's server-to-client cipher (charter.channel.aead)


def is_sealed(request: Request) -> bool:
    """Whether the request's body is a sealed channel message."""
    content_type = request.header("content-type")
    return content_type is not None and content_type.split(";")[0].strip().lower() == MEDIA_TYPE


class _Sessions(ABC):
    """Where sessions are kept: created once, read by id, their counter advanced atomically."""

    def __init__(self) -> None:
        self._cache: dict[bytes, _Live] = {}

    async def keys(self, session: bytes) -> _Live | None:
        """The session's keys while it lives (cached per worker: they never change)."""
        keys = self._cache.get(session)
        if keys is None:
            stored = await self._load(session)
            if stored is None:
                return None
            keys = _Live(stored)
            if len(self._cache) >= _CACHED:
                self._cache.clear()
            self._cache[session] = keys
        if keys.expires <= time.time():
            self._cache.pop(session, None)
            return None
        return keys

    @abstractmethod
    async def create(self, session: bytes, keys: _Keys) -> None: ...

    @abstractmethod
    async def _load(self, session: bytes) -> _Keys | None: ...

    @abstractmethod
    async def advance(self, session: bytes, counter: int, expires: float) -> bool:
        """Record ``counter`` as the last accepted if it is above it, atomically; whether it
        was (False: a replayed or reordered message, or a session gone meanwhile)."""


class _SharedSessions(_Sessions):
    """Sessions in Redis: expire by themselves."""

    def __init__(self, shared: SharedStore) -> None:
        super().__init__()
        self.shared = shared

    @staticmethod
    def _key(session: bytes) -> str:
        return f"charter:channel:{session.hex()}"

    async def create(self, session: bytes, keys: _Keys) -> None:
        ttl = max(keys.expires - time.time(), 0.001)
        await self.shared.set(self._key(session), _encode(keys), ttl)

    async def _load(self, session: bytes) -> _Keys | None:
        stored = await self.shared.get(self._key(session))
        return _decode_keys(stored) if isinstance(stored, bytes) else None

    async def advance(self, session: bytes, counter: int, expires: float) -> bool:
        ttl = expires - time.time()
        if ttl <= 0:
            return False
        return await self.shared.raise_to(self._key(session) + ":c2s", counter, ttl)


class _DatabaseSessions(_Sessions):
    """Sessions in the system table ``_charter_channels``; expired rows swept now and then."""

    def __init__(self, storage: Storage) -> None:
        super().__init__()
        self.storage = storage
        self.schema: TableSchema = build_schema(_ChannelRecord, _ChannelRecord.__charter_options__)
        self._swept = 0.0

    async def _run(self, stage: Any) -> Any:
        result, _ = await run_in_transaction(self.storage, stage, join=False)
        return result

    async def create(self, session: bytes, keys: _Keys) -> None:
        await self._sweep()
        record = {"id": session.hex(), "c2s": b64encode(keys.c2s), "s2c": b64encode(keys.s2c),
                  "expires": keys.expires, "last": 0}  # fmt: skip

        async def insert(txn: Transaction) -> None:
            txn.put(CHANNELS, session.hex(), _encode(record).decode(), insert=True)

        await self._run(insert)

    async def _load(self, session: bytes) -> _Keys | None:
        row = await self.storage.fetch(CHANNELS, session.hex())
        if row is None:
            return None
        record = msgspec.json.decode(row.data)
        return _Keys(
            b64decode(record["c2s"], "c2s", 32), b64decode(record["s2c"], "s2c", 32),
            float(record["expires"]),
        )  # fmt: skip

    async def advance(self, session: bytes, counter: int, expires: float) -> bool:
        async def stage(txn: Transaction) -> bool:
            row = await txn.read(CHANNELS, session.hex())
            if row is None:
                return False
            record = msgspec.json.decode(row.data)
            if record["last"] >= counter or record["expires"] <= time.time():
                return False
            record["last"] = counter
            txn.put(CHANNELS, session.hex(), _encode(record).decode())
            return True

        # A concurrent advance of the same row makes this commit conflict: the transaction is
        # run again, reads the counter the other one wrote, and refuses a counter not above it.
        return bool(await self._run(stage))

    async def _sweep(self) -> None:
        """Delete expired sessions, at most once a minute per worker (at a handshake)."""
        now = time.time()
        if now - self._swept < _PURGE_EVERY:
            return
        self._swept = now
        query = Query(conditions=[Condition("expires", "lt", now)], limit=_PURGE_BATCH)
        expired = [row async for row in self.storage.search(self.schema, query)]
        if not expired:
            return

        async def delete(txn: Transaction) -> None:
            for row in expired:
                txn.delete(CHANNELS, msgspec.json.decode(row.data)["id"])

        await self._run(delete)


class ChannelServer:
    """Opens sessions, opens sealed requests and seals their responses.

    Args:
        storage: the app's database (sessions there unless ``shared`` is Redis).
        shared: the app's shared store.
        ttl: seconds a session lives from its handshake (``channel_ttl``).
    """

    def __init__(self, storage: Storage, shared: SharedStore, ttl: float) -> None:
        self.ttl = ttl
        self._database = _DatabaseSessions(storage)
        self.sessions: _Sessions = (
            _SharedSessions(shared) if shared.kind == "redis" else self._database
        )

    @property
    def schemas(self) -> list[TableSchema]:
        """The system table (made even when Redis holds the sessions: one schema per app)."""
        return [self._database.schema]

    def route(self) -> Route:
        """``POST /rpc/_handshake``."""
        return Route("POST", "/rpc/_handshake", self.handshake, "_handshake", "channel", {})

    async def handshake(self, request: Request) -> Response:
        """Answer a client's key and nonce with the server's, a new session id and its life."""
        try:
            hello = msgspec.json.decode(await request.body(), type=HandshakeRequest)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedInput(f"handshake: {exc}") from None
        if hello.version != VERSION:
            raise MalformedInput(f"handshake: this server speaks channel version {VERSION}")
        client_key = b64decode(hello.public_key, "public_key", PUBLIC_KEY_SIZE)
        client_nonce = b64decode(hello.nonce, "nonce", KEY_NONCE_SIZE)
        private = X25519PrivateKey.generate()
        server_key = private.public_key().public_bytes_raw()
        server_nonce = os.urandom(KEY_NONCE_SIZE)
        session = os.urandom(SESSION_SIZE)
        secret = shared_secret(private, client_key)
        transcript = transcript_hash(client_key, client_nonce, server_key, server_nonce, session)
        c2s, s2c = derive_keys(secret, transcript)
        await self.sessions.create(session, _Keys(c2s, s2c, time.time() + self.ttl))
        reply = HandshakeReply(
            VERSION, b64encode(session), b64encode(server_key), b64encode(server_nonce),
            int(self.ttl),
        )  # fmt: skip
        return Response(200, msgspec.json.encode(reply), {"content-type": _JSON})

    async def open(self, request: Request, route: Route) -> Opened:
        """Open a sealed request in place (its body and content type become the plain call's)
        and accept its counter; raises, changing nothing, unless it is genuine, for this route,
        and newer than every message of its session accepted so far."""
        if route.kind != "rpc":
            raise UnsupportedMediaType(f"{MEDIA_TYPE} is for RPC calls (POST /rpc/{{name}})")
        frame: Frame = parse_frame(await request.body())
        keys = await self.sessions.keys(frame.session)
        if keys is None:
            raise ChannelError()
        payload = open_frame(keys.c2s, CLIENT_TO_SERVER, frame, request.path)
        if not await self.sessions.advance(frame.session, frame.counter, keys.expires):
            raise ChannelError(
                message="the message was already received, or is older than one received "
                "(replayed or reordered)",
                code="CHANNEL_REPLAY",
            )
        request.substitute(payload, {"content-type": _JSON, "accept": _JSON})
        return Opened(frame.session, frame.counter, request.path, keys.s2c)

    async def seal(self, opened: Opened, response: Response) -> Response:
        """The response with its status and body sealed for the client (a streamed body is
        read whole first); headers stay as they are, in the clear."""
        body = response.body
        if response.stream is not None:
            body = b"".join([chunk async for chunk in response.stream])
            response.stream = None
        payload = response.status.to_bytes(2, "big") + body
        response.body = seal_frame(
            opened.s2c, SERVER_TO_CLIENT, opened.session, opened.counter, opened.path, payload
        )
        # A 204 or 304 has no body in HTTP: the sealed one says which it was.
        if response.status in (204, 304):
            response.status = 200
        response.headers["content-type"] = MEDIA_TYPE
        response.headers.pop("content-length", None)
        return response

"""The encrypted RPC channel (SPEC section 11, issue 14): its wire protocol and a Python client.

Why a channel over TLS: TLS ends wherever the certificate is, often a proxy or CDN in front of
the app, which then sees (and may log) every RPC body. A channel seals RPC arguments and results
end to end between the client and the app's workers. docs/crypto.md describes the protocol
byte by byte and its threat model; this module is both ends' half of it (the server's other
half is ``charter/web/channel.py``).

Handshake (``POST /rpc/_handshake``, JSON, bytes in unpadded base64url): the client sends an
ephemeral X25519 public key and a 32-byte random nonce; the server answers its own, a session
id and the session's lifetime. Both hash the transcript and derive one key per direction with
``hkdf`` bound to it. Then a sealed call is ``POST /rpc/{name}`` with the content type
``application/charter-sealed`` and the body ``session || counter || ciphertext || tag``; the
answer is sealed the same way under the other key, with the request's counter.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import threading
from typing import Any

import httpx
import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .crypto import KEY_SIZE, TAG_SIZE, CryptoParameterError, DecryptionError, hkdf
from .errors import CharterError, HttpError, MalformedInput

__all__ = [
    "CLIENT_TO_SERVER",
    "COUNTER_SIZE",
    "HANDSHAKE_PATH",
    "KEY_NONCE_SIZE",
    "LABEL",
    "MEDIA_TYPE",
    "PUBLIC_KEY_SIZE",
    "SERVER_TO_CLIENT",
    "SESSION_SIZE",
    "VERSION",
    "Channel",
    "ChannelError",
    "Frame",
    "HandshakeReply",
    "HandshakeRequest",
    "SyncChannel",
    "aead",
    "b64decode",
    "b64encode",
    "derive_keys",
    "open_frame",
    "parse_frame",
    "seal_frame",
    "shared_secret",
    "transcript_hash",
]

VERSION = 1
"""The protocol version, in the handshake and in the transcript."""
LABEL = b"charter-channel-v1"
"""Starts the transcript, the HKDF info and every message's associated data."""
MEDIA_TYPE = "application/charter-sealed"
"""The content type of a sealed request or response body."""
HANDSHAKE_PATH = "/rpc/_handshake"
PUBLIC_KEY_SIZE = 32
KEY_NONCE_SIZE = 32
"""Bytes of the random nonce each side adds to the handshake."""
SESSION_SIZE = 16
COUNTER_SIZE = 8
CLIENT_TO_SERVER = 1
SERVER_TO_CLIENT = 2
_MAX_COUNTER = 2**64 - 1
_HEADER = SESSION_SIZE + COUNTER_SIZE


class ChannelError(HttpError):
    """400 ``CHANNEL_EXPIRED`` (an unknown or expired session) or ``CHANNEL_REPLAY`` (a counter
    not above the last accepted): a genuine-looking call the channel cannot accept, unrun."""

    status_code = 400
    default_code = "CHANNEL_EXPIRED"
    default_message = "the channel session is unknown or has expired: open a new one"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(self.status_code, message, code, details, headers)


def b64encode(raw: bytes) -> str:
    """Unpadded base64url, the form of every byte field of the handshake."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: Any, name: str, size: int) -> bytes:
    """A handshake field back to ``size`` bytes; anything else is a 400 naming the field."""
    if not isinstance(text, str) or len(text) > 4 * size:
        raise MalformedInput(f"{name} must be {size} bytes in base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedInput(f"{name} must be {size} bytes in base64url") from None
    if len(raw) != size:
        raise MalformedInput(f"{name} must be {size} bytes in base64url, not {len(raw)}")
    return raw


class HandshakeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The client's half: ``{"version": 1, "public_key": ..., "nonce": ...}``."""

    version: int
    public_key: str
    nonce: str


class HandshakeReply(msgspec.Struct):
    """The server's half, with the session id and the seconds it lives."""

    version: int
    session: str
    public_key: str
    nonce: str
    expires_in: int


def transcript_hash(
    client_key: bytes, client_nonce: bytes, server_key: bytes, server_nonce: bytes, session: bytes
) -> bytes:
    """SHA-256 of the whole handshake: the label, the version and every field, each of a fixed
    size (so the concatenation is unambiguous)."""
    return hashlib.sha256(
        LABEL + bytes([VERSION]) + client_key + client_nonce + server_key + server_nonce + session
    ).digest()


def shared_secret(private: X25519PrivateKey, peer: bytes) -> bytes:
    """The X25519 result; a key that yields the all-zero secret (a small-order point) is a 400."""
    try:
        secret = private.exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError:
        raise MalformedInput("public_key is not a usable X25519 public key") from None
    if not any(secret):
        raise MalformedInput("public_key is not a usable X25519 public key")
    return secret


def derive_keys(secret: bytes, transcript: bytes) -> tuple[bytes, bytes]:
    """The client-to-server and the server-to-client keys: HKDF over the X25519 secret, salted
    with the transcript hash and with the direction and the transcript in ``info``."""
    c2s = hkdf(secret, LABEL + b" client->server " + transcript, 32, salt=transcript)
    s2c = hkdf(secret, LABEL + b" server->client " + transcript, 32, salt=transcript)
    return c2s, s2c


_DIRECTIONS = {d: d.to_bytes(4, "big") for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT)}


def _associated(direction: int, session: bytes, counted: bytes, path: str) -> bytes:
    return LABEL + bytes([direction]) + session + counted + path.encode("utf-8")


def aead(key: bytes) -> ChaCha20Poly1305:
    """The ChaCha20-Poly1305 object of a 32-byte key, to keep for a session's messages (making
    one per message would cost more than sealing a small one)."""
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise CryptoParameterError(f"a channel key is {KEY_SIZE} bytes")
    return ChaCha20Poly1305(key)


def seal_frame(
    key: bytes | ChaCha20Poly1305,
    direction: int,
    session: bytes,
    counter: int,
    path: str,
    payload: bytes,
) -> bytes:
    """``session || counter || ciphertext || tag``: ``payload`` sealed under ``key`` (bytes,
    or its ``aead``) with the nonce ``direction (4 bytes) || counter (8)`` and the associated
    data binding the label, direction, session, counter and the RPC path.

    ChaCha20-Poly1305 as ``charter.crypto.encrypt`` does it, called directly: the nonce is the
    counter, which the channel never repeats under one key."""
    if not 1 <= counter <= _MAX_COUNTER:
        raise CharterError(f"a channel counter is 1 to 2**64 - 1, not {counter}")
    cipher = aead(key) if isinstance(key, bytes) else key
    counted = counter.to_bytes(COUNTER_SIZE, "big")
    nonce = _DIRECTIONS[direction] + counted
    sealed = cipher.encrypt(nonce, payload, _associated(direction, session, counted, path))
    return session + counted + sealed


class Frame(msgspec.Struct, frozen=True):
    """A sealed body split (not yet opened): whose session, which counter, the sealed rest
    (ciphertext and tag)."""

    session: bytes
    counter: int
    sealed: bytes


def parse_frame(body: bytes) -> Frame:
    """Split a sealed body; too short, or a counter of 0, is a 400 ``DECRYPTION_FAILED``."""
    if len(body) < _HEADER + TAG_SIZE:
        raise DecryptionError(f"a sealed body is at least {_HEADER + TAG_SIZE} bytes")
    counter = int.from_bytes(body[SESSION_SIZE:_HEADER], "big")
    if counter == 0:
        raise DecryptionError("a channel counter starts at 1")
    return Frame(body[:SESSION_SIZE], counter, body[_HEADER:])


def open_frame(key: bytes | ChaCha20Poly1305, direction: int, frame: Frame, path: str) -> bytes:
    """The payload of ``frame``; ``DecryptionError`` unless it is genuine for this key (bytes,
    or its ``aead``), direction, session, counter and path."""
    cipher = aead(key) if isinstance(key, bytes) else key
    counted = frame.counter.to_bytes(COUNTER_SIZE, "big")
    try:
        return cipher.decrypt(
            _DIRECTIONS[direction] + counted,
            frame.sealed,
            _associated(direction, frame.session, counted, path),
        )
    except InvalidTag:
        raise DecryptionError() from None


class _Session:
    """One side of an open session, as the client holds it."""

    def __init__(self, reply: HandshakeReply, c2s: bytes, s2c: bytes) -> None:
        self.id = b64decode(reply.session, "session", SESSION_SIZE)
        self.c2s = aead(c2s)
        self.s2c = aead(s2c)
        self.counter = 0


def _hello() -> tuple[X25519PrivateKey, bytes, bytes, dict[str, Any]]:
    private = X25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    nonce = os.urandom(KEY_NONCE_SIZE)
    body = {"version": VERSION, "public_key": b64encode(public), "nonce": b64encode(nonce)}
    return private, public, nonce, body


def _finish(
    private: X25519PrivateKey, public: bytes, nonce: bytes, response: httpx.Response
) -> _Session:
    if response.status_code != 200:
        raise _error_of(response)
    reply = msgspec.json.decode(response.content, type=HandshakeReply)
    if reply.version != VERSION:
        raise CharterError(f"the server speaks channel version {reply.version}, not {VERSION}")
    server_key = b64decode(reply.public_key, "public_key", PUBLIC_KEY_SIZE)
    server_nonce = b64decode(reply.nonce, "nonce", KEY_NONCE_SIZE)
    session = b64decode(reply.session, "session", SESSION_SIZE)
    transcript = transcript_hash(public, nonce, server_key, server_nonce, session)
    c2s, s2c = derive_keys(shared_secret(private, server_key), transcript)
    return _Session(reply, c2s, s2c)


def _error_of(response: httpx.Response) -> HttpError:
    """The error envelope of a plain (unsealed) answer as an ``HttpError``."""
    try:
        error = msgspec.json.decode(response.content)["error"]
        return HttpError(error["status"], error["message"], error["code"], error.get("details"))
    except (msgspec.DecodeError, KeyError, TypeError):
        return HttpError(response.status_code, response.text[:200] or "channel call failed")


def _request(session: _Session, name: str, args: Any) -> tuple[str, bytes, int]:
    session.counter += 1
    path = f"/rpc/{name}"
    payload = b"" if args is None else msgspec.json.encode(args)
    body = seal_frame(session.c2s, CLIENT_TO_SERVER, session.id, session.counter, path, payload)
    return path, body, session.counter


def _result(session: _Session, path: str, counter: int, response: httpx.Response) -> Any:
    """The call's result, or its error raised as an ``HttpError``; a plain answer means the
    server never opened the request (a ``ChannelError`` for an unknown session)."""
    if response.headers.get("content-type", "").split(";")[0].strip() != MEDIA_TYPE:
        error = _error_of(response)
        if error.code == "CHANNEL_EXPIRED":
            raise ChannelError(message=error.message)
        raise error
    frame = parse_frame(response.content)
    if frame.session != session.id or frame.counter != counter:
        raise DecryptionError("the answer is not this call's")
    plain = open_frame(session.s2c, SERVER_TO_CLIENT, frame, path)
    status, body = int.from_bytes(plain[:2], "big"), plain[2:]
    value = msgspec.json.decode(body) if body else None
    if status >= 400:
        error = value["error"] if isinstance(value, dict) and "error" in value else {}
        raise HttpError(status, error.get("message"), error.get("code"), error.get("details"))
    return value


class Channel:
    """An encrypted channel to one app over an ``httpx.AsyncClient``.

    ``channel = await Channel.open("https://api.example.com")`` (or an ``AsyncClient``, whose
    headers, such as ``Authorization``, go with every call), then ``await channel.call(
    "place_order", ["p1", 2])``: the RPC's result, or its error raised as an ``HttpError``
    with the envelope's status and code. Calls on one channel go one at a time, in counter
    order (the server refuses an older counter); open several channels for parallel calls. A
    session that expired is reopened once, by itself: the refused call did not run.
    """

    def __init__(self, client: httpx.AsyncClient, owned: bool) -> None:
        self.client = client
        self._owned = owned
        self._session: _Session | None = None
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, target: str | httpx.AsyncClient, **client_options: Any) -> Channel:
        """Handshake with the app at ``target`` (a base URL, or a client to call through)."""
        if isinstance(target, str):
            channel = cls(httpx.AsyncClient(base_url=target, **client_options), owned=True)
        else:
            channel = cls(target, owned=False)
        await channel.handshake()
        return channel

    @property
    def session(self) -> bytes | None:
        """The current session id (None before the handshake)."""
        return None if self._session is None else self._session.id

    async def handshake(self) -> None:
        """Open a new session (new keys, counters from 1)."""
        private, public, nonce, body = _hello()
        response = await self.client.post(HANDSHAKE_PATH, json=body)
        self._session = _finish(private, public, nonce, response)

    async def call(self, name: str, args: Any = None, **request_options: Any) -> Any:
        """Call the RPC ``name`` with ``args`` (a list of positional or a dict of named
        arguments, None for none) through the channel; its result."""
        async with self._lock:
            for attempt in (1, 2):
                if self._session is None:
                    await self.handshake()
                session = self._session
                assert session is not None
                path, body, counter = _request(session, name, args)
                headers = {"content-type": MEDIA_TYPE, "accept": MEDIA_TYPE}
                response = await self.client.post(
                    path, content=body, headers=headers, **request_options
                )
                try:
                    return _result(session, path, counter, response)
                except ChannelError:
                    self._session = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the client if the channel made it."""
        if self._owned:
            await self.client.aclose()


class SyncChannel:
    """``Channel`` for a blocking ``httpx.Client`` (a ``TestClient`` included)."""

    def __init__(self, client: httpx.Client, owned: bool) -> None:
        self.client = client
        self._owned = owned
        self._session: _Session | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, target: str | httpx.Client, **client_options: Any) -> SyncChannel:
        """Handshake with the app at ``target`` (a base URL, or a client to call through)."""
        if isinstance(target, str):
            channel = cls(httpx.Client(base_url=target, **client_options), owned=True)
        else:
            channel = cls(target, owned=False)
        channel.handshake()
        return channel

    @property
    def session(self) -> bytes | None:
        """The current session id (None before the handshake)."""
        return None if self._session is None else self._session.id

    def handshake(self) -> None:
        """Open a new session (new keys, counters from 1)."""
        private, public, nonce, body = _hello()
        response = self.client.post(HANDSHAKE_PATH, json=body)
        self._session = _finish(private, public, nonce, response)

    def call(self, name: str, args: Any = None, **request_options: Any) -> Any:
        """As ``Channel.call``."""
        with self._lock:
            for attempt in (1, 2):
                if self._session is None:
                    self.handshake()
                session = self._session
                assert session is not None
                path, body, counter = _request(session, name, args)
                headers = {"content-type": MEDIA_TYPE, "accept": MEDIA_TYPE}
                response = self.client.post(path, content=body, headers=headers, **request_options)
                try:
                    return _result(session, path, counter, response)
                except ChannelError:
                    self._session = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the client if the channel made it."""
        if self._owned:
            self.client.close()

"""The fixed part of every generated Python client: the query builder, the error, and the
sync and async transports with sign-in. ``charter gen client --lang python`` copies this file
as ``_runtime.py`` into the package it writes (so it imports nothing from charter: the client
needs only httpx and msgspec). ``templates/`` is not a package: charter never imports it; mypy
and ruff still check it.

``Transport.request`` is the one place a request is sent (``open_events`` opens a
subscription's stream); with ``encrypted=True`` it seals RPC calls there (the encrypted RPC
channel of docs/crypto.md, which needs the ``cryptography`` package, imported only then).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import decimal
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, Generic, Literal, Self, TypeVar, cast
from urllib.parse import quote

import httpx
import msgspec

__all__ = [
    "AsyncTransport",
    "CharterClientError",
    "Comparator",
    "Condition",
    "Query",
    "Tokens",
    "Transport",
]

Comparator = Literal["eq", "ne", "lt", "le", "gt", "ge", "sw", "ew", "ct", "bt"]
"""Equals, not equal, less than (or equal), greater than (or equal), starts with, ends with,
contains (a substring, or an element of a list), between (inclusive; the value is a pair)."""

_OPERATORS: dict[str, str] = {
    "eq": "=", "ne": "=ne=", "lt": "=lt=", "le": "=le=", "gt": "=gt=", "ge": "=ge=",
    "sw": "=sw=", "ew": "=ew=", "ct": "=ct=", "bt": "=bt=",
}  # fmt: skip


class CharterClientError(Exception):
    """An error answer, with the envelope every Charter error has (SPEC section 2).

    Attributes:
        status: the HTTP status.
        code: ``NOT_FOUND``, ``INVALID_PROPERTIES``... (``HTTP_ERROR`` when the body was not
            an envelope, from a proxy say; ``UNEXPECTED_RESPONSE`` when a success's body did
            not have the declared type).
        message: the server's message.
        details: the envelope's ``details`` (for a 422, one dict per problem), or None.
    """

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @classmethod
    def from_response(cls, response: httpx.Response) -> CharterClientError:
        try:
            error = msgspec.json.decode(response.content)["error"]
            return cls(int(error["status"]), str(error["code"]), str(error["message"]),
                       error.get("details"))  # fmt: skip
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            text = response.text[:200]
            return cls(response.status_code, "HTTP_ERROR", text or response.reason_phrase)


def _value(value: object) -> str:
    """A value in the URL query language, typed by prefix so the server reads it as sent."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean:true" if value else "boolean:false"
    if isinstance(value, int | float):
        return f"number:{value!r}"
    if isinstance(value, str):
        return "string:" + quote(value, safe="")
    if isinstance(value, datetime.date | datetime.time):
        return quote(value.isoformat(), safe="")  # typed by the attribute's declared type
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return quote(str(value), safe="")
    raise TypeError(f"a query value is a str, number, bool, date or None, not {value!r}")


class Condition:
    """One condition, for ``Query.any_of`` (build it with a table query's ``cond``)."""

    def __init__(self, attribute: str, op: Comparator, value: object) -> None:
        if op not in _OPERATORS:
            raise ValueError(f"unknown comparator {op!r}")
        self.attribute = attribute
        self.op = op
        self.value = value

    def render(self) -> str:
        name = quote(self.attribute, safe=".$")
        if self.op == "bt":
            low, high = cast("tuple[object, object]", self.value)
            return f"{name}=bt={_value(low)},{_value(high)}"
        return f"{name}{_OPERATORS[self.op]}{_value(self.value)}"


A = TypeVar("A", bound=str)  # the attribute names a query may name
S = TypeVar("S", bound=str)  # the sort keys: names, +names and -names


class Query(Generic[A, S]):
    """A query in the URL language of SPEC section 4: conditions (and-ed), any-of groups,
    ``sort``, ``select``, ``limit`` and ``offset``. Each method returns the query itself."""

    def __init__(self) -> None:
        self._terms: list[str] = []
        self._sort: list[str] = []
        self._select: list[str] | None = None
        self._limit: tuple[int, int | None] | None = None
        self._offset: int | None = None

    def _where(self, attribute: str, op: Comparator, value: object) -> Self:
        self._terms.append(Condition(attribute, op, value).render())
        return self

    def any_of(self, *conditions: Condition) -> Self:
        """Records matching at least one of ``conditions`` (an ``|`` group)."""
        if conditions:
            self._terms.append("[" + "|".join(c.render() for c in conditions) + "]")
        return self

    def sort(self, *keys: S) -> Self:
        """Order by ``keys``: ``"price"`` or ``"+price"`` ascending, ``"-price"`` descending."""
        self._sort.extend(k if k[:1] in "+-" else f"+{k}" for k in keys)
        return self

    def select(self, *attributes: A) -> Self:
        """Only these attributes (a list's ``values`` then answers objects, not records)."""
        self._select = list(attributes)
        return self

    def limit(self, count: int, end: int | None = None) -> Self:
        """``limit(n)``: the first n; ``limit(start, end)``: from start (inclusive) to end."""
        self._limit = (count, end)
        return self

    def offset(self, count: int) -> Self:
        """Skip ``count`` records."""
        self._offset = count
        return self

    @property
    def selects(self) -> bool:
        return self._select is not None

    def to_query_string(self) -> str:
        """The query string (without ``?``)."""
        parts = list(self._terms)
        if self._sort:
            parts.append("sort(" + ",".join(quote(k, safe="+-.") for k in self._sort) + ")")
        if self._select is not None:
            parts.append("select(" + ",".join(quote(a, safe="$") for a in self._select) + ")")
        if self._limit is not None:
            count, end = self._limit
            parts.append(f"limit({count})" if end is None else f"limit({count},{end})")
        if self._offset is not None:
            parts.append(f"offset({self._offset})")
        return "&".join(parts)


class Tokens(msgspec.Struct):
    """A signed-in session's tokens (``POST /auth/login``, docs/auth.md)."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = 900


def _body(value: object) -> bytes:
    return msgspec.json.encode(value)


def check(response: httpx.Response) -> httpx.Response:
    """``response``, or ``CharterClientError`` when it is an error."""
    if response.status_code >= 400:
        raise CharterClientError.from_response(response)
    return response


def path_segment(value: object) -> str:
    """A value as one URL path segment."""
    return quote(str(value), safe="")


def decode(response: httpx.Response, type_: Any) -> Any:
    """A response's JSON body as ``type_`` (no body: None); ``CharterClientError`` with the
    code ``UNEXPECTED_RESPONSE`` when the body does not have that type."""
    if not response.content:
        return None
    try:
        return msgspec.json.decode(response.content, type=type_)
    except msgspec.DecodeError as exc:  # (msgspec.ValidationError is one)
        message = (
            f"the answer does not fit the client's types ({exc}): the client may be older than "
            "the server (regenerate it), or the role may not read every attribute"
        )
        raise CharterClientError(response.status_code, "UNEXPECTED_RESPONSE", message) from exc


class _Session:
    """Tokens and when the access token expires; refreshed a little before it does."""

    def __init__(self) -> None:
        self.tokens: Tokens | None = None
        self.expires_at = 0.0

    def set(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self.expires_at = time.monotonic() + tokens.expires_in - 30

    def stale(self) -> bool:
        return self.tokens is not None and time.monotonic() >= self.expires_at

    def headers(self) -> dict[str, str]:
        if self.tokens is None:
            return {}
        return {"authorization": f"Bearer {self.tokens.access_token}"}


_JSON = {"content-type": "application/json", "accept": "application/json"}
_SEALED = "application/charter-sealed"
_LABEL = b"charter-channel-v1"
_VERSION = 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Channel:
    """One session of the encrypted RPC channel (docs/crypto.md, version 1): keys from an
    X25519 handshake, calls sealed with ChaCha20-Poly1305 under a counter that only grows.
    One call at a time (the caller holds the transport's channel lock)."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        self._private = X25519PrivateKey.generate()
        self._public = self._private.public_key().public_bytes_raw()
        self._nonce = os.urandom(32)
        self.session = b""
        self.counter = 0
        self._to_server: Any = None
        self._to_client: Any = None

    def hello(self) -> dict[str, object]:
        """The handshake's body (``POST /rpc/_handshake``)."""
        return {"version": _VERSION, "public_key": _b64(self._public), "nonce": _b64(self._nonce)}

    def accept(self, answer: httpx.Response) -> None:
        """The keys, from the server's answer to the handshake."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        body = msgspec.json.decode(check(answer).content)
        session, peer = _unb64(body["session"]), _unb64(body["public_key"])
        server_nonce = _unb64(body["nonce"])
        if body.get("version") != _VERSION or len(session) != 16 or len(peer) != 32:
            raise CharterClientError(answer.status_code, "UNEXPECTED_RESPONSE",
                                     "the channel's handshake answer is not version 1")  # fmt: skip
        secret = self._private.exchange(X25519PublicKey.from_public_bytes(peer))
        transcript = hashlib.sha256(
            _LABEL + bytes([_VERSION]) + self._public + self._nonce + peer + server_nonce + session
        ).digest()

        def key(direction: bytes) -> bytes:
            info = _LABEL + direction + transcript
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=transcript, info=info).derive(
                secret
            )

        self.session = session
        self._to_server = ChaCha20Poly1305(key(b" client->server "))
        self._to_client = ChaCha20Poly1305(key(b" server->client "))

    @staticmethod
    def _parts(direction: int, session: bytes, counter: int, path: str) -> tuple[bytes, bytes]:
        counted = counter.to_bytes(8, "big")
        nonce = direction.to_bytes(4, "big") + counted
        return nonce, _LABEL + bytes([direction]) + session + counted + path.encode()

    def seal(self, path: str, body: bytes) -> tuple[int, bytes]:
        """The next counter and the sealed call."""
        self.counter += 1
        nonce, associated = self._parts(1, self.session, self.counter, path)
        sealed = self._to_server.encrypt(nonce, body, associated)
        return self.counter, self.session + self.counter.to_bytes(8, "big") + sealed

    def open(self, path: str, counter: int, frame: bytes) -> tuple[int, bytes]:
        """The sealed answer's status and body; ``CharterClientError`` unless it is genuine
        and answers this call (its session and counter)."""
        from cryptography.exceptions import InvalidTag

        if frame[:16] != self.session or frame[16:24] != counter.to_bytes(8, "big"):
            raise CharterClientError(502, "DECRYPTION_FAILED", "the answer is not this call's")
        nonce, associated = self._parts(2, self.session, counter, path)
        try:
            plain = self._to_client.decrypt(nonce, frame[24:], associated)
        except InvalidTag:
            raise CharterClientError(502, "DECRYPTION_FAILED", "the answer does not open") from None
        return int.from_bytes(plain[:2], "big"), plain[2:]


def _sealable(method: str, path: str, encrypted: bool) -> bool:
    return encrypted and method == "POST" and path.startswith("/rpc/") and path != "/rpc/_handshake"


def _expired(response: httpx.Response) -> bool:
    """A plain refusal saying the session is gone (nothing ran: send it again)."""
    if response.status_code != 400 or response.headers.get("content-type", "") == _SEALED:
        return False
    return b"CHANNEL_EXPIRED" in response.content


def _unsealed(
    response: httpx.Response, channel: _Channel, path: str, counter: int
) -> httpx.Response:
    """The call's own answer, out of the sealed one (a plain refusal as it came)."""
    if response.headers.get("content-type", "").split(";")[0] != _SEALED:
        return response
    status, body = channel.open(path, counter, response.content)
    return httpx.Response(status, content=body, headers={"content-type": "application/json"},
                          request=response.request)  # fmt: skip


class Transport:
    """Sends requests with ``httpx.Client``: signs in, refreshes the access token before it
    expires (and once more on a 401), and raises ``CharterClientError`` on errors.

    Args:
        base_url: the server, ``http://127.0.0.1:8000``.
        http: an ``httpx.Client`` to use (its base URL is ignored); by default one is made.
        headers: sent with every request.
        timeout: seconds, for the client made here.
        encrypted: RPC calls go through the encrypted channel (docs/crypto.md): a handshake
            at the first call, then each call's arguments and result sealed, one call at a
            time; a session the server has expired is opened again by itself. Needs the
            ``cryptography`` package.
    """

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        encrypted: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._own = http is None
        self.http = http if http is not None else httpx.Client(timeout=timeout)
        self.headers = dict(headers or {})
        self.session = _Session()
        self.encrypted = encrypted
        self._channel: _Channel | None = None
        self._channel_lock = threading.Lock()
        self._renewing = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        json: object = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        """Send one request; an error answer raises ``CharterClientError``."""
        if retry and self.session.stale():
            self._renew(self.session.tokens)
        url = self.base_url + path + (f"?{query}" if query else "")
        used = self.session.tokens
        signed = self.session.headers() if path != "/auth/refresh" else {}
        sent = {**_JSON, **self.headers, **signed, **(headers or {})}
        body = content if content is not None else (None if json is None else _body(json))
        if content is not None:
            sent["content-type"] = "application/octet-stream"
        if _sealable(method, path, self.encrypted):
            response = self._sealed_call(url, path, body or b"", sent)
        else:
            response = self.http.request(method, url, content=body, headers=sent)
        if response.status_code == 401 and retry and used is not None:
            self._renew(used)
            return self.request(method, path, query=query, json=json, content=content,
                                headers=headers, retry=False)  # fmt: skip
        return check(response)

    def _sealed_call(
        self, url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> httpx.Response:
        """One RPC call through the encrypted channel; its own answer, opened."""
        with self._channel_lock:
            for attempt in (1, 2):
                channel = self._channel
                if channel is None:
                    channel = _Channel()
                    hello = _body(channel.hello())
                    handshake = self.base_url + "/rpc/_handshake"
                    channel.accept(self.http.post(handshake, content=hello, headers=_JSON))
                    self._channel = channel
                counter, frame = channel.seal(path, body)
                sent = {**headers, "content-type": _SEALED}
                response = self.http.post(url, content=frame, headers=sent)
                if attempt == 1 and _expired(response):
                    self._channel = None  # nothing ran: a new session, the call once more
                    continue
                return _unsealed(response, channel, path, counter)
        raise AssertionError("unreachable")

    def open_events(
        self, path: str, query: str, position: int | None, *, retry: bool = True
    ) -> httpx.Response:
        """A subscription's event stream, open (the caller closes it): signed as a request
        is, with ``Last-Event-ID`` when resuming; an error answer raises."""
        if retry and self.session.stale():
            self._renew(self.session.tokens)
        used = self.session.tokens
        url = self.base_url + path + (f"?{query}" if query else "")
        sent = {**self.headers, **self.session.headers(), **_events_headers(position)}
        response = self.http.send(self.http.build_request("GET", url, headers=sent), stream=True)
        if response.status_code == 401 and retry and used is not None:
            response.close()
            self._renew(used)
            return self.open_events(path, query, position, retry=False)
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            raise CharterClientError.from_response(response)
        return response

    def renew(self) -> None:
        """Refresh the tokens unless another caller just did (a subscription the server closed
        when its access token expired resumes with new ones)."""
        self._renew(self.session.tokens)

    def sign_in(self, username: str, password: str) -> Tokens:
        """Sign in (``POST /auth/login``); later requests carry the access token."""
        body = {"username": username, "password": password}
        response = self.request("POST", "/auth/login", json=body, retry=False)
        tokens = msgspec.json.decode(response.content, type=Tokens)
        self.session.set(tokens)
        return tokens

    def _renew(self, seen: Tokens | None) -> None:
        """Refresh once for every request that found the tokens ``seen`` stale or refused (a
        refresh token used twice ends the session, docs/auth.md)."""
        with self._renewing:
            if seen is not None and self.session.tokens is seen:
                self.refresh()

    def refresh(self) -> Tokens:
        """New tokens for the old refresh token (``POST /auth/refresh``)."""
        current = self.session.tokens
        if current is None:
            raise CharterClientError(401, "UNAUTHORIZED", "not signed in")
        body = {"refresh_token": current.refresh_token}
        try:
            response = self.request("POST", "/auth/refresh", json=body, retry=False)
        except CharterClientError:
            self.session.tokens = None
            raise
        tokens = msgspec.json.decode(response.content, type=Tokens)
        self.session.set(tokens)
        return tokens

    def sign_out(self) -> None:
        """End the session (``POST /auth/logout``)."""
        if self.session.tokens is not None:
            try:
                self.request("POST", "/auth/logout", retry=False)
            finally:
                self.session.tokens = None

    def close(self) -> None:
        if self._own:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTransport:
    """``Transport`` on ``httpx.AsyncClient``: the same methods, awaited."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        encrypted: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._own = http is None
        self.http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self.headers = dict(headers or {})
        self.session = _Session()
        self.encrypted = encrypted
        self._channel: _Channel | None = None
        self._channel_lock = asyncio.Lock()
        self._renewing = asyncio.Lock()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        json: object = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        """Send one request; an error answer raises ``CharterClientError``."""
        if retry and self.session.stale():
            await self._renew(self.session.tokens)
        url = self.base_url + path + (f"?{query}" if query else "")
        used = self.session.tokens
        signed = self.session.headers() if path != "/auth/refresh" else {}
        sent = {**_JSON, **self.headers, **signed, **(headers or {})}
        body = content if content is not None else (None if json is None else _body(json))
        if content is not None:
            sent["content-type"] = "application/octet-stream"
        if _sealable(method, path, self.encrypted):
            response = await self._sealed_call(url, path, body or b"", sent)
        else:
            response = await self.http.request(method, url, content=body, headers=sent)
        if response.status_code == 401 and retry and used is not None:
            await self._renew(used)
            return await self.request(method, path, query=query, json=json, content=content,
                                      headers=headers, retry=False)  # fmt: skip
        return check(response)

    async def _sealed_call(
        self, url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> httpx.Response:
        """One RPC call through the encrypted channel; its own answer, opened."""
        async with self._channel_lock:
            for attempt in (1, 2):
                channel = self._channel
                if channel is None:
                    channel = _Channel()
                    hello = _body(channel.hello())
                    handshake = self.base_url + "/rpc/_handshake"
                    channel.accept(await self.http.post(handshake, content=hello, headers=_JSON))
                    self._channel = channel
                counter, frame = channel.seal(path, body)
                sent = {**headers, "content-type": _SEALED}
                response = await self.http.post(url, content=frame, headers=sent)
                if attempt == 1 and _expired(response):
                    self._channel = None  # nothing ran: a new session, the call once more
                    continue
                return _unsealed(response, channel, path, counter)
        raise AssertionError("unreachable")

    async def open_events(
        self, path: str, query: str, position: int | None, *, retry: bool = True
    ) -> httpx.Response:
        """A subscription's event stream, open (the caller closes it): signed as a request
        is, with ``Last-Event-ID`` when resuming; an error answer raises."""
        if retry and self.session.stale():
            await self._renew(self.session.tokens)
        used = self.session.tokens
        url = self.base_url + path + (f"?{query}" if query else "")
        sent = {**self.headers, **self.session.headers(), **_events_headers(position)}
        request = self.http.build_request("GET", url, headers=sent)
        response = await self.http.send(request, stream=True)
        if response.status_code == 401 and retry and used is not None:
            await response.aclose()
            await self._renew(used)
            return await self.open_events(path, query, position, retry=False)
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise CharterClientError.from_response(response)
        return response

    async def renew(self) -> None:
        """Refresh the tokens unless another caller just did (a subscription the server closed
        when its access token expired resumes with new ones)."""
        await self._renew(self.session.tokens)

    async def sign_in(self, username: str, password: str) -> Tokens:
        """Sign in (``POST /auth/login``); later requests carry the access token."""
        body = {"username": username, "password": password}
        response = await self.request("POST", "/auth/login", json=body, retry=False)
        tokens = msgspec.json.decode(response.content, type=Tokens)
        self.session.set(tokens)
        return tokens

    async def _renew(self, seen: Tokens | None) -> None:
        """Refresh once for every request that found the tokens ``seen`` stale or refused (a
        refresh token used twice ends the session, docs/auth.md)."""
        async with self._renewing:
            if seen is not None and self.session.tokens is seen:
                await self.refresh()

    async def refresh(self) -> Tokens:
        """New tokens for the old refresh token (``POST /auth/refresh``)."""
        current = self.session.tokens
        if current is None:
            raise CharterClientError(401, "UNAUTHORIZED", "not signed in")
        body = {"refresh_token": current.refresh_token}
        try:
            response = await self.request("POST", "/auth/refresh", json=body, retry=False)
        except CharterClientError:
            self.session.tokens = None
            raise
        tokens = msgspec.json.decode(response.content, type=Tokens)
        self.session.set(tokens)
        return tokens

    async def sign_out(self) -> None:
        """End the session (``POST /auth/logout``)."""
        if self.session.tokens is not None:
            try:
                await self.request("POST", "/auth/logout", retry=False)
            finally:
                self.session.tokens = None

    async def aclose(self) -> None:
        if self._own:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _events_headers(position: int | None) -> dict[str, str]:
    sent = {"accept": "text/event-stream", "cache-control": "no-cache"}
    if position is not None:
        sent["last-event-id"] = str(position)
    return sent

"""The incoming HTTP request: lazy headers, a size-limited body, or the body as a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, quote

from ..errors import ClientDisconnected, MalformedInput, PayloadTooLarge
from .types import Receive, Scope

__all__ = ["Request"]


class Request:
    """One HTTP request. Header names are lower case."""

    __slots__ = (
        "_body",
        "_headers",
        "_pending",
        "_query",
        "max_body_size",
        "method",
        "path",
        "receive",
        "scope",
    )

    def __init__(self, scope: Scope, receive: Receive, max_body_size: int) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.max_body_size = max_body_size
        self._headers: dict[str, str] | None = None
        self._body: bytes | None = None
        self._pending: bytes | None = None
        self._query: dict[str, list[str]] | None = None

    @property
    def raw_path(self) -> str:
        """The path as sent, still percent-encoded: routing splits it before decoding, so a
        key may hold an encoded ``/``."""
        raw = self.scope.get("raw_path")
        return raw.decode("latin-1") if raw else quote(self.path)

    @property
    def query_string(self) -> str:
        raw: bytes = self.scope.get("query_string", b"")
        return raw.decode("latin-1")

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            headers: dict[str, str] = {}
            for name, value in self.scope["headers"]:
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            self._headers = headers
        return self._headers

    def header(self, name: str, default: str | None = None) -> str | None:
        """One header by lower-case name, without building the whole dict."""
        if self._headers is not None:
            return self._headers.get(name, default)
        raw = name.encode("latin-1")
        for key, value in self.scope["headers"]:
            if key == raw:
                return value.decode("latin-1")  # type: ignore[no-any-return]
        return default

    def substitute(self, body: bytes, headers: dict[str, str]) -> None:
        """Read ``body`` instead of the one sent, and ``headers`` over the ones sent (lower-case
        names): the encrypted channel hands an opened request on as the plain call it holds."""
        self._body = body
        self._pending = None
        self._headers = {**self.headers, **headers}

    @property
    def query(self) -> dict[str, list[str]]:
        """Query parameters; repeated keys collect in a list."""
        if self._query is None:
            query: dict[str, list[str]] = {}
            try:
                pairs = parse_qsl(self.query_string, keep_blank_values=True, errors="strict")
            except UnicodeDecodeError:
                raise MalformedInput("the query holds percent-escapes that are not UTF-8") from None
            for key, value in pairs:
                query.setdefault(key, []).append(value)
            self._query = query
        return self._query

    @property
    def client(self) -> Any:
        return self.scope.get("client")

    async def stream(self, limit: int | bool | None = True) -> AsyncIterator[bytes]:
        """The body as it arrives, without buffering it.

        Args:
            limit: largest accepted size in bytes; True for the app's ``max_body_size``,
                None for no limit (a streaming upload).
        """
        if self._body is not None:
            yield self._body
            return
        maximum = self.max_body_size if limit is True else None if limit is None else int(limit)
        declared = self.header("content-length")
        if (
            maximum is not None
            and declared is not None
            and declared.isdigit()
            and int(declared) > maximum
        ):
            raise PayloadTooLarge(f"body is larger than {maximum} bytes")
        size = 0
        more = True
        if self._pending is not None:  # a first message body() already received
            chunk, self._pending = self._pending, None
            size = len(chunk)
            yield chunk
        while more:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if maximum is not None and size > maximum:
                raise PayloadTooLarge(f"body is larger than {maximum} bytes")
            if chunk:
                yield chunk

    async def body(self) -> bytes:
        """The whole body (read once, then kept)."""
        if self._body is not None:
            return self._body
        declared = self.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
            raise PayloadTooLarge(f"body is larger than {self.max_body_size} bytes")
        # The common case, a body in one message, without the stream's machinery.
        message = await self.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        first: bytes = message.get("body", b"")
        if len(first) > self.max_body_size:
            raise PayloadTooLarge(f"body is larger than {self.max_body_size} bytes")
        if not message.get("more_body", False):
            self._body = first
            return first
        self._pending = first
        chunks = [chunk async for chunk in self.stream()]
        self._body = b"".join(chunks)
        return self._body

"""The outgoing HTTP response: a body in bytes or a stream of chunks."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

from ..errors import CharterError
from .types import Connection, Send

__all__ = ["ConnectionDropped", "Response"]


class Response:
    """Status, headers and a body (bytes) or ``stream`` (an async iterable of bytes).

    ``cookies`` are ``Set-Cookie`` values, each sent as a header of its own (a dict of headers
    holds one value per name, and cookies cannot be joined with commas).
    """

    __slots__ = ("body", "cookies", "headers", "status", "stream")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        stream: AsyncIterable[bytes] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: dict[str, str] = headers if headers is not None else {}
        if media_type is not None:
            self.headers["content-type"] = media_type
        self.stream = stream
        self.cookies: list[str] | None = None

    async def send(
        self, send: Send, *, head: bool = False, connection: Connection | None = None
    ) -> None:
        """Send this response.

        Args:
            connection: the server's connection, when it offers one: a stream stops (and is
                closed, releasing what it holds) as soon as the connection is gone.
        """
        headers: list[tuple[bytes, bytes]] = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()
        ]
        if self.cookies:
            headers.extend((b"set-cookie", c.encode("latin-1")) for c in self.cookies)
        if self.stream is None:
            if self.status not in (204, 304) and "content-length" not in self.headers:
                headers.append((b"content-length", str(len(self.body)).encode()))
            await send({"type": "http.response.start", "status": self.status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if head else self.body})
            return
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        if not head:
            iterator: Any = self.stream.__aiter__()
            try:
                async for chunk in iterator:
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        if connection is not None and connection.closed:
                            raise ConnectionDropped("the connection closed during the response")
            finally:
                closer = getattr(iterator, "aclose", None)
                if closer is not None:
                    await closer()
        await send({"type": "http.response.body", "body": b""})


class ConnectionDropped(CharterError, ConnectionError):
    """The connection closed (client gone, or dropped by a timeout) while a stream was sent."""

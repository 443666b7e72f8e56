"""ASGI types, in one place."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONNECTION = "charter.connection"
"""The ``scope["extensions"]`` key of the request's ``Connection``, when the server offers one."""


class Connection(Protocol):
    """The connection under a request: ASGI cannot say "the peer is gone" or "drop it"."""

    @property
    def closed(self) -> bool:
        """Whether the connection is closed or closing (sending more is wasted)."""

    def abort(self) -> None:
        """Drop the connection at once, so the client cannot take a cut body for a whole one."""

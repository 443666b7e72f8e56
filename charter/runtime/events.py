"""The in-process event bus (``app.events``): table changes and published messages.

Realtime transports (SSE, WebSocket, MQTT) and cross-worker fan-out subscribe here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["EventBus"]

log = logging.getLogger("charter.events")
Listener = Callable[[dict[str, Any]], None]


class EventBus:
    """Topics are ``Table/id``; a listener on ``Table/`` hears every id of the table."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._position = 0

    def subscribe(self, topic: str, fn: Listener) -> Callable[[], None]:
        """Call ``fn(event)`` for every event on ``topic``; returns the unsubscribe function."""
        self._listeners.setdefault(topic, []).append(fn)

        def unsubscribe() -> None:
            listeners = self._listeners.get(topic, [])
            if fn in listeners:
                listeners.remove(fn)

        return unsubscribe

    def emit(self, topic: str, event: dict[str, Any]) -> None:
        """Deliver ``event`` to the listeners of ``topic`` and of its parent collection."""
        self._position += 1
        event.setdefault("position", self._position)
        parent = topic.rsplit("/", 1)[0] + "/" if "/" in topic else None
        for name in (topic, parent):
            if name is None:
                continue
            for fn in list(self._listeners.get(name, ())):
                try:
                    fn(event)
                except Exception:
                    log.exception("event listener for %s failed", name)

    @staticmethod
    def format_sse(event: dict[str, Any]) -> bytes:
        """One Server-Sent Events message for ``event``."""
        body = {k: v for k, v in event.items() if k != "position"}
        data = msgspec.json.encode(body)
        head = f"id: {event['position']}\n" if "position" in event else ""
        return head.encode() + b"data: " + data + b"\n\n"

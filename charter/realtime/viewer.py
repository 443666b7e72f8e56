"""What one subscriber may see of each event: the same verdicts as a GET, applied per event.

Why here and not in the hub: the hub only routes events by table and key; whether a subscriber
sees a record depends on who it is. Its role's attribute view (``runtime/access.py``), its row
rule and the table's ``allow_read`` hook decide, exactly as a read would, and so do the
conditions of a query subscription. A record that stops passing them is sent once as a
``delete`` marked ``leaving`` (a subscriber that saw it must be told); one it never saw is not
mentioned at all. To know which records it saw, a filtered subscription keeps their keys.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ..model.table import maybe_await
from ..query.match import matches
from ..query.model import Condition, Group
from ..runtime.access import TableAccess
from ..storage import Row
from .events import Event, HubEvent

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["Viewer"]

log = logging.getLogger("charter.realtime")


class Viewer:
    """One subscriber's verdicts over one table's events.

    Args:
        table: its role's access to the table (None: unrestricted, server code or auth off).
        rule: its row rule (the table's ``read_filter`` for its user), as conditions.
        conditions: a query subscription's conditions.
        user: who it is, for ``allow_read``.
    """

    __slots__ = (
        "conditions",
        "filtered",
        "hooked",
        "key",
        "rule",
        "runtime",
        "table",
        "user",
        "visible",
    )

    def __init__(
        self,
        runtime: TableRuntime,
        table: TableAccess | None,
        rule: Sequence[Condition | Group] = (),
        conditions: Sequence[Condition | Group] = (),
        user: Any = None,
    ) -> None:
        self.runtime = runtime
        self.table = table
        self.rule = tuple(rule)
        self.conditions = tuple(conditions)
        self.user = user
        self.hooked = "allow_read" in runtime.cls.__charter_overrides__
        self.filtered = bool(self.rule or self.conditions or self.hooked)
        self.visible: set[Any] = set()
        # Subscribers that see events alike share their rendering (``HubEvent.rendered``).
        # (None: verdicts may differ per subscriber, so each gets its own event.)
        self.key: Any = None if self.filtered else (0 if table is None else id(table))

    async def passes(self, key: Any, document: dict[str, Any], version: int) -> bool:
        """Whether the record as stored passes the query, the row rule and ``allow_read``."""
        runtime = self.runtime
        try:
            for rule in (self.conditions, self.rule):
                if rule and not await matches(
                    runtime.catalog, runtime.schema, rule, document, runtime._related, version
                ):
                    return False
            if self.hooked:
                instance = runtime.instance(key, Row(_encoded(document), version))
                return bool(await maybe_await(instance.allow_read(self.user)))
        except Exception:
            log.exception("a subscriber's check of %s %r failed: not sent", runtime.name, key)
            return False
        return True

    def shown(self, document: dict[str, Any]) -> dict[str, Any]:
        """What this subscriber may read of a record (hidden attributes removed)."""
        if self.table is None:
            return self.runtime.public(document)
        return self.table.public(document)

    async def view(self, item: HubEvent) -> Event | None:
        """The event as this subscriber sees it, a ``leaving`` delete, or None (not for it).
        Subscribers that see the table alike get one shared event (and its encodings)."""
        if self.key is None:
            return await self._filtered(item)
        return self.view_now(item)

    def view_now(self, item: HubEvent) -> Event | None:
        """``view`` for a subscriber whose verdicts need no waiting (not ``filtered``)."""
        rendered = item.rendered
        if self.key in rendered:
            return rendered[self.key]
        event = rendered[self.key] = self._render(item)
        return event

    def _render(self, item: HubEvent) -> Event:
        """The event as a subscriber that sees the whole table sees it."""
        logged = item.logged
        document = item.document
        if logged.type == "delete":
            document = None
        elif logged.type != "publish":
            document = self.shown(document)
        return Event(
            logged.type,
            logged.key,
            document,
            logged.timestamp,
            logged.user,
            False,
            logged.position,
        )

    async def _filtered(self, item: HubEvent) -> Event | None:
        """The event for a subscriber whose query, row rule or ``allow_read`` decides, which
        keeps the keys of the records it was sent (``visible``)."""
        logged = item.logged
        key = logged.key
        kind = logged.type
        if kind in ("delete", "publish"):
            if key not in self.visible:
                return None
            if kind == "delete":
                self.visible.discard(key)
            return self._render(item)
        if not await self.passes(key, item.document, logged.timestamp):
            if key not in self.visible:
                return None
            self.visible.discard(key)
            return Event("delete", key, None, logged.timestamp, None, True, logged.position)
        self.visible.add(key)
        return self._render(item)


def _encoded(document: dict[str, Any]) -> str:
    return msgspec.json.encode(document).decode()

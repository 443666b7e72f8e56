"""``select()`` results shaped in Python: which attributes each result holds, and the nested
related records the SQL side (``charter.query.related_sql``) put in one JSON column per row as
``[document, version, {nested...}]`` envelopes. ``allow`` (the tables' ``allow_read`` hooks) is
asked about every related record; a denied to-one record reads as null, a denied to-many one is
left out. A related record selected whole shows what the reader's ``Access`` lets it see of
its table (the SQL already left out the records its row rules exclude)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ..query.model import Select
from ..query.resolve import ID, UPDATED, Catalog
from ..schema import TableSchema

if TYPE_CHECKING:
    from .access import Access

__all__ = ["Projector"]

Allow = Callable[[str, dict[str, Any], int], Awaitable[bool]]
_decode = msgspec.json.decode


_DENIED = object()


class Projector:
    """Shapes results as ``select`` says; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        schema: TableSchema,
        select: Select,
        allow: Allow | None,
        access: Access | None = None,
    ):
        self.catalog = catalog
        self.schema = schema
        self.select = select
        self.allow = allow
        self.access = None if access is None or access.unrestricted else access

    async def __call__(self, doc: dict[str, Any], version: int, related: str | None) -> Any:
        rel = _decode(related) if related else {}
        return await self._project(self.schema, self.select, doc, version, rel)

    async def _project(
        self, schema: TableSchema, select: Select, doc: dict[str, Any], version: int, rel: Any
    ) -> Any:
        values: list[Any] = []
        for item in select.items:
            spec = schema.relationships.get(item.name)
            if spec is not None:
                target = self.catalog[spec.target]
                raw = (rel or {}).get(item.name)
                if spec.many:
                    found = [await self._record(target, item.select, e) for e in raw or []]
                    values.append([v for v in found if v is not _DENIED])
                else:
                    one = await self._record(target, item.select, raw) if raw else None
                    values.append(None if one is _DENIED else one)
            elif item.name == ID:
                values.append(doc.get(schema.primary_key))
            elif item.name == UPDATED:
                values.append(version)
            else:
                values.append(doc.get(item.name))
        if select.mode == "value":
            return values[0]
        if select.mode == "array":
            return values
        return {item.name: value for item, value in zip(select.items, values, strict=True)}

    async def _record(self, schema: TableSchema, select: Select | None, envelope: Any) -> Any:
        doc, version, nested = envelope
        if self.allow is not None and not await self.allow(schema.name, doc, version):
            return _DENIED
        if select is None:
            if self.access is not None:
                return self.access.table(schema.name).public(doc)
            if schema.hidden:
                return {k: v for k, v in doc.items() if k not in schema.hidden}
            return doc
        return await self._project(schema, select, doc, version, nested)

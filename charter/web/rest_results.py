"""A REST search's result as the response body: one array, streamed in the request's format.

Why apart: ``rest.TableResource.search`` decides what is read; this decides how the rows become
bytes (the stored JSON as it is when the role may see it whole, else records shown to it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import HttpError
from ..http.codecs import CSV, JSON, Codec
from ..query.model import Select
from ..runtime.access import Access
from ..storage import Row
from .streams import peeked

if TYPE_CHECKING:
    from .rest import TableResource

__all__ = ["stream_rows", "stream_values"]

_json_decode = msgspec.json.decode


async def stream_rows(
    resource: TableResource,
    rows: AsyncIterator[Row],
    codec: Codec,
    access: Access,
    count: int | None,
) -> AsyncIterator[bytes]:
    """The rows as one array in ``codec``: the stored JSON as it is when the role may see it
    whole, else each row as a record (through ``allow_read`` when the table has one)."""
    if resource._raw_for(access) and codec is JSON and not resource.checks_read:
        first = True
        batch: list[bytes] = []
        async for row in rows:
            batch.append(row.data.encode())
            if len(batch) >= 200:
                yield (b"[" if first else b",") + b",".join(batch)
                first = False
                batch = []
        if batch:
            yield (b"[" if first else b",") + b",".join(batch) + b"]"
        else:
            yield b"[]" if first else b"]"
        return

    async def values() -> AsyncIterator[Any]:
        async for row in rows:
            key = _json_decode(row.data).get(resource.schema.primary_key)
            instance = resource.runtime.instance(key, row)
            if resource.checks_read:
                try:
                    await resource.runtime._hook(instance, "allow_read")
                except HttpError:
                    continue
            yield instance

    async for chunk in stream_values(resource, values(), codec, access, count):
        yield chunk


async def stream_values(
    resource: TableResource,
    values: Any,
    codec: Codec,
    access: Access,
    count: int | None = None,
    selection: Select | None = None,
) -> AsyncIterator[bytes]:
    """The values (records or what ``select`` made of them) as one array in ``codec``.

    The query runs to its first value before a header or bracket is sent; ``count``, when
    known, lets MessagePack write its array length first (see ``Codec.stream_array``).
    """
    shown = resource._shown
    values = await peeked(values)

    async def items() -> AsyncIterator[Any]:
        async for value in values:
            yield shown(value._values(), access) if hasattr(value, "_values") else value

    columns = None
    if codec is CSV:  # one column per selected attribute, or per attribute it may read
        if selection is None:
            table = None if access.unrestricted else access.table(resource.name)
            columns = [
                f
                for f in resource.schema.fields
                if f not in resource.runtime.hidden and (table is None or table.sees(f))
            ]
        else:
            columns = [i.name for i in selection.items]
    async for chunk in codec.stream_array(items(), count=count, columns=columns):
        yield chunk

"""REST resources: one per table (SPEC section 3).

``GET /T`` describes, ``/T/`` is the collection, ``/T/{id}`` a record, ``/T/{id}.field`` one
value; a ``.json .msgpack .cbor .csv`` suffix picks the format. Records are stored as JSON, so
a JSON read of a table with nothing hidden sends the stored bytes as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from ..errors import HttpError, MethodNotAllowed, NotFound, PreconditionFailed
from ..http.codecs import CSV, JSON, MSGPACK, SUFFIXES, Codec, Form, for_request, negotiate
from ..http.request import Request
from ..http.response import Response
from ..http.routing import Route, Router, decode_segment
from ..model.table import maybe_await
from ..query import parse_query_string
from ..query.cache import LRU, copy_query
from ..query.model import Condition, Query, Select
from ..query.sql import compile_select
from ..runtime.context import current_context
from ..runtime.transaction import current_transaction
from ..schema.describe import describe
from ..storage import Row

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["add_table_routes", "describe_table"]

_json_decode = msgspec.json.decode
_WHOLE_RESULT = 100  # a page up to this many records is sent in one piece, not streamed
_CHECKED_QUERIES = 1024  # query strings remembered parsed and valid, per table


def _etag(version: int) -> str:
    return f'"{version}"'


def _etag_matches(header: str, version: int) -> bool:
    if header.strip() == "*":
        return True
    tag = _etag(version)
    return any(part.strip().removeprefix("W/") == tag for part in header.split(","))


def _record_headers(version: int, media_type: str) -> dict[str, str]:
    return {
        "content-type": media_type,
        "etag": _etag(version),
        "last-modified": formatdate(version / 1000, usegmt=True),
    }


def _split_suffix(segment: str) -> tuple[str, Codec | None]:
    dot = segment.rfind(".")
    if dot > 0:
        codec = SUFFIXES.get(segment[dot:].lower())
        if codec is not None:
            return segment[:dot], codec
    return segment, None


def _prefers_representation(request: Request) -> bool:
    prefer = request.header("prefer")
    return prefer is not None and "return=representation" in prefer


class TableResource:
    """The HTTP face of one table."""

    def __init__(self, runtime: TableRuntime) -> None:
        self.runtime = runtime
        self.schema = runtime.schema
        self.name = runtime.name
        self.path = "/" + quote(runtime.name)
        self.database = runtime.storage
        overrides = runtime.cls.__charter_overrides__
        self.custom_get = "get" in overrides or "allow_read" in overrides
        self.checks_read = "allow_read" in overrides
        self.blind_patch = not {"patch", "allow_update"} & overrides
        self.raw_json = not runtime.hidden and not self.custom_get
        self._checked: LRU[str, Query] = LRU(_CHECKED_QUERIES)  # parsed, known to compile
        self.properties = frozenset(
            [f for f in self.schema.fields if f not in runtime.hidden]
            + list(self.schema.relationships)
        )
        self._catalog: dict[str, Any] | None = None

    # -- helpers ---------------------------------------------------------------------------------

    def _key(self, raw: str) -> Any:
        key = self.schema.coerce_key(raw)
        if key is None:
            raise NotFound(f"{self.name} {raw!r} not found")
        return key

    async def _body(self, request: Request, method: str) -> Any:
        """The client's input for ``method`` (``post``, ``put``, ``patch``).

        When the table overrides that method, the input is validated before the override sees
        it, so an override can rely on its types and a bad body is a 422, not an error in
        user code (``super()`` validates again; only overridden tables pay for it).
        """
        codec = for_request(request.header("content-type"))
        body = await request.body()
        if not body:
            raise HttpError(400, "a body is required", code="MALFORMED_INPUT")
        value = codec.decode(body)
        if isinstance(value, Form):  # texts, typed by the fields as query strings are
            value = value.typed({n: f.type for n, f in self.schema.fields.items()})
        data = self.runtime.client_input(value)
        if method in self.runtime.cls.__charter_overrides__:
            if method == "patch":
                self.runtime.validate_partial(data)
            else:
                self.runtime.validate_full(data)
        return data

    def _encode_value(self, value: Any, codec: Codec) -> Response:
        if isinstance(value, Response):
            return value
        if hasattr(value, "__charter_table__") and hasattr(value, "_values"):
            value = self.runtime.public(value._values())
        return Response(200, codec.encode(value), {"content-type": codec.media_type})

    async def _check_read(self, instance: Any) -> None:
        if self.checks_read:
            await self.runtime._hook(instance, "allow_read")

    async def _load(self, key: Any) -> Any:
        return await self.runtime.load(key, current_context())

    def _check_if_match(self, request: Request, instance: Any) -> None:
        header = request.header("if-match")
        if header is None:
            return
        if not instance._exists or not _etag_matches(header, instance._version):
            raise PreconditionFailed("the record's ETag does not match If-Match")

    def _after_commit_etag(self, response: Response, key: Any) -> None:
        txn = current_transaction()
        assert txn is not None

        def set_etag(done: Any) -> None:
            version = done.versions.get((self.name, key))
            if version:
                response.headers["etag"] = _etag(version)
                response.headers["last-modified"] = formatdate(version / 1000, usegmt=True)

        txn.after_commit(set_etag)

    # -- entry points ------------------------------------------------------------------------------

    async def describe(self, request: Request) -> Response:
        return Response(
            200, JSON.encode(describe_table(self.runtime)), {"content-type": "application/json"}
        )

    async def collection(self, request: Request, rest: str = "") -> Response:
        if rest and rest[0] == ".":
            _, codec = _split_suffix("x" + rest)
            if codec is None:
                raise NotFound(f"no resource at {request.path}")
        else:
            codec = None
        method = request.method
        if method in ("GET", "HEAD"):
            return await self.search(request, codec or negotiate(request.header("accept")))
        if method == "POST":
            return await self.create(request, codec or negotiate(request.header("accept")))
        if method == "DELETE":
            return await self.delete_matching(request)
        raise MethodNotAllowed(
            f"{method} is not allowed on {request.path}",
            headers={"allow": "GET, HEAD, POST, DELETE"},
        )

    async def record(self, request: Request, id: str) -> Response:
        # The segment is read as sent: a ``/`` is part of the key only when sent as ``%2F``,
        # and only a literal ``.`` starts a format suffix or a property; ``%2E`` is part of the
        # key (``location()`` sends it so for a key that would read as a suffix or property).
        raw = request.raw_path[len(self.path) + 1 :]
        if "/" in raw:
            raise NotFound(f"no resource at {request.path}")
        if raw.lower() in SUFFIXES:  # /Table/.csv: the collection in that format
            return await self.collection(request, raw)
        raw, codec = _split_suffix(raw)
        prop: str | None = None
        dot = raw.rfind(".")
        # Hidden attributes are not properties: ``.cost`` and ``.nosuch`` answer alike.
        if dot > 0 and raw[dot + 1 :] in self.properties:
            raw, prop = raw[:dot], raw[dot + 1 :]
        key = self._key(decode_segment(raw))
        method = request.method
        if method in ("GET", "HEAD"):
            codec = codec or negotiate(request.header("accept"))
            if prop in self.schema.relationships:
                return await self.related(key, prop, codec)
            return await self.read(request, key, prop, codec)
        if prop is not None:
            raise MethodNotAllowed(
                f"{method} is not allowed on a property", headers={"allow": "GET, HEAD"}
            )
        if method == "PUT":
            return await self.replace(request, key, codec)
        if method == "PATCH":
            return await self.merge(request, key, codec)
        if method == "DELETE":
            return await self.remove(request, key)
        raise MethodNotAllowed(
            f"{method} is not allowed on {request.path}",
            headers={"allow": "GET, HEAD, PUT, PATCH, DELETE"},
        )

    # -- records -----------------------------------------------------------------------------------

    async def read(self, request: Request, key: Any, prop: str | None, codec: Codec) -> Response:
        txn = current_transaction()
        assert txn is not None
        row = await txn.read(self.name, key)
        if row is None and not self.custom_get:
            raise NotFound(f"{self.name} {key!r} not found")
        if row is not None:
            match = request.header("if-none-match")
            if match is not None and _etag_matches(match, row.version):
                return Response(304, headers={"etag": _etag(row.version)})
        if self.raw_json and prop is None and codec is JSON:
            assert row is not None
            return Response(200, row.data.encode(), _record_headers(row.version, JSON.media_type))
        instance = self.runtime.instance(key, row, current_context())
        await self._check_read(instance)
        if "get" in self.runtime.cls.__charter_overrides__:
            value = await maybe_await(instance.get(Query()))
            if value is None:
                raise NotFound(f"{self.name} {key!r} not found")
            if value is instance:
                value = self.runtime.public(instance._values())
        else:
            value = self.runtime.public(instance._values())
        if prop is not None:
            if prop in self.runtime.hidden or not isinstance(value, dict) or prop not in value:
                raise NotFound(f"{self.name} {key!r} has no property {prop!r}")
            value = value[prop]
        response = self._encode_value(value, codec)
        if row is not None:
            response.headers.update(
                _record_headers(row.version, response.headers.get("content-type", codec.media_type))
            )
        return response

    async def related(self, key: Any, relationship: str, codec: Codec) -> Response:
        """``GET /T/{id}.rel``: the related record (or list of them), as ``select(rel)`` gives
        it, with the same read checks."""
        query = Query(
            conditions=[Condition(self.schema.primary_key, "equals", key)], select=relationship
        )
        async for value in self.runtime.search(query, check_read=True):
            out = JSON if codec is CSV else codec
            return Response(200, out.encode(value), {"content-type": out.media_type})
        raise NotFound(f"{self.name} {key!r} not found")

    async def replace(self, request: Request, key: Any, codec: Codec | None) -> Response:
        data = await self._body(request, "put")
        instance = self.runtime.instance(key, None, current_context())
        if request.header("if-match") is not None:
            instance = await self._load(key)
            self._check_if_match(request, instance)
        await maybe_await(instance.put(data))
        return self._written(request, instance, codec)

    async def merge(self, request: Request, key: Any, codec: Codec | None) -> Response:
        data = await self._body(request, "patch")
        if (
            self.blind_patch
            and request.header("if-match") is None
            and not _prefers_representation(request)
        ):
            # Nothing needs the stored record first: merge at commit into whatever is current,
            # so concurrent PATCHes of one record never conflict (404 if it is absent).
            await self.runtime.merge_blind(key, data)
            response = Response(204)
            self._after_commit_etag(response, key)
            return response
        instance = await self._load(key)
        if not instance._exists:
            raise NotFound(f"{self.name} {key!r} not found")
        self._check_if_match(request, instance)
        await maybe_await(instance.patch(data))
        return self._written(request, instance, codec)

    def _written(self, request: Request, instance: Any, codec: Codec | None) -> Response:
        if not _prefers_representation(request):
            response = Response(204)
            self._after_commit_etag(response, instance._key)
            return response
        out = codec or negotiate(request.header("accept"))
        response = Response(
            200,
            out.encode(self.runtime.public(instance._values())),
            {"content-type": out.media_type},
        )
        self._after_commit_etag(response, instance._key)
        return response

    async def remove(self, request: Request, key: Any) -> Response:
        instance = await self._load(key)
        if not instance._exists:
            raise NotFound(f"{self.name} {key!r} not found")
        self._check_if_match(request, instance)
        deleted = await maybe_await(instance.delete())
        if deleted is False:
            raise NotFound(f"{self.name} {key!r} not found")
        return Response(204)

    # -- collection --------------------------------------------------------------------------------

    async def create(self, request: Request, codec: Codec) -> Response:
        data = await self._body(request, "post")
        collection = self.runtime.cls._blank(None, current_context())
        created = await maybe_await(collection.post(data))
        if hasattr(created, "__charter_table__") and hasattr(created, "_values"):
            key = created._key
            body = codec.encode(self.runtime.public(created._values()))
        else:
            key = created.get(self.schema.primary_key) if isinstance(created, dict) else created
            body = codec.encode(created)
        headers = {
            "content-type": codec.media_type,
            "location": self.location(key),
        }
        response = Response(201, body, headers)
        self._after_commit_etag(response, key)
        return response

    def location(self, key: Any) -> str:
        """The URL of a record; a key whose tail would read as a format suffix or a property
        (``a.csv``, ``a.name``) has that dot sent as ``%2E``."""
        text = quote(str(key), safe="")
        dot = text.rfind(".")
        if dot >= 0 and (text[dot:].lower() in SUFFIXES or text[dot + 1 :] in self.properties):
            text = text[:dot] + "%2E" + text[dot + 1 :]
        return f"{self.path}/{text}"

    def _query(self, request: Request) -> Query:
        """The request's query, parsed once per query string: a copy of the parsed query,
        so that what application code does to it stays in that request."""
        text = request.query_string
        known = self._checked.get(text)
        if known is not None:
            return copy_query(known)
        query = parse_query_string(text)
        # Reject a bad query before the response starts; returned=False attributes do not exist.
        compile_select(self.schema, query, catalog=self.catalog, public=True)
        self._checked.put(text, query)
        return copy_query(query)

    @property
    def catalog(self) -> dict[str, Any]:
        if self._catalog is None:
            self._catalog = {name: rt.schema for name, rt in self.runtime.tables.items()}
        return self._catalog

    async def search(self, request: Request, codec: Codec) -> Response:
        query = self._query(request)
        if query.explain:
            plan = await self.database.explain(self.schema, query)
            out = JSON if codec is CSV else codec
            return Response(200, out.encode(plan), {"content-type": out.media_type})
        headers = {"content-type": codec.media_type}
        overridden = "search" in self.runtime.cls.__charter_overrides__
        if (
            codec is JSON
            and self.raw_json
            and not self.checks_read
            and not overridden
            and query.select is None
            and query.limit is not None
            and query.limit <= _WHOLE_RESULT
            and request.method == "GET"
            and "count=exact" not in (request.header("prefer") or "")
        ):
            # A small page is read in one go anyway: send it whole, the stored JSON as it is.
            found = [row.data.encode() async for row in self.database.search(self.schema, query)]
            return Response(200, b"[" + b",".join(found) + b"]", headers)
        await request.body()  # what follows the body is the disconnect we watch for
        filtered = overridden or self.checks_read  # the count cannot be known in advance
        counted = "count=exact" in (request.header("prefer") or "")
        total: int | None = None
        rows: AsyncIterator[Row] | None = None
        if request.method == "HEAD":
            if counted:
                total = await self.database.count(self.schema, query)
        elif counted or (codec is MSGPACK and not filtered and query.select is None):
            total, rows = await self.database.search_counted(self.schema, query)
        if counted and total is not None:
            headers["content-range"] = _content_range(query, total)
        if request.method == "HEAD":  # the headers a GET would send: no Content-Length
            return Response(200, headers=headers, stream=_nothing())
        known = None if filtered else _shown(query, total) if total is not None else None
        if overridden:
            if rows is not None:
                await rows.aclose()  # type: ignore[attr-defined]
            collection = self.runtime.cls._blank(None, current_context())
            values = collection.search(query)
            stream = self._stream_values(values, codec, known, query.selection)
        elif query.select is not None:
            if rows is not None:
                await rows.aclose()  # type: ignore[attr-defined]
            values = self.runtime.search(query, check_read=True)
            stream = self._stream_values(values, codec, selection=query.selection)
        else:
            if rows is None:
                rows = self.database.search(self.schema, query)
            stream = self._stream_rows(rows, codec, known)
        # Run the query up to its first chunk before the status line is sent: an error there
        # is still an error response, not a 200 with a cut body.
        primed = await _peeked(stream)
        return Response(200, stream=_until_disconnect(request, primed), headers=headers)

    async def _stream_rows(
        self, rows: AsyncIterator[Row], codec: Codec, count: int | None
    ) -> AsyncIterator[bytes]:
        if self.raw_json and codec is JSON and not self.checks_read:
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
                key = _json_decode(row.data).get(self.schema.primary_key)
                instance = self.runtime.instance(key, row)
                if self.checks_read:
                    try:
                        await self.runtime._hook(instance, "allow_read")
                    except HttpError:
                        continue
                yield instance

        async for chunk in self._stream_values(values(), codec, count):
            yield chunk

    async def _stream_values(
        self,
        values: Any,
        codec: Codec,
        count: int | None = None,
        selection: Select | None = None,
    ) -> AsyncIterator[bytes]:
        """The values (records or what ``select`` made of them) as one array in ``codec``.

        The query runs to its first value before a header or bracket is sent; ``count``, when
        known, lets MessagePack write its array length first (see ``Codec.stream_array``).
        """
        public = self.runtime.public
        values = await _peeked(values)

        async def items() -> AsyncIterator[Any]:
            async for value in values:
                yield public(value._values()) if hasattr(value, "_values") else value

        columns = None
        if codec is CSV:  # one column per selected attribute, or per returned attribute
            if selection is None:
                columns = [f for f in self.schema.fields if f not in self.runtime.hidden]
            else:
                columns = [i.name for i in selection.items]
        async for chunk in codec.stream_array(items(), count=count, columns=columns):
            yield chunk

    async def delete_matching(self, request: Request) -> Response:
        query = self._query(request)
        if query.explain:
            plan = await self.database.explain(self.schema, query)
            return Response(200, JSON.encode(plan), {"content-type": JSON.media_type})
        query = dataclasses.replace(query, select=None)
        count = 0
        async for instance in self.runtime.search(query):
            if await maybe_await(instance.delete()) is not False:
                count += 1
        return Response(200, JSON.encode(count), {"content-type": JSON.media_type})


def _shown(query: Query, total: int) -> int:
    start = query.offset or 0
    return max(0, min(total - start, query.limit if query.limit is not None else total))


def _content_range(query: Query, total: int) -> str:
    shown = _shown(query, total)
    start = query.offset or 0
    return f"items {start}-{start + shown - 1}/{total}" if shown else f"items */{total}"


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _peeked(values: Any) -> AsyncIterator[Any]:
    """``values`` with the first item already produced, so that its errors (a query that fails
    to run) surface in the caller, before a status line or an opening bracket is sent."""
    iterator = values.__aiter__()

    async def close() -> None:
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()

    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        return _nothing()
    except BaseException:
        await close()
        raise

    async def rest() -> AsyncIterator[Any]:
        try:
            yield first
            async for value in iterator:
                yield value
        finally:
            await close()

    return rest()


async def _until_disconnect(request: Request, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` until the client goes away; then the source is closed, so reading stops."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        async for chunk in chunks:
            if watcher.done():
                break
            yield chunk
    finally:
        watcher.cancel()
        await chunks.aclose()  # type: ignore[attr-defined]


def add_table_routes(router: Router, runtime: TableRuntime) -> None:
    """Register the resource endpoints of one table."""
    resource = TableResource(runtime)
    base = "/" + quote(runtime.name)
    meta = {"table": runtime.name}
    router.add(Route("GET", base, resource.describe, f"{runtime.name}.describe", "table", meta))
    collection, record = f"{runtime.name}.collection", f"{runtime.name}.record"
    for method in ("GET", "POST", "DELETE"):
        router.add(Route(method, base + "/", resource.collection, collection, "table", meta))
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        router.add(Route(method, base + "/{id:path}", resource.record, record, "table", meta))


def describe_table(runtime: TableRuntime) -> dict[str, Any]:
    """The table as JSON Schema (``GET /Table``)."""
    return describe(runtime.schema)

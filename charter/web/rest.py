"""REST resources: one per table (SPEC section 3).

``GET /T`` describes, ``/T/`` is the collection, ``/T/{id}`` a record, ``/T/{id}.field`` one
value; a ``.json .msgpack .cbor .csv`` suffix picks the format. Records are stored as JSON, so
a JSON read of a table with nothing hidden sends the stored bytes as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import HttpError, MethodNotAllowed, NotFound, PreconditionFailed
from ..http.codecs import CSV, JSON, MSGPACK, SUFFIXES, Codec, Form, for_request, negotiate
from ..http.request import Request
from ..http.response import Response
from ..http.routing import Route, Router, decode_segment
from ..model.table import maybe_await
from ..query import parse_query_string
from ..query.cache import LRU, copy_query
from ..query.model import Condition, Query
from ..query.sql import compile_select
from ..runtime.access import DELETE, INSERT, READ, UPDATE, Access, forbidden_attributes
from ..runtime.context import RequestContext, current_context
from ..runtime.transaction import current_transaction
from ..schema.describe import describe
from ..storage import Row
from .rest_access import RoleFaces, masked_plan, reaches_related
from .rest_headers import etag, etag_matches, prefers_representation, record_headers, split_suffix
from .rest_results import stream_rows, stream_values
from .streams import content_range, nothing, peeked, shown_count, until_disconnect
from .websocket import subscribe, subscribe_at, wants_subscription

if TYPE_CHECKING:
    from ..realtime.hub import Hub
    from ..runtime.tables import TableRuntime

__all__ = ["add_table_routes", "describe_table"]

_WHOLE_RESULT = 100  # a page up to this many records is sent in one piece, not streamed
_CHECKED_QUERIES = 1024  # query strings remembered parsed and valid, per table


class TableResource:
    """The HTTP face of one table."""

    def __init__(self, runtime: TableRuntime, hub: Hub | None = None) -> None:
        self.runtime = runtime
        self.hub = hub  # subscriptions (``Accept: text/event-stream``) when set
        self.schema = runtime.schema
        self.name = runtime.name
        self.path = "/" + quote(runtime.name)
        self.database = runtime.reads  # its searches see the request's own pending writes
        overrides = runtime.cls.__charter_overrides__
        self.custom_get = "get" in overrides or "allow_read" in overrides
        self.checks_read = "allow_read" in overrides
        self.cache = runtime.cache  # a caching table's (charter.sources)
        # (a caching table's PATCH loads the record: it may be at the origin only)
        self.blind_patch = not {"patch", "allow_update"} & overrides and self.cache is None
        self.raw_json = not runtime.hidden and not self.custom_get
        # Parsed query strings known to compile, per role (0: unrestricted).
        self._checked: LRU[tuple[int, str], Query] = LRU(_CHECKED_QUERIES)
        self._face = RoleFaces(self.schema).of  # the table as a (restricted) role sees it
        # The app's rules (one object), asked directly: a request that may do everything
        # pays one call here (``UNRESTRICTED``), nothing more.
        self._access_of = runtime.rules.access
        self.properties = frozenset(
            [f for f in self.schema.fields if f not in runtime.hidden]
            + list(self.schema.relationships)
        )
        self._catalog: dict[str, Any] | None = None

    # -- access ----------------------------------------------------------------------------------

    def _allowed(self, context: RequestContext | None, *rights: str) -> Access:
        """The request's access; 401/403 unless it holds one of ``rights`` on this table."""
        access = self._access_of(context)
        if not access.unrestricted:
            self._require(access, context, rights)
        return access

    def _require(self, access: Access, context: RequestContext | None, rights: Any) -> None:
        table = access.table(self.name)
        if not any(getattr(table, right) for right in rights):
            access.require(context, self.name, rights[0])

    def _shown(self, data: dict[str, Any], access: Access) -> dict[str, Any]:
        return self.runtime.shown(data, access)

    def _raw_for(self, access: Access) -> bool:
        """Whether stored JSON may be sent as it is to this role (it hides no attribute)."""
        return self.raw_json and (access.unrestricted or access.table(self.name).shown is None)

    # -- helpers ---------------------------------------------------------------------------------

    def _key(self, raw: str) -> Any:
        key = self.schema.coerce_key(raw)
        if key is None:
            raise NotFound(f"{self.name} {raw!r} not found")
        return key

    async def _body(self, request: Request, method: str, access: Access) -> Any:
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
        if not access.unrestricted and isinstance(data, dict):
            refused = access.table(self.name).unwritable(data)
            if refused:  # before validation: what it may not write is refused whatever it is
                raise forbidden_attributes(self.name, refused)
        if method in self.runtime.cls.__charter_overrides__:
            if method == "patch":
                self.runtime.validate_partial(data)
            else:
                self.runtime.validate_full(data)
        return data

    def _encode_value(self, value: Any, codec: Codec, access: Access) -> Response:
        if isinstance(value, Response):
            return value
        if hasattr(value, "__charter_table__") and hasattr(value, "_values"):
            value = self._shown(value._values(), access)
        return Response(200, codec.encode(value), {"content-type": codec.media_type})

    async def _check_read(self, instance: Any) -> None:
        if self.checks_read:
            await self.runtime._hook(instance, "allow_read")

    async def _load(self, key: Any, access: Access, *, write: bool = False) -> Any:
        """The record, acting for the request; 404 when its user's rules exclude it. On a
        caching table a load may call the origin: the user needs the read right first."""
        context = current_context()
        if self.cache is not None and not access.unrestricted:
            access.require(context, self.name, READ)
        if access.unrestricted:
            instance = await self.runtime.load(key, context)
        else:
            instance = await self.runtime.load_as(key, context, write=write)
        instance._acting = True
        return instance

    def _check_if_match(self, request: Request, instance: Any) -> None:
        header = request.header("if-match")
        if header is None:
            return
        if not instance._exists or not etag_matches(header, instance._version):
            raise PreconditionFailed("the record's ETag does not match If-Match")

    def _after_commit_etag(self, response: Response, key: Any) -> None:
        txn = current_transaction()
        assert txn is not None

        def set_etag(done: Any) -> None:
            version = done.versions.get((self.name, key))
            if version:
                response.headers["etag"] = etag(version)
                response.headers["last-modified"] = formatdate(version / 1000, usegmt=True)

        txn.after_commit(set_etag)

    # -- entry points ------------------------------------------------------------------------------

    async def describe(self, request: Request) -> Response:
        access = self._allowed(current_context(), READ)
        if access.unrestricted:
            body = describe_table(self.runtime)
        else:
            body = self._face(access).description
        return Response(200, JSON.encode(body), {"content-type": "application/json"})

    async def collection(self, request: Request, rest: str = "") -> Response:
        if rest and rest[0] == ".":
            _, codec = split_suffix("x" + rest)
            if codec is None:
                raise NotFound(f"no resource at {request.path}")
        else:
            codec = None
        method = request.method
        if self.hub is not None and codec is None and wants_subscription(request):
            return await subscribe(self, self.hub, request)
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
        if self.hub is not None and wants_subscription(request):  # SSE or a WebSocket
            return await subscribe_at(self, self.hub, request, raw)
        if "/" in raw:
            raise NotFound(f"no resource at {request.path}")
        if raw.lower() in SUFFIXES:  # /Table/.csv: the collection in that format
            return await self.collection(request, raw)
        raw, codec = split_suffix(raw)
        prop: str | None = None
        dot = raw.rfind(".")
        method = request.method
        context = current_context()
        reading = method in ("GET", "HEAD")
        access = self._access_of(context)
        properties = self.properties
        if not access.unrestricted:
            face = self._face(access)
            if reading and not face.table.read:
                access.require(context, self.name, READ)
            properties = face.properties
        # Hidden attributes are not properties: ``.cost`` and ``.nosuch`` answer alike.
        if dot > 0 and raw[dot + 1 :] in properties:
            raw, prop = raw[:dot], raw[dot + 1 :]
        key = self._key(decode_segment(raw))
        if reading:
            codec = codec or negotiate(request.header("accept"))
            if prop in self.schema.relationships:
                return await self.related(key, prop, codec, context)
            return await self.read(request, key, prop, codec, access, context)
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

    async def read(
        self,
        request: Request,
        key: Any,
        prop: str | None,
        codec: Codec,
        access: Access,
        context: RequestContext | None,
    ) -> Response:
        txn = current_transaction()
        assert txn is not None
        row = await txn.read(self.name, key)
        cache = self.cache
        if cache is not None and self.runtime.cache_serves(txn, key, row):
            row, _ = await self.runtime.through_cache(key, row, txn)
        unrestricted = access.unrestricted
        outside = self.runtime.outside
        if (
            row is not None
            and not unrestricted
            and access.table(self.name).rules
            and await outside(key, context, write=False)
        ):
            row = None  # outside the reader's rule: as if absent (before any 304)
        if row is None and "get" not in self.runtime.cls.__charter_overrides__:
            raise NotFound(f"{self.name} {key!r} not found")  # (only a get() may answer it)
        if row is not None:
            match = request.header("if-none-match")
            if match is not None and etag_matches(match, row.version):
                return Response(304, headers={"etag": etag(row.version)})
        raw = self.raw_json and (unrestricted or self._raw_for(access))
        if prop is None and codec is JSON and raw:
            assert row is not None
            return Response(200, row.data.encode(), record_headers(row.version, JSON.media_type))
        instance = self.runtime.instance(key, row, context)
        instance._acting = True
        await self._check_read(instance)
        if "get" in self.runtime.cls.__charter_overrides__:
            value = await maybe_await(instance.get(Query()))
            if value is None:
                raise NotFound(f"{self.name} {key!r} not found")
            if value is instance:
                value = self._shown(instance._values(), access)
        else:
            value = self._shown(instance._values(), access)
        if prop is not None:
            if prop in self.runtime.hidden or not isinstance(value, dict) or prop not in value:
                raise NotFound(f"{self.name} {key!r} has no property {prop!r}")
            value = value[prop]
        response = self._encode_value(value, codec, access)
        if row is not None:
            response.headers.update(
                record_headers(row.version, response.headers.get("content-type", codec.media_type))
            )
        return response

    async def related(
        self, key: Any, relationship: str, codec: Codec, context: RequestContext | None
    ) -> Response:
        """``GET /T/{id}.rel``: the related record (or list of them), as ``select(rel)`` gives
        it, with the same read checks (and the reader's rules)."""
        query = Query(
            conditions=[Condition(self.schema.primary_key, "equals", key)], select=relationship
        )
        async for value in self.runtime.search(query, check_read=True, context=context):
            out = JSON if codec is CSV else codec
            return Response(200, out.encode(value), {"content-type": out.media_type})
        raise NotFound(f"{self.name} {key!r} not found")

    async def replace(self, request: Request, key: Any, codec: Codec | None) -> Response:
        context = current_context()
        access = self._allowed(context, UPDATE, INSERT)
        data = await self._body(request, "put", access)
        instance = self.runtime.cls._blank(key, context, acting=True)
        if request.header("if-match") is not None:
            instance = await self._load(key, access, write=True)
            self._check_if_match(request, instance)
        await maybe_await(instance.put(data))
        return self._written(request, instance, codec, access)

    async def merge(self, request: Request, key: Any, codec: Codec | None) -> Response:
        context = current_context()
        access = self._allowed(context, UPDATE)
        data = await self._body(request, "patch", access)
        if (
            self.blind_patch
            and request.header("if-match") is None
            and not prefers_representation(request)
            and (access.unrestricted or not access.table(self.name).rules)
        ):
            # Nothing needs the stored record first: merge at commit into whatever is current,
            # so concurrent PATCHes of one record never conflict (404 if it is absent).
            await self.runtime.merge_blind(key, data, context)
            response = Response(204)
            self._after_commit_etag(response, key)
            return response
        instance = await self._load(key, access, write=True)
        if not instance._exists:
            raise NotFound(f"{self.name} {key!r} not found")
        self._check_if_match(request, instance)
        await maybe_await(instance.patch(data))
        return self._written(request, instance, codec, access)

    def _written(
        self, request: Request, instance: Any, codec: Codec | None, access: Access
    ) -> Response:
        if not prefers_representation(request):
            response = Response(204)
            self._after_commit_etag(response, instance._key)
            return response
        out = codec or negotiate(request.header("accept"))
        response = Response(
            200,
            out.encode(self._shown(instance._values(), access)),
            {"content-type": out.media_type},
        )
        self._after_commit_etag(response, instance._key)
        return response

    async def remove(self, request: Request, key: Any) -> Response:
        access = self._allowed(current_context(), DELETE)
        instance = await self._load(key, access, write=True)
        if not instance._exists:
            raise NotFound(f"{self.name} {key!r} not found")
        self._check_if_match(request, instance)
        deleted = await maybe_await(instance.delete())
        if deleted is False:
            raise NotFound(f"{self.name} {key!r} not found")
        return Response(204)

    # -- collection --------------------------------------------------------------------------------

    async def create(self, request: Request, codec: Codec) -> Response:
        context = current_context()
        access = self._allowed(context, INSERT)
        data = await self._body(request, "post", access)
        collection = self.runtime.cls._blank(None, context, acting=True)
        created = await maybe_await(collection.post(data))
        if hasattr(created, "__charter_table__") and hasattr(created, "_values"):
            key = created._key
            body = codec.encode(self._shown(created._values(), access))
        else:
            key = created.get(self.schema.primary_key) if isinstance(created, dict) else created
            body = codec.encode(created)
        headers = {"content-type": codec.media_type, "location": self.location(key)}
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

    async def _query(self, request: Request, access: Access, *, write: bool = False) -> Query:
        return await self.query_of(request.query_string, access, write=write)

    async def query_of(self, text: str, access: Access, *, write: bool = False) -> Query:
        """A query string's query, parsed once per query string and role: a copy of the parsed
        query (what application code does to it stays in that request), with the reader's
        scope (``charter.query.scope``) when it is restricted."""
        generation = 0 if access.unrestricted else access.generation
        known = self._checked.get((generation, text))
        if known is None:
            known = parse_query_string(text)
            # Reject a bad query before the response starts: returned=False attributes, and
            # what the role may not read, do not exist.
            if access.unrestricted:
                compile_select(self.schema, known, catalog=self.catalog, public=True)
            else:
                checked = dataclasses.replace(known, scope=self._face(access).validation)
                compile_select(self.schema, checked, catalog=self.catalog, public=True)
            self._checked.put((generation, text), known)
        query = copy_query(known)
        if not access.unrestricted:
            query.scope = await access.scope(
                current_context(), self.name, write=write, related=reaches_related(query)
            )
        return query

    @property
    def catalog(self) -> dict[str, Any]:
        if self._catalog is None:
            self._catalog = {name: rt.schema for name, rt in self.runtime.tables.items()}
        return self._catalog

    async def search(self, request: Request, codec: Codec) -> Response:
        context = current_context()
        access = self._allowed(context, READ)
        query = await self._query(request, access)
        if query.explain:
            plan = await self.database.explain(self.schema, query)
            if not access.unrestricted:
                plan = masked_plan(plan)
            out = JSON if codec is CSV else codec
            return Response(200, out.encode(plan), {"content-type": out.media_type})
        headers = {"content-type": codec.media_type}
        overridden = "search" in self.runtime.cls.__charter_overrides__
        raw = self._raw_for(access)
        if (
            codec is JSON
            and raw
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
            headers["content-range"] = content_range(query, total)
        if request.method == "HEAD":  # the headers a GET would send: no Content-Length
            return Response(200, headers=headers, stream=nothing())
        known = None if filtered else shown_count(query, total) if total is not None else None
        if overridden:
            if rows is not None:
                await rows.aclose()  # type: ignore[attr-defined]
            collection = self.runtime.cls._blank(None, context, acting=True)
            values = collection.search(query)
            stream = stream_values(self, values, codec, access, known, query.selection)
        elif query.select is not None:
            if rows is not None:
                await rows.aclose()  # type: ignore[attr-defined]
            values = self.runtime.search(query, check_read=True, context=context)
            stream = stream_values(self, values, codec, access, selection=query.selection)
        else:
            if rows is None:
                rows = self.database.search(self.schema, query)
            stream = stream_rows(self, rows, codec, access, known)
        # Run the query up to its first chunk before the status line is sent: an error there
        # is still an error response, not a 200 with a cut body.
        primed = await peeked(stream)
        return Response(200, stream=until_disconnect(request, primed), headers=headers)

    async def delete_matching(self, request: Request) -> Response:
        access = self._allowed(current_context(), DELETE)
        query = await self._query(request, access, write=True)
        if query.explain:
            plan = await self.database.explain(self.schema, query)
            if not access.unrestricted:
                plan = masked_plan(plan)
            return Response(200, JSON.encode(plan), {"content-type": JSON.media_type})
        query = dataclasses.replace(query, select=None)
        count = 0
        async for instance in self.runtime.search(query):
            if await maybe_await(instance.delete()) is not False:
                count += 1
        return Response(200, JSON.encode(count), {"content-type": JSON.media_type})


def add_table_routes(router: Router, runtime: TableRuntime, hub: Hub | None = None) -> None:
    """Register the resource endpoints of one table (subscriptions through ``hub``)."""
    resource = TableResource(runtime, hub)
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

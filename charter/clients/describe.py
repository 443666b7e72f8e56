"""An app described for client generators: its tables, operations, object types, realtime,
sign-in and error envelope, in the neutral types of ``charter.clients.types``.

Built from the app's own declarations (table schemas, route metadata, signatures and
contracts), not from its OpenAPI document, so a generator knows what OpenAPI cannot say: which
attributes a query may name, which fields are input-only, how RPC arguments are passed. Every
emitter (``python.py``, ``typescript.py``) renders the same ``ApiDescription``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .operations import Operation, app_operations
from .types import ObjectType, Prim, Property, TypeNamer, TypeRef, optional

if TYPE_CHECKING:
    from ..schema.table_schema import TableSchema

__all__ = [
    "ERROR_CODES",
    "ApiDescription",
    "AuthDescription",
    "ErrorEnvelope",
    "RealtimeDescription",
    "Relationship",
    "TableDescription",
    "describe_app",
]

ERROR_CODES = (
    "MALFORMED_INPUT", "INVALID_QUERY", "INVALID_PROPERTIES", "UNAUTHORIZED", "FORBIDDEN",
    "NOT_FOUND", "METHOD_NOT_ALLOWED", "CONFLICT", "PRECONDITION_FAILED", "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE", "RATE_LIMITED", "INTERNAL", "UNAVAILABLE", "UPSTREAM_FAILED",
    "UPSTREAM_TIMEOUT",
)  # fmt: skip
"""The error codes of SPEC section 2 (an app may raise others with ``HttpError(code=...)``)."""


@dataclass(frozen=True, slots=True)
class Relationship:
    name: str
    target: str
    many: bool


@dataclass(frozen=True, slots=True)
class TableDescription:
    """A table as a client sees it.

    ``record``: the attributes a read answers (``returned=False`` ones absent); ``create``: what
    a create or put may send (``input=False`` ones absent; ``required`` marks those it must);
    ``patch``: the same, all optional. ``queryable``: the attribute names a query may name.
    """

    name: str
    primary_key: str
    key_type: TypeRef
    generates_key: bool
    record: tuple[Property, ...]
    create: tuple[Property, ...]
    patch: tuple[Property, ...]
    relationships: tuple[Relationship, ...]
    methods: tuple[Operation, ...]
    subscribe: bool
    description: str | None = None

    @property
    def queryable(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.record)


@dataclass(frozen=True, slots=True)
class RealtimeDescription:
    """How records are subscribed to (docs/realtime.md): SSE and WebSocket on a record's or a
    collection's path, resumable with ``Last-Event-ID`` within the retention window."""

    sse: bool = True
    websocket: bool = True
    resume: bool = True


@dataclass(frozen=True, slots=True)
class AuthDescription:
    """Sign-in (docs/auth.md): present only when the app has ``auth=True``."""

    enabled: bool
    login: str = "/auth/login"
    refresh: str = "/auth/refresh"
    logout: str = "/auth/logout"
    me: str = "/auth/me"


@dataclass(frozen=True, slots=True)
class ErrorEnvelope:
    """``{"error": {status, code, message, details?}}`` (SPEC section 2), in every protocol."""

    properties: tuple[Property, ...]
    codes: tuple[str, ...] = ERROR_CODES


@dataclass(frozen=True, slots=True)
class ApiDescription:
    """Everything a client generator needs, in a stable order."""

    tables: tuple[TableDescription, ...]
    operations: tuple[Operation, ...]  # RPCs, contract routes and mapped routes
    objects: tuple[ObjectType, ...]
    realtime: RealtimeDescription
    auth: AuthDescription
    error: ErrorEnvelope

    def rpcs(self) -> tuple[Operation, ...]:
        return tuple(op for op in self.operations if op.kind == "rpc")

    def routes(self) -> tuple[Operation, ...]:
        return tuple(op for op in self.operations if op.kind in ("route", "mapped"))


_ENVELOPE = ErrorEnvelope(
    (
        Property("status", Prim("int"), True),
        Property("code", Prim("str"), True),
        Property("message", Prim("str"), True),
        Property("details", Prim("any"), False),
    )
)


def describe_app(app: Any) -> ApiDescription:
    """The description of ``app`` (a ``charter.App``) for client generators."""
    runtimes = dict(app.tables)
    by_class = {id(runtime.cls): name for name, runtime in runtimes.items()}
    namer = TypeNamer(lambda cls: by_class.get(id(cls)))
    namer.reserved.update(runtimes)
    operations = app_operations(app.router.routes, namer)
    tables = []
    for name, runtime in runtimes.items():
        methods = tuple(op for op in operations if op.kind == "method" and op.table == name)
        tables.append(_table(runtime.schema, namer, methods, runtime.cls.__dict__.get("__doc__")))
    others = tuple(op for op in operations if op.kind != "method")
    return ApiDescription(
        tables=tuple(tables),
        operations=others,
        objects=tuple(namer.objects[k] for k in sorted(namer.objects)),
        realtime=RealtimeDescription(),
        auth=AuthDescription(enabled=bool(app.config.auth)),
        error=_ENVELOPE,
    )


def _table(
    schema: TableSchema, namer: TypeNamer, methods: tuple[Operation, ...], doc: str | None
) -> TableDescription:
    record: list[Property] = []
    create: list[Property] = []
    patch: list[Property] = []
    for spec in schema.fields.values():
        tp = namer.convert(spec.type)
        if spec.optional:
            tp = optional(tp)
        if spec.name not in schema.hidden:
            record.append(Property(spec.name, tp, True))
        if spec.info.input:
            required = spec.name in schema.required_on_create or (
                spec.info.primary_key and not schema.generates_key
            )  # an integer key is not generated: a create names it
            create.append(Property(spec.name, tp, required))
            patch.append(Property(spec.name, tp, False))
    key_type = namer.convert(schema.key_type)
    methods = tuple(
        replace(
            op,
            params=tuple(
                replace(p, type=key_type) if p.location == "path" else p for p in op.params
            ),
        )
        for op in methods
    )  # a record's method takes the record's key
    relationships = tuple(
        Relationship(r.name, r.target, r.many) for r in schema.relationships.values()
    )
    return TableDescription(
        name=schema.name,
        primary_key=schema.primary_key,
        key_type=key_type,
        generates_key=schema.generates_key,
        record=tuple(record),
        create=tuple(create),
        patch=tuple(patch),
        relationships=relationships,
        methods=methods,
        subscribe=True,
        description=_first_line(doc),
    )


def _first_line(doc: str | None) -> str | None:
    if not doc:
        return None
    line = doc.strip().splitlines()[0].strip()
    return line or None

"""The OpenAPI paths of a table's REST resource (``web/rest.py``): its operations, those a role
may perform, and the attributes it may read and write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ..runtime.access import TableAccess
from .openapi_components import DEFAULT_ERROR, Schemas, safe

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["table_paths"]

_EVENTS = {"schema": {"type": "string", "description": "Server-Sent Events: one event per message"}}


def _json_body(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema if schema is not None else {}}
    return {
        "required": True,
        "content": {
            "application/json": content,
            "application/msgpack": {"schema": {}},
            "application/cbor": {"schema": {}},
        },
    }


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    return response


def _public_type(runtime: TableRuntime, table: TableAccess | None) -> Any:
    schema = runtime.schema
    fields = [
        (f.name, f.type)
        for f in schema.fields.values()
        if f.name not in runtime.hidden and (table is None or table.sees(f.name))
    ]
    return msgspec.defstruct(f"{schema.name}", fields, kw_only=True)


def _input_type(runtime: TableRuntime, table: TableAccess | None, *, partial: bool) -> Any:
    schema = runtime.schema
    fields = []
    for spec in schema.fields.values():
        if not spec.info.input or (table is not None and table.unwritable([spec.name])):
            continue
        optional = partial or spec.info.primary_key or spec.name not in schema.required_on_create
        fields.append(
            (spec.name, spec.checked_type, msgspec.UNSET)
            if optional
            else (spec.name, spec.checked_type)
        )
    suffix = "Patch" if partial else "Input"
    forbid = schema.options.extra != "allow"
    return msgspec.defstruct(
        f"{schema.name}{suffix}", fields, kw_only=True, forbid_unknown_fields=forbid
    )


def table_paths(
    runtime: TableRuntime, schemas: Schemas, table: TableAccess | None = None
) -> dict[str, Any]:
    """The table's operations (those ``table``'s role may perform; None: all of them)."""
    paths = _all_table_paths(runtime, schemas, table)
    if table is None:
        return paths
    allowed = {
        "get": table.read,
        "head": table.read,
        "post": table.insert,
        "put": table.insert or table.update,
        "patch": table.update,
        "delete": table.delete,
    }
    kept: dict[str, Any] = {}
    for path, item in paths.items():
        rights = allowed
        if path.endswith("{id}"):  # POST to a record publishes: the update right
            rights = {**allowed, "post": table.update}
        operations = {k: v for k, v in item.items() if k == "parameters" or rights.get(k)}
        if set(operations) - {"parameters"}:
            kept[path] = operations
    return kept


def _all_table_paths(
    runtime: TableRuntime, schemas: Schemas, table: TableAccess | None
) -> dict[str, Any]:
    name = runtime.name
    tag = [name]
    public = _public_type(runtime, table)
    record: dict[str, Any] = {}
    schemas.ref(record, "schema", public)
    items: dict[str, Any] = {}
    schemas.ref(items, "", public)
    create: dict[str, Any] = {}
    schemas.ref(create, "schema", _input_type(runtime, table, partial=False))
    patch: dict[str, Any] = {}
    schemas.ref(patch, "schema", _input_type(runtime, table, partial=True))
    record_ref = record
    key_param = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer"}
        if runtime.schema.key_type is int
        else {"type": "string", "minLength": 1},
    }
    query_params = [
        {"name": f, "in": "query", "required": False, "schema": {"type": "string"},
         "description": f"condition on {f} (value or =op=value)"}
        for f in runtime.schema.fields
        if f not in runtime.hidden and (table is None or table.sees(f))
    ]  # fmt: skip
    record_response = {
        "description": "the record; with Accept: text/event-stream, a subscription to it",
        "headers": {"ETag": {"schema": {"type": "string"}}},
        "content": {"application/json": record_ref, "text/event-stream": _EVENTS},
    }
    written = {"204": {"description": "written"}, "200": record_response, "default": DEFAULT_ERROR}
    paths: dict[str, Any] = {
        f"/{name}": {
            "get": {
                "tags": tag,
                "summary": f"Describe {name} (JSON Schema)",
                "operationId": f"{safe(name)}_describe",
                "responses": {
                    "200": _ok("JSON Schema", {"type": "object"}),
                    "default": DEFAULT_ERROR,
                },
            }
        },
        f"/{name}/": {
            "get": {
                "tags": tag,
                "summary": f"Search {name}",
                "operationId": f"{safe(name)}_search",
                "parameters": query_params,
                "responses": {
                    "200": {
                        "description": "matching records; with Accept: text/event-stream, a "
                        "subscription to them (docs/realtime.md)",
                        "content": {
                            "application/json": {"schema": {"type": "array", "items": items}},
                            "text/event-stream": _EVENTS,
                        },
                    },
                    "default": DEFAULT_ERROR,
                },
            },
            "post": {
                "tags": tag,
                "summary": f"Create a {name}",
                "operationId": f"{safe(name)}_create",
                "requestBody": {"required": True, "content": {"application/json": create}},
                "responses": {
                    "201": {
                        "description": "created",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {"application/json": record_ref},
                    },
                    "default": DEFAULT_ERROR,
                },
            },
            "delete": {
                "tags": tag,
                "summary": f"Delete every {name} matching the query",
                "operationId": f"{safe(name)}_delete_matching",
                "parameters": query_params,
                "responses": {
                    "200": _ok("how many were deleted", {"type": "integer"}),
                    "default": DEFAULT_ERROR,
                },
            },
        },
        f"/{name}/{{id}}": {
            "parameters": [key_param],
            "get": {
                "tags": tag,
                "summary": f"Get a {name}",
                "operationId": f"{safe(name)}_get",
                "responses": {
                    "200": record_response,
                    "304": {"description": "not modified"},
                    "default": DEFAULT_ERROR,
                },
            },
            "put": {
                "tags": tag,
                "summary": f"Replace (or create) a {name}",
                "operationId": f"{safe(name)}_put",
                "requestBody": {"required": True, "content": {"application/json": create}},
                "responses": written,
            },
            "patch": {
                "tags": tag,
                "summary": f"Update some properties of a {name}",
                "operationId": f"{safe(name)}_patch",
                "requestBody": {"required": True, "content": {"application/json": patch}},
                "responses": written,
            },
            "post": {
                "tags": tag,
                "summary": f"Publish a message to the subscribers of a {name}",
                "operationId": f"{safe(name)}_publish",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {}}},
                },
                "responses": {"204": {"description": "published"}, "default": DEFAULT_ERROR},
            },
            "delete": {
                "tags": tag,
                "summary": f"Delete a {name}",
                "operationId": f"{safe(name)}_delete",
                "responses": {"204": {"description": "deleted"}, "default": DEFAULT_ERROR},
            },
        },
    }
    if runtime.schema.options.source is not None:
        _upstream_responses(paths[f"/{name}/{{id}}"])
    return paths


def _upstream_responses(item: dict[str, Any]) -> None:
    """A caching table's record operations reach its source (a miss, an expired record, a
    write through): they may answer 502 or 504 (docs/caching.md)."""
    for verb in ("get", "put", "patch", "delete"):
        operation = item[verb]
        operation["responses"] = {
            **operation["responses"],
            "502": {**DEFAULT_ERROR, "description": "UPSTREAM_FAILED: the source failed"},
            "504": {**DEFAULT_ERROR, "description": "UPSTREAM_TIMEOUT: past source_timeout"},
        }

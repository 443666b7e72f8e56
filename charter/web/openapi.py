"""The OpenAPI 3.1 document of an app: tables, model methods, RPCs and contract routes.

Each role gets its own document (``OpenAPIEndpoint``, cached per role): only the operations it
may perform, and of each table only the attributes it may read (and write, in request bodies).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import HttpError
from ..http.codecs import JSON
from ..http.request import Request
from ..http.response import Response
from ..http.routing import Route
from ..model.roles import User
from ..runtime.access import Access, TableAccess
from ..runtime.context import RequestContext, current_context
from ..runtime.grants import require
from ..schema.contract_types import schema_json
from ..schema.describe import describe
from ..schema.signature import BODY, QUERY, Signature

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["OpenAPIEndpoint", "build_openapi"]

REF = "#/components/schemas/{name}"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_DEFAULT_ERROR = {
    "description": "an error, in the envelope every Charter error uses",
    "content": {"application/json": {"schema": _ERROR_REF}},
}


class _Schemas:
    """Collects types, then renders them all at once into components."""

    def __init__(self) -> None:
        self.types: list[Any] = []
        self.slots: list[tuple[dict[str, Any], str, int]] = []

    def ref(self, target: dict[str, Any], key: str, tp: Any) -> None:
        """Set ``target[key]`` to the schema of ``tp`` (``key=""``: fill ``target`` itself)."""
        self.slots.append((target, key, len(self.types)))
        self.types.append(tp)

    def render(self, components: dict[str, Any]) -> None:
        if not self.types:
            return
        schemas, defs = msgspec.json.schema_components(self.types, ref_template=REF)
        components.update(defs)
        for target, key, index in self.slots:
            if key:
                target[key] = schemas[index]
            else:
                target.update(schemas[index])


_EVENTS = {"schema": {"type": "string", "description": "Server-Sent Events: one event per message"}}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


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


def _table_paths(
    runtime: TableRuntime, schemas: _Schemas, table: TableAccess | None = None
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
    runtime: TableRuntime, schemas: _Schemas, table: TableAccess | None
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
    written = {"204": {"description": "written"}, "200": record_response, "default": _DEFAULT_ERROR}
    paths: dict[str, Any] = {
        f"/{name}": {
            "get": {
                "tags": tag,
                "summary": f"Describe {name} (JSON Schema)",
                "operationId": f"{_safe(name)}_describe",
                "responses": {
                    "200": _ok("JSON Schema", {"type": "object"}),
                    "default": _DEFAULT_ERROR,
                },
            }
        },
        f"/{name}/": {
            "get": {
                "tags": tag,
                "summary": f"Search {name}",
                "operationId": f"{_safe(name)}_search",
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
                    "default": _DEFAULT_ERROR,
                },
            },
            "post": {
                "tags": tag,
                "summary": f"Create a {name}",
                "operationId": f"{_safe(name)}_create",
                "requestBody": {"required": True, "content": {"application/json": create}},
                "responses": {
                    "201": {
                        "description": "created",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {"application/json": record_ref},
                    },
                    "default": _DEFAULT_ERROR,
                },
            },
            "delete": {
                "tags": tag,
                "summary": f"Delete every {name} matching the query",
                "operationId": f"{_safe(name)}_delete_matching",
                "parameters": query_params,
                "responses": {
                    "200": _ok("how many were deleted", {"type": "integer"}),
                    "default": _DEFAULT_ERROR,
                },
            },
        },
        f"/{name}/{{id}}": {
            "parameters": [key_param],
            "get": {
                "tags": tag,
                "summary": f"Get a {name}",
                "operationId": f"{_safe(name)}_get",
                "responses": {
                    "200": record_response,
                    "304": {"description": "not modified"},
                    "default": _DEFAULT_ERROR,
                },
            },
            "put": {
                "tags": tag,
                "summary": f"Replace (or create) a {name}",
                "operationId": f"{_safe(name)}_put",
                "requestBody": {"required": True, "content": {"application/json": create}},
                "responses": written,
            },
            "patch": {
                "tags": tag,
                "summary": f"Update some properties of a {name}",
                "operationId": f"{_safe(name)}_patch",
                "requestBody": {"required": True, "content": {"application/json": patch}},
                "responses": written,
            },
            "post": {
                "tags": tag,
                "summary": f"Publish a message to the subscribers of a {name}",
                "operationId": f"{_safe(name)}_publish",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {}}},
                },
                "responses": {"204": {"description": "published"}, "default": _DEFAULT_ERROR},
            },
            "delete": {
                "tags": tag,
                "summary": f"Delete a {name}",
                "operationId": f"{_safe(name)}_delete",
                "responses": {"204": {"description": "deleted"}, "default": _DEFAULT_ERROR},
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
            "502": {**_DEFAULT_ERROR, "description": "UPSTREAM_FAILED: the source failed"},
            "504": {**_DEFAULT_ERROR, "description": "UPSTREAM_TIMEOUT: past source_timeout"},
        }


def _signature_operation(
    operation_id: str, signature: Signature, schemas: _Schemas, *, tag: str, verb: str
) -> dict[str, Any]:
    operation: dict[str, Any] = {"tags": [tag], "operationId": _safe(operation_id)}
    params = []
    for param in signature.params:
        if param.source == QUERY:
            entry: dict[str, Any] = {"name": param.name, "in": "query", "required": param.required}
            schemas.ref(entry, "schema", param.checked)
            params.append(entry)
    if params:
        operation["parameters"] = params
    body = [p for p in signature.params if p.source == BODY]
    if body and verb != "get":
        content: dict[str, Any] = {}
        schemas.ref(content, "schema", signature.body_struct)
        operation["requestBody"] = {
            "required": any(p.required for p in body),
            "content": {"application/json": content},
        }
    elif signature.stream_param is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    responses: dict[str, Any] = {"default": _DEFAULT_ERROR}
    if signature.return_kind == "stream":
        responses["200"] = {
            "description": "a byte stream",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    elif signature.return_kind == "none":
        responses["204"] = {"description": "done"}
    else:
        ok: dict[str, Any] = {}
        if signature.result_type is not None:
            schemas.ref(ok, "schema", signature.result_type)
        responses["200"] = {"description": "the result", "content": {"application/json": ok}}
        responses["204"] = {"description": "no result"}
        if signature.return_kind == "result":
            responses["2XX"] = {"description": "the result, with the status the method chose"}
    operation["responses"] = responses
    return operation


def build_openapi(
    tables: Iterable[TableRuntime],
    routes: Iterable[Route],
    access: Access | None = None,
    *,
    signed_in: bool = True,
    auth: bool = False,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of an app's tables and routes; with a restricted ``access``,
    only what its role may do (``signed_in``: whether its requests are signed in). With
    ``auth`` the ways to sign in are declared; without it there are none to declare."""
    if access is not None and access.unrestricted:
        access = None
    schemas = _Schemas()
    paths: dict[str, Any] = {}
    for runtime in tables:
        table = access.table(runtime.name) if access is not None else None
        if table is not None and not (table.read or table.insert or table.update or table.delete):
            continue
        paths.update(_table_paths(runtime, schemas, table))
    tables = list(tables)
    by_name = {runtime.name: runtime for runtime in tables}
    for route in routes:
        signature = route.meta.get("signature")
        if route.kind == "mapped":
            if access is None or _permitted(route, access, signed_in):
                path = re.sub(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(?::path)?\}", r"{\1}", route.path)
                operation = _mapped_operation(route, by_name, schemas)
                paths.setdefault(path, {})[route.method.lower()] = operation
            continue
        if route.kind not in ("method", "rpc", "route") or signature is None:
            continue
        if access is not None and not _permitted(route, access, signed_in):
            continue
        verb = route.method.lower()
        path = re.sub(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(?::path)?\}", r"{\1}", route.path)
        tag = route.meta.get("table") or ("rpc" if route.kind == "rpc" else "routes")
        operation = _signature_operation(route.name, signature, schemas, tag=tag, verb=verb)
        if route.kind == "method" and route.meta["method"].declared:
            operation["x-egroup"] = route.meta.get("egroup")
            operation["x-perm"] = route.meta.get("perm")
        if route.kind == "rpc":
            operation["x-egroup"] = route.meta.get("egroup")
            operation["x-perm"] = route.meta.get("perm")
            body = operation.get("requestBody")
            if body is not None:
                content = body["content"]["application/json"]
                content["schema"] = {"oneOf": [content.get("schema", {}), {"type": "array"}]}
        if route.kind == "route":
            _apply_contract(operation, route.meta.get("contract"), schemas)
        names = re.findall(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}", path)
        if names:
            operation["parameters"] = [
                *[
                    {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                    for n in names
                ],
                *[p for p in operation.get("parameters", []) if p["name"] not in names],
            ]
        paths.setdefault(path, {})[verb] = operation
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    schemas.render(components)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Charter API", "version": "1.0.0"},
        "paths": paths,
        "components": {"schemas": components},
    }
    if auth:
        document["components"]["securitySchemes"] = SECURITY_SCHEMES
        # Any one of the schemes, or none: a request not signed in acts as ``anonymous``.
        document["security"] = [{name: []} for name in SECURITY_SCHEMES] + [{}]
    return document


SECURITY_SCHEMES: dict[str, Any] = {
    "basic": {"type": "http", "scheme": "basic"},
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "an access token from POST /auth/login or /auth/refresh",
    },
    "cookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "charter_session",
        "description": "a browser session from POST /auth/login; unsafe methods also need the "
        "x-csrf-token header",
    },
}
"""How a request signs in, as OpenAPI declares it (with ``App(auth=True)``)."""


def _permitted(route: Route, access: Access, signed_in: bool) -> bool:
    """Whether ``access``'s role may call ``route`` (as its requests are, or are not, signed
    in): the check each endpoint makes, asked of a stand-in request."""
    context = RequestContext(auth=True)
    context.role = access.role
    role = getattr(access.role, "name", "") or ""
    context.user = User("", "", role) if signed_in else None
    meta = route.meta
    try:
        if route.kind == "method":
            spec = meta["method"]
            access.require_method(
                context, meta["table"], egroup=spec.egroup, perm=spec.perm, right=spec.table_right
            )
        elif route.kind == "rpc":
            require(context, egroup=meta.get("egroup"), perm=meta.get("perm"))
        elif route.kind == "mapped":
            require(context, roles=meta.get("roles"))
            if not meta["privileged"]:  # every step runs as the caller: each right is needed
                for step in meta["mapped"].flow.operations:
                    right = step.right
                    if step.op == "upsert" and access.table(step.table).insert:
                        right = "insert"
                    access.require(context, step.table, right)
        else:
            require(context, roles=meta.get("roles"))
    except HttpError:
        return False
    return True


class OpenAPIEndpoint:
    """``GET /openapi.json``: the document of the requesting role, built once per role."""

    def __init__(self, tables: Any, routes: Any, *, auth: bool = False) -> None:
        self.tables = tables  # the app's table runtimes by name
        self.routes = routes  # a callable giving the app's routes
        self.auth = auth
        self._documents: dict[Any, bytes] = {}

    def reset(self) -> None:
        """Forget the documents (a route was added)."""
        self._documents.clear()

    def _access(self, context: RequestContext | None) -> Access | None:
        runtimes = list(self.tables.values())
        if not runtimes or context is None:
            return None
        access: Access = runtimes[0].access(context)
        return None if access.unrestricted else access

    async def __call__(self, request: Request) -> Response:
        context = current_context()
        access = self._access(context)
        signed_in = context is not None and context.user is not None
        key = None if access is None else (access.generation, signed_in)
        document = self._documents.get(key)
        if document is None:
            if len(self._documents) > 256:
                self._documents.clear()
            built = build_openapi(
                self.tables.values(), self.routes(), access, signed_in=signed_in, auth=self.auth
            )
            document = self._documents[key] = JSON.encode(built)
        return Response(200, document, {"content-type": "application/json"})


def _contract_schema(schema: Any, schemas: _Schemas) -> dict[str, Any]:
    """A contract schema for OpenAPI: JSON Schema dicts as given, types as components."""
    if isinstance(schema, dict) or hasattr(schema, "json_schema"):
        return schema_json(schema)
    holder: dict[str, Any] = {}
    schemas.ref(holder, "", schema)
    return holder


def _apply_contract(operation: dict[str, Any], contract: Any, schemas: _Schemas) -> None:
    if contract is None:
        return
    operation.pop("requestBody", None)
    if contract.payload is not None:
        body = _contract_schema(contract.payload, schemas)
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if contract.query is not None:
        schema = schema_json(contract.query)
        props = schema.get("properties", {})
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            props = schema.get("$defs", {}).get(name, {}).get("properties", {})
        required = set(schema.get("required", ()))
        operation["parameters"] = [
            {
                "name": k,
                "in": "query",
                "required": k in required,
                "schema": {"type": v.get("type", "string")} if isinstance(v, dict) else {},
            }
            for k, v in props.items()
        ]
    shapes = contract.response_shapes()
    if shapes:
        options = []
        for shape in shapes:
            rendered = _contract_schema(shape, schemas)
            options.append(rendered)
        operation["responses"] = {
            "200": {
                "description": "the result",
                "content": {"application/json": {"schema": {"oneOf": options}}},
            },
            "default": _DEFAULT_ERROR,
        }
    if contract.roles is not None:
        operation["x-roles"] = contract.roles


def _mapped_operation(
    route: Route, tables: dict[str, TableRuntime], schemas: _Schemas
) -> dict[str, Any]:
    """A ``map_route``: its body schema (when ``validate`` is one), its success response (the
    entity's attributes after ``pick``/``omit`` when it names one and does not transform it)
    and its steps (``x-operations``)."""
    declared = route.meta["mapped"]
    flow = declared.flow
    operation: dict[str, Any] = {"tags": ["routes"], "operationId": _safe(route.name)}
    if declared.description:
        operation["description"] = declared.description
    validate = declared.validate
    if isinstance(validate, type | dict):
        body = _contract_schema(validate, schemas)
        content = {"application/json": {"schema": body}}
        operation["requestBody"] = {"required": True, "content": content}
    elif route.method not in ("GET", "DELETE"):
        operation["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    result: dict[str, Any] = {}
    spec = declared.response
    entity = spec.get("entity")
    if entity is not None and spec.get("transform") is None:
        step = next(op for op in flow.operations if op.name == entity)
        described = describe(tables[step.table].schema) if step.table in tables else {}
        props = described.get("properties", {})
        if props and "$defs" not in described and step.op != "list":
            pick, omit = spec.get("pick"), spec.get("omit") or ()
            kept = {k: v for k, v in props.items() if (pick is None or k in pick) and k not in omit}
            result = {"type": "object", "properties": kept}
    names = re.findall(r"\{([a-zA-Z_][a-zA-Z0-9_]*)", route.path)
    if names:
        operation["parameters"] = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
        ]
    status = str(route.handler.status) if hasattr(route.handler, "status") else "200"
    operation["responses"] = {
        status: {"description": "the result", "content": {"application/json": {"schema": result}}},
        "204": {"description": "no result"},
        "default": _DEFAULT_ERROR,
    }
    operation["x-operations"] = [
        {
            "name": op.name,
            "table": op.table,
            "operation": op.op,
            "conditional": op.condition is not None,
        }
        for op in flow.operations
    ]
    operation["x-atomic"] = flow.atomic
    operation["x-privileged"] = declared.privileged
    if declared.roles is not None:
        operation["x-roles"] = declared.roles
    return operation

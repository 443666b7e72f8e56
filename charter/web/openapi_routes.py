"""The OpenAPI operations of an app's routes: model methods and RPCs (from their signatures),
contract routes (from their contracts) and mapped routes (``map_route``, from their steps).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..http.routing import Route
from ..schema.contract_types import schema_json
from ..schema.describe import describe
from ..schema.signature import BODY, QUERY, Signature
from .openapi_components import DEFAULT_ERROR, Schemas, safe

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["apply_contract", "mapped_operation", "signature_operation"]


def signature_operation(
    operation_id: str, signature: Signature, schemas: Schemas, *, tag: str, verb: str
) -> dict[str, Any]:
    operation: dict[str, Any] = {"tags": [tag], "operationId": safe(operation_id)}
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
    responses: dict[str, Any] = {"default": DEFAULT_ERROR}
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


def _contract_schema(schema: Any, schemas: Schemas) -> dict[str, Any]:
    """A contract schema for OpenAPI: JSON Schema dicts as given, types as components."""
    if isinstance(schema, dict) or hasattr(schema, "json_schema"):
        return schema_json(schema)
    holder: dict[str, Any] = {}
    schemas.ref(holder, "", schema)
    return holder


def apply_contract(operation: dict[str, Any], contract: Any, schemas: Schemas) -> None:
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
            "default": DEFAULT_ERROR,
        }
    if contract.roles is not None:
        operation["x-roles"] = contract.roles


def mapped_operation(
    route: Route, tables: dict[str, TableRuntime], schemas: Schemas
) -> dict[str, Any]:
    """A ``map_route``: its body schema (when ``validate`` is one), its success response (the
    entity's attributes after ``pick``/``omit`` when it names one and does not transform it)
    and its steps (``x-operations``)."""
    declared = route.meta["mapped"]
    flow = declared.flow
    operation: dict[str, Any] = {"tags": ["routes"], "operationId": safe(route.name)}
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
        "default": DEFAULT_ERROR,
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

"""An app's callable operations for client generators: model methods, RPC functions,
contract routes and mapped routes, each with where its arguments go and what it answers.

Read from the routes the app built (``route.meta``: the compiled signature, the contract, the
``map_route`` declaration), so a client calls exactly what the server serves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..model.contracts import Contract, ErrorSchema
from ..schema.signature import BODY, QUERY, STREAM, Param, Signature
from .types import DictOf, Prim, Ref, TypeNamer, TypeRef, UnionOf

if TYPE_CHECKING:
    from ..http.routing import Route

__all__ = ["Operation", "Parameter", "app_operations"]

Location = Literal["path", "query", "body", "payload"]
"""``body``: one property of a JSON object body; ``payload``: the whole body."""


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: TypeRef
    required: bool
    location: Location


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint a client calls.

    ``kind``: ``method`` (a table's model method; ``static`` or on a record, whose key is the
    path parameter ``id``), ``rpc`` (``POST /rpc/{name}``; ``service`` names its class),
    ``route`` (a ``@route``, with its contract) or ``mapped`` (a ``map_route``).
    ``result_kind``: ``value`` (JSON, typed by ``result``), ``none`` (204) or ``stream`` (bytes).
    """

    kind: Literal["method", "rpc", "route", "mapped"]
    name: str
    http_method: str
    path: str  # with ``{name}`` placeholders
    params: tuple[Parameter, ...]
    result: TypeRef
    result_kind: Literal["value", "none", "stream"]
    table: str | None = None
    static: bool = False
    service: str | None = None
    egroup: str | None = None
    perm: int | None = None
    roles: Any = None
    description: str | None = None


_PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(?::path)?\}")


def app_operations(routes: Iterable[Route], namer: TypeNamer) -> list[Operation]:
    """The operations of ``routes`` (an app's ``router.routes``) in a stable order."""
    out = []
    for route in routes:
        if route.kind in ("method", "rpc"):
            out.append(_signature_operation(route, namer))
        elif route.kind == "route" and route.meta.get("signature") is not None:
            out.append(_contract_operation(route, namer))
        elif route.kind == "mapped":
            out.append(_mapped_operation(route, namer))
    order = {"method": 0, "rpc": 1, "route": 2, "mapped": 3}
    return sorted(out, key=lambda op: (order[op.kind], op.table or "", op.name, op.http_method))


def _path(route: Route) -> str:
    return _PLACEHOLDER.sub(r"{\1}", route.path)


def _doc(fn: Any) -> str | None:
    doc = getattr(fn, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return None
    return doc.strip().splitlines()[0].strip()


def _params(signature: Signature, namer: TypeNamer, path_names: list[str]) -> list[Parameter]:
    params = []
    for param in signature.params:
        if param.name in path_names:
            continue
        location: Location
        if param.source == STREAM:
            params.append(Parameter(param.name, Prim("stream"), True, "payload"))
            continue
        if param.source == BODY:
            location = "body"
        elif param.source == QUERY:
            location = "query"
        else:
            continue
        params.append(Parameter(param.name, _param_type(param, namer), param.required, location))
    return params


def _param_type(param: Param, namer: TypeNamer) -> TypeRef:
    tp = namer.convert(param.annotation)
    if isinstance(tp, Ref) and tp.kind == "record":
        return Ref(tp.name, "create")  # a table parameter is validated as its create input
    return tp


def _result(signature: Signature, namer: TypeNamer) -> tuple[TypeRef, Any]:
    kind = signature.return_kind
    if kind == "none":
        return Prim("none"), "none"
    if kind == "stream":
        return Prim("stream"), "stream"
    return namer.convert(signature.returns), "value"


def _path_params(route: Route, signature: Signature | None, namer: TypeNamer) -> list[Parameter]:
    names = _PLACEHOLDER.findall(route.path)
    declared = {p.name: p for p in signature.params} if signature is not None else {}
    out = []
    for name in names:
        param = declared.get(name)
        tp = namer.convert(param.annotation) if param is not None else Prim("str")
        out.append(Parameter(name, tp, True, "path"))
    return out


def _signature_operation(route: Route, namer: TypeNamer) -> Operation:
    signature: Signature = route.meta["signature"]
    path_params = _path_params(route, None, namer)
    if route.kind == "method":
        spec = route.meta["method"]
        if path_params:  # the record's key: typed by the table's key
            path_params = [Parameter("id", Prim("any"), True, "path")]
        params = [*path_params, *_params(signature, namer, ["id"])]
        result, result_kind = _result(signature, namer)
        return Operation(
            kind="method", name=spec.name, http_method=route.method, path=_path(route),
            params=tuple(params), result=result, result_kind=result_kind,
            table=route.meta["table"], static=bool(route.meta["static"]), egroup=spec.egroup,
            perm=None if spec.perm is None else int(spec.perm), description=_doc(spec.fn),
        )  # fmt: skip
    result, result_kind = _result(signature, namer)
    perm = route.meta.get("perm")
    return Operation(
        kind="rpc", name=route.name, http_method="POST", path=_path(route),
        params=tuple(_params(signature, namer, [])), result=result, result_kind=result_kind,
        service=route.meta.get("service"), egroup=route.meta.get("egroup"),
        perm=None if perm is None else int(perm), description=_doc(_endpoint_fn(route)),
    )  # fmt: skip


def _endpoint_fn(route: Route) -> Any:
    return getattr(route.handler, "fn", None) or getattr(route.handler, "spec", None)


def _schema_type(schema: Any, namer: TypeNamer, name: str) -> TypeRef:
    if isinstance(schema, dict):
        return namer.convert_schema(schema, name)
    return namer.convert(schema)


def _contract_operation(route: Route, namer: TypeNamer) -> Operation:
    signature: Signature = route.meta["signature"]
    contract: Contract = route.meta.get("contract") or Contract()
    params = _path_params(route, signature, namer)
    taken = {p.name: p for p in signature.params}
    base = _camel(route.name)
    if contract.payload is not None:
        body = _schema_type(contract.payload, namer, f"{base}Payload")
        params.append(Parameter("payload", body, True, "payload"))
    elif "payload" in taken:
        param = taken["payload"]
        params.append(
            Parameter("payload", namer.convert(param.annotation), param.required, "payload")
        )
    query: TypeRef | None = None
    if contract.query is not None:
        query = _schema_type(contract.query, namer, f"{base}Query")
    elif "query" in taken:
        query = namer.convert(taken["query"].annotation)
    if isinstance(query, Ref) and query.name in namer.objects:
        for prop in namer.objects[query.name].properties:
            params.append(Parameter(prop.name, prop.type, prop.required, "query"))
    elif query is not None:
        params.append(Parameter("query", DictOf(Prim("any")), False, "query"))
    shapes = [s for s in contract.response_shapes() if not isinstance(s, ErrorSchema)]
    result: TypeRef
    if shapes:
        options = [_schema_type(s, namer, f"{base}Response") for s in shapes]
        result = options[0] if len(options) == 1 else UnionOf(tuple(options))
        result_kind: Any = "value"
    else:
        result, result_kind = _result(signature, namer)
    return Operation(
        kind="route", name=route.name, http_method=route.method, path=_path(route),
        params=tuple(params), result=result, result_kind=result_kind, roles=contract.roles,
        description=_doc(getattr(route.handler, "fn", None)),
    )  # fmt: skip


def _mapped_operation(route: Route, namer: TypeNamer) -> Operation:
    declared = route.meta["mapped"]
    params = _path_params(route, None, namer)
    validate = declared.validate
    if isinstance(validate, type | dict):
        body = _schema_type(validate, namer, f"{_camel(route.name)}Payload")
        params.append(Parameter("payload", body, True, "payload"))
    elif route.method not in ("GET", "DELETE"):
        params.append(Parameter("payload", DictOf(Prim("any")), False, "payload"))
    return Operation(
        kind="mapped", name=route.name, http_method=route.method, path=_path(route),
        params=tuple(params), result=Prim("any"), result_kind="value", roles=declared.roles,
        description=declared.description,
    )  # fmt: skip


def _camel(name: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+|_", name)
    return "".join(p[:1].upper() + p[1:] for p in parts if p) or "Route"

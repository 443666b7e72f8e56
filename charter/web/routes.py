"""Build the routes of model methods, RPC services and contract routes when the app is built."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from ..config import Config
from ..errors import CharterError, HttpError, ValidationError
from ..http.codecs import read_body
from ..http.request import Request
from ..http.response import Response
from ..http.routing import Route
from ..model.contracts import Contract, RouteSpec
from ..model.methods import MethodSpec, RpcSpec, Service
from ..runtime.context import RequestContext, current_context
from ..runtime.grants import require
from ..schema.contract_types import schema_type
from ..schema.signature import INJECT, Param, Signature, compile_signature, convert_path
from ..schema.validation import InputError, details_from_message, validate_object
from .dispatch import error_response
from .endpoints import Endpoint

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = [
    "ContractEndpoint",
    "MethodEndpoint",
    "RpcEndpoint",
    "contract_route",
    "service_routes",
    "table_method_routes",
]

INJECTABLE = {RequestContext: "context", Request: "request"}  # types a signature may ask for
_INJECTED_NAMES = ("ctx", "context", "request")


def _tables(tables: Mapping[str, TableRuntime]) -> Any:
    def record_type(cls: type) -> Any:
        runtime = tables.get(getattr(cls, "__charter_name__", ""))
        if runtime is None:
            raise CharterError(f"{cls.__name__} is used in a signature but is not in the app")
        return runtime.schema.create_type

    return record_type


def table_method_routes(tables: Mapping[str, TableRuntime], runtime: TableRuntime) -> list[Route]:
    """Routes for a table's ``@get/@post/...`` methods: static and per record."""
    routes = []
    base = "/" + quote(runtime.name)
    for spec in runtime.cls.__charter_methods__.values():
        routes.append(_method_route(tables, runtime, spec, base))
    return routes


def _method_route(
    tables: Mapping[str, TableRuntime], runtime: TableRuntime, spec: MethodSpec, base: str
) -> Route:
    fn = spec.fn
    # Looked up through the MRO: a classmethod inherited from a parent table is one too.
    is_classmethod = isinstance(inspect.getattr_static(runtime.cls, spec.name, None), classmethod)
    skip_first = not spec.static or is_classmethod
    signature = compile_signature(
        fn,
        skip_first=skip_first,
        query_params=spec.verb == "GET",
        inject=INJECTABLE,
        tables=_tables(tables),
    )
    name = f"{runtime.name}.{spec.name}"
    meta: dict[str, Any] = {
        "table": runtime.name,
        "static": spec.static,
        "signature": signature,
        "method": spec,
        "egroup": spec.egroup,  # (middleware filters on it, as on an RPC's)
        "perm": spec.perm,
    }
    if spec.static:
        bound = (lambda request, path: _const(runtime.cls)) if is_classmethod else None
        endpoint = MethodEndpoint(runtime, spec, fn, signature, name, bound=bound, meta=meta)
        return Route(spec.verb, f"{base}/{spec.name}", endpoint, name, "method", meta)

    write = spec.verb != "GET"

    async def load(request: Request, path: dict[str, str]) -> Any:
        # The record as the caller may reach it: its read rule (and write rule, unless the
        # method is a GET) apply; the method itself then runs as server code.
        return await runtime.load_readable(path["id"], current_context(), write=write)

    endpoint = MethodEndpoint(runtime, spec, fn, signature, name, bound=load, meta=meta)
    return Route(spec.verb, f"{base}/{{id}}/{spec.name}", endpoint, name, "method", meta)


class MethodEndpoint(Endpoint):
    """A table's model method: who may call it is checked before its arguments are read."""

    def __init__(self, runtime: TableRuntime, spec: MethodSpec, *args: Any, **kwargs: Any) -> None:
        self.runtime = runtime
        self.spec = spec
        super().__init__(*args, **kwargs)

    async def arguments(self, request: Request, path: dict[str, str]) -> dict[str, Any]:
        context = current_context()
        if context is not None:
            spec = self.spec
            self.runtime.access(context).require_method(
                context, self.runtime.name, egroup=spec.egroup, perm=spec.perm,
                right=spec.table_right,
            )  # fmt: skip
        return await super().arguments(request, path)


async def _const(value: Any) -> Any:
    return value


def service_routes(
    tables: Mapping[str, TableRuntime], instance: Service, existing: Iterable[Route]
) -> list[Route]:
    """``POST /rpc/{name}`` for every ``@rpc`` method of a service instance (``existing``: the
    routes already declared, where another service may have taken a name)."""
    service_name = type(instance).__name__
    declared = {r.name: r.meta.get("service") for r in existing if r.kind == "rpc"}
    routes = []
    for spec in type(instance).rpc_methods():
        if spec.name in declared:
            raise CharterError(
                f"rpc {spec.name!r} is declared by both {declared[spec.name]} and {service_name}"
            )
        route = _rpc_route(tables, instance, spec)
        route.meta["service"] = service_name
        routes.append(route)
    return routes


def _rpc_route(tables: Mapping[str, TableRuntime], instance: Service, spec: RpcSpec) -> Route:
    signature = compile_signature(
        spec.fn, skip_first=True, inject=INJECTABLE, tables=_tables(tables)
    )
    meta: dict[str, Any] = {"egroup": spec.egroup, "perm": spec.perm, "signature": signature}
    endpoint = RpcEndpoint(spec, signature, instance, meta=meta)
    return Route("POST", f"/rpc/{spec.name}", endpoint, spec.name, "rpc", meta)


class RpcEndpoint(Endpoint):
    """An ``@rpc`` method: the caller's egroup grant is checked before its arguments are read."""

    def __init__(
        self, spec: RpcSpec, signature: Signature, instance: Service, meta: dict[str, Any]
    ) -> None:
        self.spec = spec

        async def bound(request: Request, path: dict[str, str]) -> Any:
            return instance

        super().__init__(spec.fn, signature, spec.name, bound=bound, meta=meta)

    async def arguments(self, request: Request, path: dict[str, str]) -> dict[str, Any]:
        context = current_context()
        if context is not None:
            context.egroup = self.spec.egroup
        require(context, egroup=self.spec.egroup, perm=self.spec.perm)
        return await super().arguments(request, path)


class ContractEndpoint(Endpoint):
    """A ``@route`` handler: payload and query checked against its contract."""

    def __init__(
        self, tables: Mapping[str, TableRuntime], config: Config, spec: RouteSpec, **kwargs: Any
    ) -> None:
        contract = spec.contract or Contract()
        names = set(_path_names(spec.path))
        signature = compile_signature(
            spec.fn, inject=INJECTABLE, tables=_tables(tables), path_params=frozenset(names)
        )
        shapes = contract.response_shapes()
        self.config = config
        self.contract = contract
        self.payload_type = (
            schema_type(contract.payload, f"{spec.name}Payload") if contract.payload else None
        )
        self.query_type = (
            schema_type(contract.query, f"{spec.name}Query") if contract.query else None
        )
        self.shapes = [schema_type(s, f"{spec.name}Response{i}") for i, s in enumerate(shapes)]
        self.takes = {p.name for p in signature.params}
        self.query_lists = _list_fields(self.query_type)
        given = names | {"payload", "query", *_INJECTED_NAMES}
        for param in signature.params:
            if param.name not in given and param.source != INJECT and param.required:
                raise CharterError(
                    f"route {spec.name}: parameter {param.name!r} is not payload, query, a path "
                    "parameter, a RequestContext or a Request"
                )
        super().__init__(
            spec.fn,
            signature,
            spec.name,
            result_types=self.shapes or None,
            meta=kwargs.get("meta"),
        )

    async def arguments(self, request: Request, path: dict[str, str]) -> dict[str, Any]:
        require(current_context(), roles=self.contract.roles)
        kwargs: dict[str, Any] = {}
        if "payload" in self.takes or self.payload_type is not None:
            body = await request.body()
            content_type = request.header("content-type")
            value = read_body(content_type, body, self._payload_types) if body else None
            payload = self._payload(value)
            if "payload" in self.takes:
                kwargs["payload"] = payload
        if self.query_type is not None or "query" in self.takes:
            query = self._query(request.query)
            if "query" in self.takes:
                kwargs["query"] = query
        for param in self.signature.params:
            if param.name in path:
                kwargs[param.name] = _path_value(param, path[param.name])
            elif param.name in ("ctx", "context") or param.annotation is RequestContext:
                kwargs[param.name] = current_context()
            elif param.name == "request" or param.annotation is Request:
                kwargs[param.name] = request
        return kwargs

    def _payload_types(self) -> dict[str, Any]:
        """The payload's attribute types, which type a form's fields (none: they stay text)."""
        tp = self.payload_type
        if tp is None or not isinstance(tp, type):
            return {}
        try:
            return typing.get_type_hints(tp)
        except (NameError, TypeError):
            return {}

    def _payload(self, value: Any) -> Any:
        if self.payload_type is None:
            return value
        try:
            result = msgspec.convert(value, self.payload_type, strict=True)
        except msgspec.ValidationError as exc:
            raise ValidationError(details=_details(value, self.payload_type, exc, "body")) from None
        return _plain(result, self.contract.payload)

    def _query(self, query: dict[str, list[str]]) -> Any:
        flat = {
            k.removesuffix("[]"): v
            if k.endswith("[]") or len(v) > 1 or k in self.query_lists
            else v[-1]
            for k, v in query.items()
        }
        if self.query_type is None:
            return flat
        try:
            result = msgspec.convert(flat, self.query_type, strict=False)
        except msgspec.ValidationError as exc:
            raise ValidationError(details=[details_from_message(str(exc), ["query"])]) from None
        return _plain(result, self.contract.query)

    def respond(self, request: Request, result: Any) -> Response:
        if isinstance(result, HttpError):
            envelope = {
                "error": {
                    "status": result.status_code,
                    "code": result.code,
                    "message": result.message,
                }
            }
            if self.validating() and self.shapes:
                self._check_any(envelope, self.shapes)
            return error_response(result)
        if result is None and self.validating() and self.shapes:
            self._check_any(None, self.shapes)  # no body: only if the contract allows null
        return super().respond(request, result)

    def validating(self) -> bool:
        """Contract responses are checked when ``validate_responses`` is on."""
        return self.config.validate_responses is True


def _details(
    value: Any, type_: Any, exc: msgspec.ValidationError, loc: str
) -> list[dict[str, Any]]:
    try:
        info = msgspec.inspect.type_info(type_)
        fields = getattr(info, "fields", None)
    except (TypeError, ValueError):
        fields = None
    if fields is not None and isinstance(value, dict):
        hints = {f.encode_name: _field_type(type_, f.name) for f in fields}
        required = {f.encode_name for f in fields if f.required}
        details = validate_object(value, hints, required, [loc], extra_allowed=not _forbids(type_))
        if details:
            return details
    return [details_from_message(str(exc), [loc])]


def _list_fields(type_: Any) -> frozenset[str]:
    """Fields of a query schema that hold arrays (one ``?k=v`` is then a list of one)."""
    try:
        fields = getattr(msgspec.inspect.type_info(type_), "fields", None) or ()
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(f.name for f in fields if _is_array(f.type))


def _is_array(info: Any) -> bool:
    if isinstance(info, msgspec.inspect.Metadata):
        return _is_array(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_array(t) for t in info.types)
    return isinstance(info, _ARRAYS)


_ARRAYS = (
    msgspec.inspect.ListType,
    msgspec.inspect.SetType,
    msgspec.inspect.FrozenSetType,
    msgspec.inspect.VarTupleType,
)


def _field_type(type_: Any, name: str) -> Any:
    import typing

    try:
        return typing.get_type_hints(type_, include_extras=True)[name]
    except Exception:
        return Any


def _forbids(type_: Any) -> bool:
    config = getattr(type_, "__struct_config__", None)
    return bool(getattr(config, "forbid_unknown_fields", False))


def _plain(value: Any, declared: Any) -> Any:
    """Contracts given as JSON Schema hand the handler plain dicts, not generated Structs."""
    if isinstance(declared, dict):
        return msgspec.to_builtins(value)
    return value


def _path_names(path: str) -> list[str]:
    import re

    return re.findall(r"\{([a-zA-Z_][a-zA-Z0-9_]*)", path)


def contract_route(tables: Mapping[str, TableRuntime], config: Config, fn: Any) -> Route:
    """The route of a function decorated with ``@route``."""
    spec = getattr(fn, "__charter_route_spec__", None)
    if not isinstance(spec, RouteSpec):
        raise CharterError(f"{fn!r} is not a route: decorate it with @route")
    contract = spec.contract
    meta: dict[str, Any] = {"contract": contract, "roles": contract.roles if contract else None}
    endpoint = ContractEndpoint(tables, config, spec, meta=meta)
    meta["signature"] = endpoint.signature
    return Route(spec.method, spec.path, endpoint, spec.name, "route", meta)


def _path_value(param: Param, text: str) -> Any:
    """A path parameter, coerced to its annotation (a 422 when it does not fit)."""
    try:
        return convert_path(param, text)
    except InputError as exc:
        raise ValidationError(details=exc.details) from None

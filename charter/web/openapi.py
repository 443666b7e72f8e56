"""The OpenAPI 3.1 document of an app: tables, model methods, RPCs and contract routes.

Each role gets its own document (``OpenAPIEndpoint``, cached per role): only the operations it
may perform, and of each table only the attributes it may read (and write, in request bodies).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import HttpError
from ..http.codecs import JSON
from ..http.request import Request
from ..http.response import Response
from ..http.routing import Route
from ..model.roles import User
from ..runtime.access import Access
from ..runtime.context import RequestContext, current_context
from ..runtime.grants import require
from .openapi_components import ERROR_SCHEMA, Schemas
from .openapi_routes import apply_contract, mapped_operation, signature_operation
from .openapi_tables import table_paths

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["OpenAPIEndpoint", "build_openapi"]


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
    schemas = Schemas()
    paths: dict[str, Any] = {}
    for runtime in tables:
        table = access.table(runtime.name) if access is not None else None
        if table is not None and not (table.read or table.insert or table.update or table.delete):
            continue
        paths.update(table_paths(runtime, schemas, table))
    tables = list(tables)
    by_name = {runtime.name: runtime for runtime in tables}
    for route in routes:
        signature = route.meta.get("signature")
        if route.kind == "mapped":
            if access is None or _permitted(route, access, signed_in):
                path = re.sub(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(?::path)?\}", r"{\1}", route.path)
                operation = mapped_operation(route, by_name, schemas)
                paths.setdefault(path, {})[route.method.lower()] = operation
            continue
        if route.kind not in ("method", "rpc", "route") or signature is None:
            continue
        if access is not None and not _permitted(route, access, signed_in):
            continue
        verb = route.method.lower()
        path = re.sub(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(?::path)?\}", r"{\1}", route.path)
        tag = route.meta.get("table") or ("rpc" if route.kind == "rpc" else "routes")
        operation = signature_operation(route.name, signature, schemas, tag=tag, verb=verb)
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
            apply_contract(operation, route.meta.get("contract"), schemas)
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

"""Routes with contracts (Aeria): payload, query and response schemas, and roles, per route.

    @route("POST", "/checkKey", contract=Contract(payload=KeyCheck, response=[KeyResult,
           endpoint_error_schema(http_status=[404], code=["RESOURCE_NOT_FOUND"])], roles=True))
    async def check_key(payload: KeyCheck, ctx: RequestContext) -> KeyResult: ...

    app = App(routes=[check_key])

A handler takes, by parameter name: ``payload`` (the body, checked against the contract
without coercion), ``query`` (the query string, coerced), the path's ``{params}``, and a
``RequestContext`` or ``Request`` by annotation. Its result must match one of the ``response``
shapes when response validation is on; returning (not raising) an ``HttpError`` answers with
the error envelope, which must match one of the declared error shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import CharterError

__all__ = ["Contract", "ErrorSchema", "RouteSpec", "endpoint_error_schema", "route"]

Roles = Sequence[str] | bool | Literal["unauthenticated", "unauthenticated-only"] | None
_SPECIAL_ROLES = ("unauthenticated", "unauthenticated-only")


@dataclass(frozen=True, slots=True)
class Contract:
    """What a route accepts and answers.

    Args:
        payload: the body's schema (a type or a JSON Schema dict).
        query: the query string's schema.
        response: one schema or a list of them (including ``endpoint_error_schema(...)``).
        roles: role names allowed; True (any signed-in user), "unauthenticated" (anyone) or
            "unauthenticated-only"; checked by ``charter.runtime.grants.require`` on every call.
    """

    payload: Any = None
    query: Any = None
    response: Any = None
    roles: Roles = None

    def __post_init__(self) -> None:
        roles = self.roles
        if roles is None or roles is True or roles in _SPECIAL_ROLES:
            return
        if isinstance(roles, str):
            # A plain string is a sequence of letters: "admin" would admit roles "a", "d"...
            raise CharterError(
                f"Contract(roles={roles!r}): give a list of role names, roles=[{roles!r}], or "
                'one of True, "unauthenticated", "unauthenticated-only"'
            )
        if roles is False or not isinstance(roles, Sequence):
            raise CharterError(
                f"Contract(roles={roles!r}): roles is a list of role names, True, "
                '"unauthenticated" or "unauthenticated-only"'
            )
        if not all(isinstance(r, str) and r for r in roles):
            raise CharterError(f"Contract(roles={roles!r}): role names are non-empty strings")

    def response_shapes(self) -> list[Any]:
        if self.response is None:
            return []
        shapes = self.response if isinstance(self.response, list | tuple) else [self.response]
        return list(shapes)


@dataclass(frozen=True, slots=True)
class ErrorSchema:
    """The error envelope restricted to some statuses and codes."""

    http_status: tuple[int, ...]
    code: tuple[str, ...]

    def json_schema(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"enum": list(self.http_status)}
                if self.http_status
                else {"type": "integer"},
                "code": {"enum": list(self.code)} if self.code else {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
        return {"type": "object", "required": ["error"], "properties": {"error": error}}


def endpoint_error_schema(http_status: Sequence[int] = (), code: Sequence[str] = ()) -> ErrorSchema:
    """A response shape: the error envelope with one of ``http_status`` and one of ``code``."""
    return ErrorSchema(tuple(http_status), tuple(code))


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A function registered with ``@route``."""

    method: str
    path: str
    fn: Callable[..., Any]
    contract: Contract | None
    name: str


def route(
    method: str, path: str, *, contract: Contract | None = None, name: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve a function at ``method path``; list it in ``App(routes=[...])``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__charter_route_spec__ = RouteSpec(  # type: ignore[attr-defined]
            method.upper(), path, fn, contract, name or fn.__name__
        )
        return fn

    return decorate

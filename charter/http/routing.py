"""Routes compiled once at start-up: an exact-path table, then templates by segment count.

Templates use ``{name}`` for one segment and ``{name:path}`` for the rest of the path.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ..errors import MalformedInput, MethodNotAllowed, NotFound

__all__ = ["Route", "Router", "decode_segment"]

Handler = Callable[..., Awaitable[Any]]
_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(?::(path))?\}")


@dataclass(slots=True)
class Route:
    """One endpoint: verb, path template, handler and what describes it."""

    method: str
    path: str
    handler: Handler
    name: str
    kind: str = "route"
    meta: dict[str, Any] = field(default_factory=dict)


class Router:
    """Maps (method, path) to a route and its path parameters."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self._exact: dict[str, dict[str, Route]] = {}
        self._templates: list[tuple[re.Pattern[str], dict[str, Route]]] = []
        self._patterns: dict[str, dict[str, Route]] = {}

    def add(self, route: Route) -> None:
        self.routes.append(route)
        if _PARAM.search(route.path) is None:
            self._exact.setdefault(route.path, {})[route.method] = route
            return
        by_method = self._patterns.get(route.path)
        if by_method is None:
            by_method = self._patterns[route.path] = {}
            self._templates.append((_compile(route.path), by_method))
        by_method[route.method] = route

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a request; ``NotFound`` or ``MethodNotAllowed`` when none fits.

        An exact path that does not answer the verb falls through to the templates, so
        ``POST /Product/discount`` (a method) and ``PUT /Product/discount`` (a record) coexist.
        """
        seen: list[dict[str, Route]] = []
        exact = self._exact.get(path)
        if exact is not None:
            route = _pick(exact, method)
            if route is not None:
                return route, {}
            seen.append(exact)
        for pattern, routes in self._templates:
            found = pattern.match(path)
            if found is None:
                continue
            route = _pick(routes, method)
            if route is not None:
                return route, {k: decode_segment(v) for k, v in found.groupdict().items()}
            seen.append(routes)
        if not seen:
            raise NotFound(f"no resource at {path}")
        methods = {m for routes in seen for m in routes} - {"*"}
        if "GET" in methods:
            methods.add("HEAD")
        allowed = ", ".join(sorted(methods | {"OPTIONS"}))
        raise MethodNotAllowed(f"{method} is not allowed on {path}", headers={"allow": allowed})


def _pick(by_method: dict[str, Route], method: str) -> Route | None:
    route = by_method.get(method) or by_method.get("*")
    if route is None and method == "HEAD":
        route = by_method.get("GET")
    return route


def decode_segment(segment: str) -> str:
    """A path parameter, percent-decoded; escapes that are not UTF-8 are refused, not replaced
    (``%ff`` and ``%fe`` would both become U+FFFD and name the same record)."""
    if "%" not in segment:
        return segment
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise MalformedInput("the path holds percent-escapes that are not UTF-8") from None


def _compile(template: str) -> re.Pattern[str]:
    out = "^"
    last = 0
    for match in _PARAM.finditer(template):
        out += re.escape(template[last : match.start()])
        out += f"(?P<{match.group(1)}>.+)" if match.group(2) else f"(?P<{match.group(1)}>[^/]+)"
        last = match.end()
    return re.compile(out + re.escape(template[last:]) + "$")

"""Middleware: code that runs around the handlers of the routes its filters select.

``Middleware(fn, prefixurl=, egroup=, endpoints=)`` wraps ``async def fn(ctx, call_next)``.
Which middleware a route runs is decided once per route (``chain_for``), so a route that no
middleware selects pays nothing. Each ``call_next`` answers a ``Response`` (an error of what
it wraps has already become the error envelope) and may be called once; an exception raised
by ``fn`` becomes the envelope too. Middleware runs outside the request's transaction:
``call_next`` runs the handler in its transaction and commits it (a conflict re-runs the
handler, never the middleware).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import unquote

from ..errors import CharterError
from ..http.response import Response
from ..http.routing import Route
from ..runtime.context import RequestContext

__all__ = [
    "CallNext",
    "Chain",
    "Middleware",
    "MiddlewareFn",
    "as_middleware",
    "chain_for",
    "check_filters",
    "run_chain",
]

CallNext = Callable[[], Awaitable[Response]]
MiddlewareFn = Callable[[RequestContext, CallNext], Awaitable[Response]]
# The middleware a route runs, outermost first, each with whether its prefix must be checked
# against the request's path (a prefix that ends inside a path parameter of the route).
Chain = tuple[tuple["Middleware", bool], ...]


class Middleware:
    """``fn`` where every given filter matches (all of them; none given: every route).

    Args:
        fn: ``async def fn(ctx, call_next) -> Response``.
        prefixurl: a path prefix, matched on segment boundaries (``/api`` selects ``/api`` and
            ``/api/x``, not ``/apix``), against the path as sent and percent-decoded.
        egroup: the route's endpoint group, exactly (RPC methods declare one).
        endpoints: route names (``charter routes APP`` lists them), one or several.
    """

    __slots__ = ("egroup", "endpoints", "fn", "name", "prefixurl")

    def __init__(
        self,
        fn: MiddlewareFn,
        prefixurl: str | None = None,
        egroup: str | None = None,
        endpoints: str | Iterable[str] | None = None,
    ) -> None:
        self.name: str = getattr(fn, "__qualname__", None) or repr(fn)
        if not _is_async(fn):
            raise CharterError(
                f"Middleware({self.name}): the function must be async: "
                "async def fn(ctx, call_next) -> Response"
            )
        self.fn = fn
        self.prefixurl = _prefix(prefixurl, self.name)
        if egroup is not None and (not isinstance(egroup, str) or not egroup):
            raise CharterError(f"Middleware({self.name}, egroup={egroup!r}): a non-empty string")
        self.egroup = egroup
        self.endpoints = _names(endpoints, self.name)

    def __repr__(self) -> str:
        filters = {"prefixurl": self.prefixurl, "egroup": self.egroup, "endpoints": self.endpoints}
        shown = "".join(f", {k}={v!r}" for k, v in filters.items() if v is not None)
        return f"Middleware({self.name}{shown})"

    def selects(self, route: Route) -> bool | None:
        """True: every request of the route; False: none; None: it depends on the path."""
        if self.egroup is not None and route.meta.get("egroup") != self.egroup:
            return False
        if self.endpoints is not None and route.name not in self.endpoints:
            return False
        if self.prefixurl is None:
            return True
        return _template_under(route.path, self.prefixurl)

    def selects_path(self, raw_path: str) -> bool:
        """Whether a request path is under ``prefixurl`` (as sent, or percent-decoded)."""
        assert self.prefixurl is not None
        return _under(raw_path, self.prefixurl) or _under(unquote(raw_path), self.prefixurl)


def as_middleware(item: Any) -> Middleware:
    """An entry of ``App(middleware=[...])``: a ``Middleware``, or an async function (every
    route)."""
    if isinstance(item, Middleware):
        return item
    if callable(item):
        return Middleware(item)
    raise CharterError(f"App(middleware=...) takes Middleware or async functions, not {item!r}")


def check_filters(middleware: Sequence[Middleware], routes: Sequence[Route]) -> None:
    """Refuse a filter that names no endpoint or egroup of the app: a misspelt name would
    otherwise leave the routes it was meant to guard unguarded, silently."""
    names = {route.name for route in routes}
    egroups = {route.meta.get("egroup") for route in routes} - {None}
    for mw in middleware:
        unknown = sorted(set(mw.endpoints or ()) - names)
        if unknown:
            raise CharterError(
                f"{mw!r}: no endpoint is named {', '.join(map(repr, unknown))} "
                "(charter routes APP lists the names)"
            )
        if mw.egroup is not None and mw.egroup not in egroups:
            raise CharterError(f"{mw!r}: no endpoint has the egroup {mw.egroup!r}")


def chain_for(route: Route, middleware: Sequence[Middleware]) -> Chain:
    """The middleware ``route`` runs, outermost first."""
    chain: list[tuple[Middleware, bool]] = []
    for mw in middleware:
        selected = mw.selects(route)
        if selected is not False:
            chain.append((mw, selected is None))
    return tuple(chain)


async def run_chain(
    chain: Chain,
    context: RequestContext,
    endpoint: CallNext,
    fail: Callable[[Exception, str], Response],
) -> Response:
    """Run ``chain`` around ``endpoint``.

    Args:
        endpoint: the handler in its transaction; it answers errors as responses itself.
        fail: the envelope response for an exception a middleware raised (and its name).
    """
    request = context.request
    if request is not None and any(check for _, check in chain):
        path = request.raw_path
        chain = tuple(link for link in chain if not link[1] or link[0].selects_path(path))

    async def call(index: int) -> Response:
        if index == len(chain):
            return await endpoint()
        mw = chain[index][0]
        called = False

        async def call_next() -> Response:
            nonlocal called
            if called:
                raise CharterError(f"middleware {mw.name} called call_next twice")
            called = True
            return await call(index + 1)

        try:
            response = await mw.fn(context, call_next)
        except Exception as exc:
            return fail(exc, mw.name)
        if not isinstance(response, Response):
            problem = TypeError(
                f"middleware {mw.name} returned {type(response).__name__}, not a Response"
            )
            return fail(problem, mw.name)
        return response

    return await call(0)


def _is_async(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - an object with async __call__
    return callable(fn) and call is not None and inspect.iscoroutinefunction(call)


def _prefix(prefixurl: str | None, name: str) -> str | None:
    if prefixurl is None:
        return None
    if not isinstance(prefixurl, str) or not prefixurl.startswith("/"):
        raise CharterError(f"Middleware({name}, prefixurl={prefixurl!r}): a path such as '/api'")
    return prefixurl.rstrip("/")  # "/" selects every path, like no prefix: ""


def _names(endpoints: str | Iterable[str] | None, name: str) -> frozenset[str] | None:
    if endpoints is None:
        return None
    names = frozenset([endpoints] if isinstance(endpoints, str) else endpoints)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise CharterError(
            f"Middleware({name}, endpoints={endpoints!r}): one or more endpoint names"
        )
    return names


def _under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _template_under(template: str, prefix: str) -> bool | None:
    """Whether the paths of a route template are under ``prefix``: True, False, or None when
    the prefix ends inside a path parameter (then each request's path decides)."""
    segments = template.split("/")
    for index, wanted in enumerate(prefix.split("/")):
        if index >= len(segments):
            return False
        segment = segments[index]
        if "{" in segment:
            return None
        if segment != wanted and unquote(segment) != wanted:
            return False
    return True

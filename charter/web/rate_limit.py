"""``rate_limit(n, per=seconds, key=...)``: a middleware that allows ``n`` requests per window.

A fixed window per partition (a user, an address, or what ``key`` answers), counted in
``app.shared`` with ``incr_window``: the window opens at the partition's first request and
lasts ``per`` seconds. On Redis the count is one atomic MULTI/EXEC, exact across workers and
hosts; in-process it is per worker. Over the limit the answer is 429 ``RATE_LIMITED`` with
``Retry-After``; every response carries ``RateLimit-Policy`` and ``RateLimit`` as the IETF
draft draft-ietf-httpapi-ratelimit-headers (versions 09-12) defines them:
``RateLimit-Policy: "default";q=100;w=60`` and ``RateLimit: "default";r=42;t=17``. When the
store is unreachable the request is refused with 503 ``UNAVAILABLE`` (fail closed).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import CharterError, RateLimited, Unavailable
from ..http.response import Response
from ..runtime.context import RequestContext
from ..runtime.shared import SharedStore
from .middleware import CallNext, Middleware

__all__ = ["KeyFn", "Quota", "RateLimit", "check_rate_limits", "rate_limit"]

KeyFn = Callable[[RequestContext], "str | Awaitable[str | None] | None"]
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_LONG = 200  # partition keys longer than this are stored as their SHA-256


@dataclass(frozen=True, slots=True)
class Quota:
    """One request counted against a policy: how many so far, and what is left."""

    name: str
    limit: int
    per: int
    count: int
    reset: int  # whole seconds until the window closes (at least 1)

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def headers(self) -> dict[str, str]:
        """``RateLimit-Policy`` and ``RateLimit`` (lower-case names, as Charter sends them)."""
        return {
            "ratelimit-policy": f'"{self.name}";q={self.limit};w={self.per}',
            "ratelimit": f'"{self.name}";r={self.remaining};t={self.reset}',
        }


class RateLimit:
    """The middleware ``rate_limit`` makes; ``consume`` is usable on its own (sign-in)."""

    __slots__ = ("key", "limit", "name", "per")

    def __init__(self, limit: int, per: int, key: Literal["user", "address"] | KeyFn, name: str):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise CharterError(f"rate_limit({limit!r}): the limit is an int of 1 or more")
        if isinstance(per, bool) or not isinstance(per, int) or per < 1:
            raise CharterError(
                f"rate_limit(per={per!r}): the window is a whole number of seconds, 1 or more"
            )
        if not (key in ("user", "address") or (callable(key) and not isinstance(key, str))):
            raise CharterError(f"rate_limit(key={key!r}): 'user', 'address' or a function")
        if not isinstance(name, str) or not _NAME.match(name):
            raise CharterError(
                f"rate_limit(name={name!r}): 1 to 64 letters, digits, '_', '.' or '-'"
            )
        self.limit, self.per, self.key, self.name = limit, per, key, name

    def __repr__(self) -> str:
        return f"rate_limit({self.limit}, per={self.per}, name={self.name!r})"

    async def consume(self, store: SharedStore, partition: str) -> Quota:
        """Count one request of ``partition`` (raises ``Unavailable`` if the store is down)."""
        if len(partition) > _LONG:
            partition = "sha256:" + hashlib.sha256(partition.encode()).hexdigest()
        key = f"charter:ratelimit:{self.name}:{partition}"
        count, left = await store.incr_window(key, ttl=self.per)
        return Quota(self.name, self.limit, self.per, count, max(1, math.ceil(left)))

    async def partition(self, ctx: RequestContext) -> str:
        """Whose requests are counted together: the user, else the client address."""
        if self.key == "user":
            if ctx.user is not None:
                return "user:" + str(getattr(ctx.user, "username", None) or ctx.user)
        elif callable(self.key):
            value = self.key(ctx)
            if inspect.isawaitable(value):
                value = await value
            if value is not None:
                return "key:" + str(value)
        return "address:" + _address(ctx)

    async def __call__(self, ctx: RequestContext, call_next: CallNext) -> Response:
        counted = f"rate_limit:{self.name}"
        if counted in ctx.extra:  # the same limit selected twice for one request counts once
            return await call_next()
        ctx.extra[counted] = True
        if ctx.shared is None:
            raise CharterError("rate_limit runs in an App, which gives it app.shared")
        try:
            quota = await self.consume(ctx.shared, await self.partition(ctx))
        except Unavailable as exc:
            raise Unavailable(
                "the rate limit cannot be checked: its store is unreachable", headers=exc.headers
            ) from None
        headers = quota.headers()
        if quota.exceeded:
            headers["retry-after"] = str(quota.reset)
            raise RateLimited(
                f"more than {self.limit} requests in {self.per} seconds; retry in {quota.reset}",
                headers=headers,
            )
        response = await call_next()
        for name, value in headers.items():  # several limits: one list per header
            present = response.headers.get(name)
            response.headers[name] = value if present is None else f"{present}, {value}"
        return response


def rate_limit(
    n: int,
    per: int = 60,
    key: Literal["user", "address"] | KeyFn = "user",
    name: str = "default",
) -> RateLimit:
    """A middleware allowing ``n`` requests per ``per`` seconds to each partition.

    Args:
        n: requests allowed in one window.
        per: the window, in whole seconds (the draft's ``w`` is an integer).
        key: ``"user"`` (the signed-in user, else the client address), ``"address"`` (the
            client address of the connection), or ``fn(ctx)`` answering a partition string
            (sync or async; None: the client address).
        name: the policy's name in the headers and the store; two limits need two names.
    """
    return RateLimit(n, per, key, name)


def check_rate_limits(middleware: Sequence[Middleware]) -> None:
    """Refuse two different limits with one name: they would share one counter."""
    seen: dict[str, RateLimit] = {}
    for mw in middleware:
        if isinstance(mw.fn, RateLimit):
            other = seen.setdefault(mw.fn.name, mw.fn)
            if other is not mw.fn:
                raise CharterError(
                    f"two rate limits are named {mw.fn.name!r}: give each its own name="
                )


def _address(ctx: RequestContext) -> str:
    client = ctx.request.client if ctx.request is not None else None
    return str(client[0]) if client else "unknown"

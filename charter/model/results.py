"""Results that control the HTTP status and headers of a method, RPC or route."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

__all__ = ["HttpResp", "HttpResult"]

T = TypeVar("T")


class HttpResult(Generic[T]):
    """A value with its status and headers; annotate a return as ``HttpResult[T]``."""

    __charter_result__ = True
    __slots__ = ("body", "headers", "status")

    def __init__(
        self, body: T | None = None, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.body = body
        self.status = status
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}

    def __repr__(self) -> str:
        return f"HttpResult({self.status}, {self.body!r})"


class HttpResp:
    """Constructors for the common results."""

    @staticmethod
    def ok(body: Any = None, headers: dict[str, str] | None = None) -> HttpResult[Any]:
        return HttpResult(body, 200, headers)

    @staticmethod
    def created(
        body: Any = None, location: str | None = None, headers: dict[str, str] | None = None
    ) -> HttpResult[Any]:
        result: HttpResult[Any] = HttpResult(body, 201, headers)
        if location is not None:
            result.headers["location"] = location
        return result

    @staticmethod
    def no_content(headers: dict[str, str] | None = None) -> HttpResult[Any]:
        return HttpResult(None, 204, headers)

    @staticmethod
    def redirect(
        url: str, *, permanent: bool = False, headers: dict[str, str] | None = None
    ) -> HttpResult[Any]:
        """307 (or 308 when ``permanent``): the client repeats the request at ``url``."""
        result: HttpResult[Any] = HttpResult(None, 308 if permanent else 307, headers)
        result.headers["location"] = url
        return result

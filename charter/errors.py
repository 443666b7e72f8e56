"""The one error tree of Charter and the error envelope every protocol answers with.

Every exception Charter raises descends from ``CharterError``. An ``HttpError`` becomes a
response with the envelope; the others are raised to code (start-up, a script) and never reach a
client as they are. Constructors follow one convention: ``HttpError(status, message=None,
code=None, details=None, headers=None)``, and every subclass, whose status is its class's,
``Cls(message=None, *, code=None, details=None, headers=None)``; a message built from other
values comes from a classmethod (``DuplicateKey.for_key(table, key)``). The tree (the module a
class is defined in, when not this one):

CharterError
├── HttpError                   any status, code from the status
│   ├── MalformedInput          400 MALFORMED_INPUT
│   │   └── DecryptionError     400 DECRYPTION_FAILED a sealed message that does not open (crypto)
│   ├── InvalidQuery            400 INVALID_QUERY
│   ├── ChannelError            400 CHANNEL_EXPIRED, CHANNEL_REPLAY: session gone, replay (channel)
│   ├── Unauthorized            401 UNAUTHORIZED
│   │   └── InvalidToken        401 a token not signed here, expired or signed out (auth.tokens)
│   ├── Forbidden               403 FORBIDDEN
│   ├── NotFound                404 NOT_FOUND
│   │   └── MissingRecord       404 an update or increment of no record (storage.base)
│   ├── MethodNotAllowed        405 METHOD_NOT_ALLOWED
│   ├── Conflict                409 CONFLICT (and SQLite/PostgreSQL unique violations)
│   │   ├── ConflictError       409 a record changed since it was read; re-run (storage.base)
│   │   └── DuplicateKey        409 a create names an existing key (storage.base)
│   ├── PreconditionFailed      412 PRECONDITION_FAILED
│   ├── PayloadTooLarge         413 PAYLOAD_TOO_LARGE (and a value too big for SQLite)
│   ├── UnsupportedMediaType    415 UNSUPPORTED_MEDIA_TYPE
│   ├── ValidationError         422 INVALID_PROPERTIES (and values a database cannot store)
│   ├── RateLimited             429 RATE_LIMITED
│   ├── ClientDisconnected      499 CLIENT_DISCONNECTED
│   ├── InvalidResponse         500 INVALID_RESPONSE
│   ├── FlowError               the failing step's status: a mapped route's step (runtime.flows)
│   ├── Unavailable             503 UNAVAILABLE (a database busy, unreachable, unwritable)
│   │   └── StorageFull         503 STORAGE_FULL the database's disk is full (storage.base)
│   ├── UpstreamFailed          502 UPSTREAM_FAILED a caching table's source failed
│   └── UpstreamTimeout         504 UPSTREAM_TIMEOUT a caching table's source took too long
├── InputError                  input that does not validate, with details (schema.validation)
├── Unconvertible               a stored value a new field type cannot hold (schema.type_changes)
├── CryptoParameterError        also a ValueError: a bad key, nonce or HKDF length (crypto)
├── ConnectionDropped           also a ConnectionError: closed mid-stream (http.response)
└── Closed                      a subscription ended by the server, with its position (realtime)
    └── Overflow                the subscriber fell behind: resume from .position (realtime)

Database errors are translated where they surface, through one table per backend:
``storage.sqlite_errors`` (by ``sqlite_errorcode``) and ``storage.postgres_errors`` (by
SQLSTATE). What a table does not name stays a 500 whose body reveals nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CharterError",
    "ClientDisconnected",
    "Conflict",
    "Forbidden",
    "HttpError",
    "InvalidQuery",
    "InvalidResponse",
    "MalformedInput",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "UpstreamFailed",
    "UpstreamTimeout",
    "ValidationError",
    "error_body",
    "status_error",
]

_DEFAULT_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_PROPERTIES",
    429: "RATE_LIMITED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UPSTREAM_FAILED",
    503: "UNAVAILABLE",
    504: "UPSTREAM_TIMEOUT",
}


class CharterError(Exception):
    """Root of every error Charter raises."""


class HttpError(CharterError):
    """An error that becomes an HTTP response with the error envelope."""

    status_code: int = 500
    default_code: str | None = None
    default_message: str = "error"

    def __init__(
        self,
        status: int | None = None,
        message: str | None = None,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if status is not None:
            self.status_code = status
        self.message = message if message is not None else self.default_message
        self.code = code or self.default_code or _DEFAULT_CODES.get(self.status_code, "ERROR")
        self.details = details
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status_code}, {self.message!r}, code={self.code!r})"


class _Fixed(HttpError):
    """An HttpError whose status is fixed by its class: only the message is positional."""

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(self.status_code, message, code, details, headers)


class MalformedInput(_Fixed):
    """400: a body that does not parse."""

    status_code = 400
    default_code = "MALFORMED_INPUT"
    default_message = "body is not parseable"


class InvalidQuery(_Fixed):
    """400: a query that does not parse or names what does not exist."""

    status_code = 400
    default_code = "INVALID_QUERY"
    default_message = "query is invalid"


class Unauthorized(_Fixed):
    """401: sign in first."""

    status_code = 401
    default_code = "UNAUTHORIZED"
    default_message = "authentication required"


class Forbidden(_Fixed):
    """403: signed in, but not allowed."""

    status_code = 403
    default_code = "FORBIDDEN"
    default_message = "forbidden"


class NotFound(_Fixed):
    """404: no such resource."""

    status_code = 404
    default_code = "NOT_FOUND"
    default_message = "not found"


class MethodNotAllowed(_Fixed):
    """405: the resource does not answer this verb."""

    status_code = 405
    default_code = "METHOD_NOT_ALLOWED"
    default_message = "method not allowed"


class Conflict(_Fixed):
    """409: the write conflicts with the current state."""

    status_code = 409
    default_code = "CONFLICT"
    default_message = "conflict"


class PreconditionFailed(_Fixed):
    """412: If-Match did not match the current ETag."""

    status_code = 412
    default_code = "PRECONDITION_FAILED"
    default_message = "precondition failed"


class PayloadTooLarge(_Fixed):
    """413: the body is over the configured limit."""

    status_code = 413
    default_code = "PAYLOAD_TOO_LARGE"
    default_message = "payload too large"


class UnsupportedMediaType(_Fixed):
    """415: a body format Charter does not read."""

    status_code = 415
    default_code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "unsupported media type"


class ValidationError(_Fixed):
    """422: input that does not match its declared types."""

    status_code = 422
    default_code = "INVALID_PROPERTIES"
    default_message = "payload is invalid"


class ClientDisconnected(_Fixed):
    """499: the client went away before its body was read; nothing is sent to it."""

    status_code = 499
    default_code = "CLIENT_DISCONNECTED"
    default_message = "client disconnected"


class InvalidResponse(_Fixed):
    """500: a handler's result does not match its declaration (the mismatch is logged)."""

    status_code = 500
    default_code = "INVALID_RESPONSE"
    default_message = "the response does not match its declaration"


class RateLimited(_Fixed):
    """429: too many requests; see Retry-After."""

    status_code = 429
    default_code = "RATE_LIMITED"
    default_message = "too many requests"


class Unavailable(_Fixed):
    """503: a dependency such as the database is unreachable."""

    status_code = 503
    default_code = "UNAVAILABLE"
    default_message = "a dependency is unavailable"


class UpstreamFailed(_Fixed):
    """502: a caching table's source failed (raised, or could not be reached); not cached."""

    status_code = 502
    default_code = "UPSTREAM_FAILED"
    default_message = "the source of this record failed"


class UpstreamTimeout(_Fixed):
    """504: a caching table's source did not answer within ``source_timeout``; not cached."""

    status_code = 504
    default_code = "UPSTREAM_TIMEOUT"
    default_message = "the source of this record did not answer in time"


def error_body(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error envelope: ``{"error": {"status", "code", "message"[, "details"]}}``."""
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if details is None and code == "INVALID_PROPERTIES":  # clients may rely on details here
        details = [{"loc": [], "code": "UNMATCHING_PROPERTIES", "message": message}]
    if details is not None:
        error["details"] = details
    return {"error": error}


def status_error(exc: BaseException) -> HttpError | None:
    """A user exception carrying ``status_code`` (400-599) as that HTTP error (SPEC 1), wherever
    it is raised: a handler, a step of a declared transaction. None for any other exception."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status <= 599:
        message = getattr(exc, "message", None) or str(exc) or "error"
        return HttpError(status, message, code=getattr(exc, "code", None))
    return None

"""The request context: who is asking, what for, and the transaction it runs in."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ..model import perms

if TYPE_CHECKING:
    from ..http.request import Request
    from .shared import SharedStore
    from .transaction import Transaction

__all__ = ["RequestContext", "current_context"]

_context: ContextVar[RequestContext | None] = ContextVar("charter_context", default=None)


class RequestContext:
    """Carried through middleware, handlers and table hooks of one request."""

    __slots__ = (
        "_token",
        "auth",
        "egroup",
        "endpoint",
        "extra",
        "perm",
        "request",
        "response_headers",
        "role",
        "shared",
        "storage",
        "transaction",
        "user",
    )

    def __init__(
        self, request: Request | None = None, *, auth: bool = False, storage: Any = None
    ) -> None:
        self.auth = auth
        self.storage = storage  # the storage of the app serving the request
        self.request = request
        self.user: Any = None
        self.role: Any = None
        self.perm: int = perms.RWX
        self.egroup: str | None = None
        self.endpoint: str | None = None
        self.response_headers: dict[str, str] = {}
        self.transaction: Transaction | None = None
        self.extra: dict[str, Any] = {}
        self.shared: SharedStore | None = None  # the app's ``app.shared``

    @property
    def is_super_user(self) -> bool:
        """The role decides; a request without one acts as a super user while auth is off."""
        if self.role is not None:
            return bool(getattr(self.role, "super_user", False))
        return not self.auth

    def __enter__(self) -> RequestContext:
        self._token = _context.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _context.reset(self._token)


def current_context() -> RequestContext | None:
    """The context of the running request, if any."""
    return _context.get()

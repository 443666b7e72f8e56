"""Which backend serves a database URL: a registry of URL schemes.

The registry names each backend's module instead of importing it, so that ``storage.base``
(the contract) never imports its own implementations, and a backend's driver (asyncpg) is
imported only when a URL asks for it.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from ..redaction import mask_url
from .base import Storage

__all__ = ["BACKENDS", "open_storage"]

# URL scheme -> (module, class, the pip extra its driver comes with, or None).
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "sqlite": ("charter.storage.sqlite", "SQLiteStorage", None),
    "postgresql": ("charter.storage.postgres", "PostgresStorage", "postgres"),
    "postgres": ("charter.storage.postgres", "PostgresStorage", "postgres"),
}


class _Backend(Protocol):
    """The constructor every backend class has."""

    def __call__(
        self, url: str, *, pool_size: int | None, pool_timeout: float | None
    ) -> Storage: ...


def open_storage(
    url: str, *, pool_size: int | None = None, pool_timeout: float | None = None
) -> Storage:
    """The backend for a database URL (``sqlite:///path``, ``postgresql://...``), not yet open.

    Every backend class takes ``(url, *, pool_size, pool_timeout)``.

    Args:
        pool_size: connections per process, for a backend that pools them (PostgreSQL).
        pool_timeout: seconds a request waits for a pooled connection (PostgreSQL) or for the
            database's lock (SQLite) before a 503.
    """
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme not in BACKENDS:
        raise ValueError(
            f"unsupported database URL {mask_url(url)!r} (expected sqlite:///path or postgresql://...)"
        )
    module_name, class_name, extra = BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # the driver is an optional extra
        if extra is None:
            raise
        raise ImportError(
            f"{scheme}:// needs {exc.name or 'its driver'}: pip install 'charter[{extra}]'"
        ) from exc
    backend: _Backend = getattr(module, class_name)
    return backend(url, pool_size=pool_size, pool_timeout=pool_timeout)

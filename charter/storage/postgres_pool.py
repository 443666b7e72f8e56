"""How the PostgreSQL pool is made: its settings from the URL, and each connection's codec.

Why apart: the URL's pool options and the JSONB codec are settled once, before the storage
opens; ``postgres.PostgresStorage`` only reads the result.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import msgspec

from .postgres_schema import Connection

__all__ = ["DEFAULT_POOL_SIZE", "DEFAULT_POOL_TIMEOUT", "init_connection", "pool_options"]

DEFAULT_POOL_SIZE = 10
DEFAULT_POOL_TIMEOUT = 10.0  # seconds a request waits for a free connection, then 503
_encode = msgspec.json.Encoder().encode


def _jsonb(value: Any) -> str:
    return _encode(value).decode()


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()


async def init_connection(conn: Connection) -> None:
    """Every pooled connection's set-up (asyncpg's ``init``)."""
    # Values bound to a jsonb parameter (keys, query values) are encoded as JSON; documents are
    # bound as text and cast (``$2::text::jsonb``), and read back as their JSON text.
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb, decoder=_text, schema="pg_catalog", format="text"
    )


def pool_options(
    url: str, pool_size: int | None, pool_timeout: float | None
) -> tuple[str, int, float]:
    """The DSN for asyncpg, the pool size and the pool timeout (``?pool_size=N`` and
    ``?pool_timeout=S`` in the URL win)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    size = pool_size or DEFAULT_POOL_SIZE
    timeout = pool_timeout or DEFAULT_POOL_TIMEOUT
    kept = []
    for name, value in query:
        if name == "pool_size":
            size = int(value)
        elif name == "pool_timeout":
            timeout = float(value)
        else:
            kept.append((name, value))
    scheme = "postgresql" if parts.scheme.startswith("postgres") else parts.scheme
    dsn = urllib.parse.urlunsplit(
        (scheme, parts.netloc, parts.path, urllib.parse.urlencode(kept), parts.fragment)
    )
    return dsn, max(1, size), max(0.001, timeout)

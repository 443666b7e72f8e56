"""The input limits, in one place: what a client may send before Charter refuses it.

Each limit keeps a hostile or mistaken request from reaching a place that fails badly (a
recursion error, SQLite's parser stack, a PostgreSQL index row, a sort that copies megabytes
per key). They are chosen well inside what both backends accept, so that a request under every
limit works the same on SQLite and PostgreSQL. See docs/limits.md.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_BODY_DEPTH",
    "MAX_FORM_FIELDS",
    "MAX_GROUP_DEPTH",
    "MAX_INDEXED_BYTES",
    "MAX_KEY_BYTES",
    "MAX_PATH_HOPS",
    "MAX_QUERY_CONDITIONS",
    "MAX_QUERY_LENGTH",
    "MAX_SELECT_DEPTH",
    "MAX_SORT_KEYS",
]

# -- bodies ------------------------------------------------------------------------------------

MAX_BODY_DEPTH: Final = 64
"""Arrays and objects nested in a request body (JSON, MessagePack, CBOR): 400 beyond."""

MAX_FORM_FIELDS: Final = 1000
"""Fields in one form body (urlencoded or multipart; each repeat counts): 400 beyond."""

INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1
"""The integers a record may hold (anywhere in it): 64-bit signed, as both backends and
MessagePack store them. 422 outside."""

MAX_KEY_BYTES: Final = 1978
"""A string primary key, in UTF-8 bytes (HarperDB's key limit): 422 beyond."""

MAX_INDEXED_BYTES: Final = 1978
"""A value of an indexed attribute, as stored: a string's UTF-8 bytes; for a list or an object
the estimate of ``schema.bounds.stored_size``. PostgreSQL refuses B-tree entries over
~2700 bytes. 422 beyond."""

# -- the query language ------------------------------------------------------------------------

MAX_QUERY_LENGTH: Final = 16384
"""Characters of a query string, as sent (percent-encoded): 414 beyond."""

MAX_QUERY_CONDITIONS: Final = 256
"""Conditions in one query, counting each in a group or a chained range: 400 beyond."""

MAX_GROUP_DEPTH: Final = 8
"""Groups nested in groups (``[a|(b&c)]`` is 2): 400 beyond."""

MAX_PATH_HOPS: Final = 4
"""Relationships one attribute path follows (``brand.country.name`` follows 2): 400 beyond."""

MAX_SORT_KEYS: Final = 8
"""Attributes in one ``sort()``; each at most once: 400 beyond."""

MAX_SELECT_DEPTH: Final = 3
"""Nested selects inside ``select()`` (``brand{country{name}}`` is 2): 400 beyond."""

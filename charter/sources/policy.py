"""``CachePolicy``: a caching table's options, checked once when the class is declared.

Fail closed: an option that makes no sense (a negative time, ``expiration`` without a
``source``) raises ``TypeError``/``ValueError`` at the class statement, never at the first read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .source import Source

__all__ = ["DEFAULT_TIMEOUT", "CachePolicy", "check_options"]

DEFAULT_TIMEOUT = 10.0
"""Seconds an origin call may take by default (``source_timeout``)."""
_TIMES = ("expiration", "eviction", "scan_interval", "source_timeout")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long records stay fresh and stored, and how long the origin may take.

    Attributes:
        expiration_ms: a record older than this is loaded again (None: never expires).
        eviction: records older than this (seconds) are removed by the sweep (None: never).
        scan_interval: seconds between sweeps (default: a quarter of expiration + eviction,
            as HarperDB).
        timeout: seconds an origin call may take (``source_timeout``).
    """

    expiration_ms: int | None
    eviction: float | None
    scan_interval: float | None
    timeout: float

    @classmethod
    def of(cls, options: Any) -> CachePolicy:
        """The policy of a table's ``TableOptions``."""
        eviction = options.eviction
        interval = options.scan_interval
        if interval is None and eviction is not None:
            interval = max(1.0, ((options.expiration or 0) + eviction) / 4)
        return cls(
            expiration_ms=None if options.expiration is None else int(options.expiration * 1000),
            eviction=eviction,
            scan_interval=interval,
            timeout=options.source_timeout,
        )


def check_options(table: str, options: dict[str, Any]) -> None:
    """Raise when caching options given to ``table`` cannot work as given."""
    for name in _TIMES:
        value = options.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"class {table}(Table, {name}=...) takes seconds, not {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"class {table}(Table, {name}={value!r}): must be above 0")
    source = options.get("source")
    if source is None:
        given = [name for name in _TIMES if name in options]
        if given:
            raise TypeError(
                f"class {table}(Table, {given[0]}=...) is a caching option: it needs source="
            )
        return
    is_class = isinstance(source, type) and issubclass(source, Source)
    if not (is_class or isinstance(source, Source)):
        raise TypeError(
            f"class {table}(Table, source=...) takes a charter.Source subclass or instance, "
            f"not {source!r}"
        )
    if is_class and source.get is Source.get:
        raise TypeError(f"{source.__name__} must implement async get(id)")
    eviction, expiration = options.get("eviction"), options.get("expiration")
    if eviction is not None and expiration is not None and eviction < expiration:
        raise ValueError(
            f"class {table}(Table, eviction={eviction}, expiration={expiration}): a record is "
            "evicted when older than eviction, which must not be shorter than expiration"
        )

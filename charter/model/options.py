"""``TableOptions``: what a table declares as class keywords, and the check of a caching
table's options (fail closed: an option that makes no sense, such as a negative time or
``expiration`` without a ``source``, raises at the class statement, never at the first read)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from .source import Source

__all__ = ["CACHING", "TableOptions", "check_caching"]

CACHING = ("source", "expiration", "eviction", "scan_interval", "source_timeout")
_TIMES = CACHING[1:]


@dataclass(frozen=True, slots=True)
class TableOptions:
    """Options given as class keywords: ``class Weather(Table, expiration=60)``."""

    name: str | None = None
    source: Any = None
    expiration: float | None = None
    eviction: float | None = None
    scan_interval: float | None = None
    source_timeout: float = 10.0
    audit: bool = False
    extra: Literal["forbid", "allow"] = "forbid"
    strict_queries: bool = False


def check_caching(table: str, options: dict[str, Any]) -> None:
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
    kind = source if is_class else type(source)
    if kind.get is Source.get:
        raise TypeError(f"{kind.__name__} must implement async get(id)")
    eviction, expiration = options.get("eviction"), options.get("expiration")
    if options.get("scan_interval") is not None and eviction is None:
        raise TypeError(
            f"class {table}(Table, scan_interval=...) paces the eviction sweep: it needs eviction="
        )
    if eviction is not None and expiration is not None and eviction < expiration:
        raise ValueError(
            f"class {table}(Table, eviction={eviction}, expiration={expiration}): a record is "
            "evicted when older than eviction, which must not be shorter than expiration"
        )

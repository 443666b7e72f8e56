"""``TableOptions``: what a table declares as class keywords."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["TableOptions"]


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

"""``CachePolicy``: what a caching table's options (checked at its class statement by
``model.options.check_caching``) mean for its cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CachePolicy"]


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

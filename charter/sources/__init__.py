"""Caching tables (SPEC section 10): a table whose records come from a ``Source``.

One concept per module: ``source`` (what an app implements), ``policy`` (the table's options,
checked), ``lease`` (one origin call per id across workers), ``flight`` (one per id within a
worker), ``cache`` (the read and write paths), ``sweep`` (eviction), ``feed`` (a source's
change stream), ``caches`` (the app's background tasks).
"""

from .source import CacheEntry, Source

__all__ = ["CacheEntry", "Source"]

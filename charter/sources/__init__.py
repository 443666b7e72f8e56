"""Caching tables (SPEC section 10): a table whose records come from a ``Source``.

What an app implements, ``Source``, is a declaration (``model/source.py``; its options are
checked by ``model/options.py``); this package is the machinery, one concept per module:
``policy`` (what the options mean), ``lease`` (one origin call per id across workers),
``flight`` (one per id within a worker), ``cache`` (the read and write paths), ``sweep``
(eviction), ``feed`` (a source's change stream), ``caches`` (the app's background work).
"""

from ..model.source import CacheEntry, Source

__all__ = ["CacheEntry", "Source"]

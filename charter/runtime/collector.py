"""Python's cyclic garbage collector, tuned for serving.

A request makes and drops a few hundred container objects, and dozens are in flight at once,
so the default first-generation threshold (700 net allocations) is crossed several times per
ten requests: on the sign-up benchmark the collector took ~15% of the event loop's CPU. A
threshold of 10,000 runs it rarely (memory held until then: a few MB at most) while keeping
cycles collected. Reference counting frees everything else at once either way.
"""

from __future__ import annotations

import gc

__all__ = ["tune_collector"]


def tune_collector(threshold: int) -> None:
    """Raise the first generation's threshold to ``threshold`` (0: leave the collector as it
    is). A process that set a higher one itself keeps it; the older generations keep theirs."""
    if threshold <= 0:
        return
    first, second, third = gc.get_threshold()
    if 0 < first < threshold:  # (0: the process turned automatic collection off)
        gc.set_threshold(threshold, second, third)

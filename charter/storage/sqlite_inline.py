"""Small reads answered on the event loop itself, within a budget, else by a reader thread.

Why: handing a read to a thread and back costs two thread wake-ups, measured here at 100-200 us
of CPU, several times what a point read or a small indexed query costs SQLite (20-50 us). So
point reads and queries with a small limit first run on the loop, on a connection of its own.
SQLite's progress handler bounds the time the loop spends: a read that runs past ``BUDGET`` (a
millisecond) is interrupted and answered by a thread
instead, and the caller may send reads of that shape to the thread for a while. The loop never
waits for a lock either: the connection has no busy timeout, and any SQLite error (a lock,
the interruption, or an error the thread path reports properly, retried and translated) sends
the read to the thread. What is not bounded: a page missing from the OS cache is read from
the disk while the loop waits, as any inline read does.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from time import perf_counter
from typing import TypeVar

__all__ = ["MISSED", "InlineReader"]

T = TypeVar("T")


class _Missed:
    """The read did not run to the end on the loop: run it on a thread."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSED"


MISSED = _Missed()


class InlineReader:
    """One read-only connection used by one thread (the event loop's), with a step budget.

    A call from any other thread is a miss, so the connection is never shared between threads.
    """

    # The progress handler runs every STEPS steps of SQLite's virtual machine and stops a read
    # that has taken BUDGET seconds. Time, not a count of steps: one step may be cheap (a
    # comparison) or not (json_extract of a document: a scan of 6,000 small documents took
    # 24,000 steps and 4 ms). A point read takes under 100 steps and ~10 us; the 100,000-row
    # query of bench/ about 500 steps and 50 us, its probe 3,500 steps.
    STEPS = 100
    BUDGET = 0.001

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._owner: int | None = None
        self._deadline = 0.0
        self._stopped = False
        self.interrupted = 0  # reads that ran past the budget (for tests and diagnostics)

    def _progress(self) -> int:
        if perf_counter() > self._deadline:
            self._stopped = True
            return 1
        return 0

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T | _Missed:
        """``fn(connection)`` here and now, or ``MISSED`` when it must run on a thread."""
        thread = threading.get_ident()
        if self._owner is None:
            self._owner = thread
        elif self._owner != thread:
            return MISSED
        conn = self._conn
        if conn is None:
            try:
                conn = self._conn = self._connect()
            except sqlite3.Error:
                return MISSED
            conn.set_progress_handler(self._progress, self.STEPS)
        self._stopped = False
        self._deadline = perf_counter() + self.BUDGET
        try:
            return fn(conn)
        except sqlite3.Error:
            if self._stopped:
                self.interrupted += 1
            return MISSED

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._owner = None

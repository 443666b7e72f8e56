"""Planned SQLite queries and the probe that picks between their two statements."""

from __future__ import annotations

import sqlite3

from ..query.sql import CompiledQuery

__all__ = ["Plan", "choose"]


class Plan:
    """A planned query (``plan_select``) and, when a probe decides between its two
    statements, the probe's last verdict.

    Why: the probe reads up to a few hundred rows, several times what the page it decides for
    costs. A verdict holds until the table has seen enough writes to change it: the count of
    matches moves by at most one per written record, so a "default" verdict (``found`` below
    the threshold) holds for ``threshold - found`` writes; a "walk" verdict (the count capped
    at the threshold) for a quarter of the threshold, after which the matches are at least
    three quarters of it (the walk then reads at most a third more than at the threshold).
    A raw write (the storage proxy's) may change any row: it ends every verdict. And after
    ``REPROBE_USES`` uses the probe runs again, for writes this process does not see (another
    process on the same file). Either plan gives the same rows; a verdict only decides which
    is faster.
    """

    __slots__ = ("default", "probe", "threaded", "until", "uses", "walk", "walking")

    REPROBE_USES = 1000

    def __init__(
        self,
        default: CompiledQuery,
        walking: CompiledQuery | None,
        probe: CompiledQuery | None,
    ) -> None:
        self.default = default
        self.walking = walking
        self.probe = probe
        self.walk: bool | None = None  # the probe's verdict, None before the first probe
        self.until = 0  # the table's write count at which the verdict ends
        self.uses = 0
        self.threaded = 0  # uses left that go to a reader thread (sqlite_inline: too slow)


def choose(conn: sqlite3.Connection, plan: Plan, written: int) -> CompiledQuery:
    """The statement to run: walk the sort's index when the probe finds the conditions
    unselective (or when there is nothing to probe), else the default plan. ``written`` is the
    table's write count (``SQLiteStorage._written``), to know when a verdict has expired."""
    walking, probe = plan.walking, plan.probe
    if walking is None:
        return plan.default
    if probe is None:
        return walking
    walk = plan.walk
    if walk is not None and written < plan.until and plan.uses < Plan.REPROBE_USES:
        plan.uses += 1  # a lost increment between threads only delays the next probe
        return walking if walk else plan.default
    found = conn.execute(probe.sql, probe.params).fetchone()[0]
    walk = found >= probe.threshold
    plan.until = written + (probe.threshold // 4 if walk else probe.threshold - found)
    plan.uses = 0
    plan.walk = walk
    return walking if walk else plan.default

"""Charter keeps SQLite's planner statistics fresh by itself (issue 9: fair query plans)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from charter import App, Field, Table
from charter.storage.sqlite_schema import Statistics
from charter.testing import TestClient


class Stat(Table):
    id: str = Field(primary_key=True)
    category: str = Field(indexed=True)
    n: int = 0


def _stats(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        return {idx: stat for tbl, idx, stat in conn.execute("SELECT * FROM sqlite_stat1")}
    except sqlite3.OperationalError:  # never analysed: no sqlite_stat1 at all
        return {}
    finally:
        conn.close()


async def _write(app: App, start: int, stop: int) -> None:
    """Rows ``start`` to ``stop`` in one transaction, then one more write: the writer thread
    refreshes statistics after a commit, so once the next write is answered it has."""
    async with app.transaction():
        for i in range(start, stop):
            await Stat.put({"id": f"r{i}", "category": f"c{i % 10}", "n": i})
    await Stat.put({"id": "r0", "category": "c0", "n": 0})


def _near(count: int | None, rows: int) -> bool:
    """The analysed row count (exact below Statistics.FULL_ROWS, where nothing is sampled)."""
    return count == rows


def _count(path: Path) -> int | None:
    stat = _stats(path).get("Stat__category")
    return None if stat is None else int(stat.split(" ")[0])


async def test_writes_analyse_the_table_as_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    app = App(tables=[Stat], database=f"sqlite:///{path}")
    async with TestClient(app):
        await _write(app, 0, 10)
        assert _count(path) is None  # a few writes: not worth an ANALYZE
        small = Statistics.MIN_CHANGES
        await _write(app, 10, small + 10)
        first = _count(path)
        assert _near(first, small + 10)
        # Fewer writes than the table's size since then: not analysed again.
        await _write(app, small + 10, 2 * small)
        assert _count(path) == first
        # Enough to about double it: analysed again, the planner sees the new size.
        await _write(app, 2 * small, 3 * small)
        assert _near(_count(path), 3 * small)


async def test_a_table_with_rows_but_no_statistics_is_analysed_at_open(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    app = App(tables=[Stat], database=f"sqlite:///{path}")
    async with TestClient(app):
        await _write(app, 0, 50)
    assert _count(path) is None
    async with TestClient(App(tables=[Stat], database=f"sqlite:///{path}")):
        assert _near(_count(path), 50)

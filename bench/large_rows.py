"""How one large document affects reads of its neighbours, before and after the rowid layout.

Run: ``.venv/bin/python bench/large_rows.py`` (``--rows``, ``--big-mb``, ``--trials``).

Each layout gets a fresh database file with ``--rows`` small records (ids inserted in random
order, like generated keys) and, in the second case, one ``--big-mb`` MB record in the middle
of the key range. "before" is the previous layout, written inline here (a ``WITHOUT ROWID``
table, the document inline in the primary-key b-tree); "after" is whatever
``charter.storage.sqlite_schema.migrate`` creates now. Each figure is the best of
``--trials`` timed runs (after a warm-up run; the four databases take turns, so that a busy
moment of the machine hits them alike), on one connection each with SQLite's default cache,
using the statements the storage runs (point read by id; a condition on an indexed field; a
full scan, in id order and with an unindexed condition).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from charter import Field, Table
from charter.schema import build_schema
from charter.storage.sqlite_schema import migrate

BEFORE = (
    'CREATE TABLE "Item" (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, '
    "version INTEGER NOT NULL) WITHOUT ROWID",
    'CREATE INDEX "Item__n" ON "Item" (json_extract(data, \'$.n\'))',
)
POINT = 'SELECT data, version FROM "Item" WHERE id = ?'
RANGE = (
    'SELECT t0.data, t0.version FROM "Item" AS t0 '
    "WHERE json_extract(t0.data, '$.n') BETWEEN ? AND ?"
)
ORDERED = 'SELECT t0.data, t0.version FROM "Item" AS t0 ORDER BY t0.id'
UNINDEXED = "SELECT count(*) FROM \"Item\" AS t0 WHERE json_extract(t0.data, '$.name') = ?"


class Item(Table):
    id: str = Field(primary_key=True)
    n: int = Field(0, indexed=True)
    name: str = ""
    tags: list[str] = []
    price: float = 0.0


def _key(i: int) -> str:
    return f"item-{i:08}"


def _build(path: Path, layout: str, rows: int, big_mb: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    if layout == "before":
        for statement in BEFORE:
            conn.execute(statement)
    else:
        migrate(conn, [build_schema(Item, Item.__charter_options__)])
    order = list(range(rows))
    random.Random(1).shuffle(order)
    middle = rows // 2
    conn.execute("BEGIN")
    for i in order:
        doc: dict[str, object] = {
            "id": _key(i),
            "n": i,
            "name": f"item {i}",
            "tags": ["red", "green", "blue"],
            "price": i * 1.5,
        }
        if big_mb and i == middle:
            doc["n"] = -1  # out of the range query's way: only its neighbours match
            doc["notes"] = "x" * int(big_mb * 1024 * 1024)
        conn.execute(
            'INSERT INTO "Item" (id, data, version) VALUES (?, ?, 1)', (doc["id"], json.dumps(doc))
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _timed_us(run: Callable[[], int]) -> float:
    started = time.perf_counter()
    count = run()
    return (time.perf_counter() - started) / count * 1e6


def _measures(conn: sqlite3.Connection, rows: int) -> dict[str, Callable[[], int]]:
    """What is timed on one database, each returning how many operations it ran."""
    middle = rows // 2
    neighbours = [_key(i) for i in range(middle - 10, middle + 11) if i != middle]
    rng = random.Random(2)
    anywhere = [_key(rng.randrange(rows)) for _ in range(20_000)]

    def points(keys: list[str], repeat: int) -> Callable[[], int]:
        def run() -> int:
            for _ in range(repeat):
                for key in keys:
                    conn.execute(POINT, (key,)).fetchone()
            return repeat * len(keys)

        return run

    def query_range() -> int:
        for _ in range(200):
            found = conn.execute(RANGE, (middle - 10, middle + 10)).fetchall()
        assert len(found) >= 20  # 21 when the middle record is a small one
        return 200

    def scan_ordered() -> int:
        assert len(conn.execute(ORDERED).fetchall()) == rows
        return 1

    def scan_unindexed() -> int:
        conn.execute(UNINDEXED, ("nothing",)).fetchone()
        return 1

    return {
        "neighbour GET (us)": points(neighbours, 100),
        "any GET (us)": points(anywhere, 1),
        "indexed query, ~20 rows (us)": query_range,
        "scan in id order (ms)": scan_ordered,
        "unindexed scan (ms)": scan_unindexed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--big-mb", type=float, default=9)
    parser.add_argument("--trials", type=int, default=7)
    args = parser.parse_args()
    print(
        f"SQLite {sqlite3.sqlite_version}, {args.rows} rows, "
        f"best of {args.trials} interleaved trials"
    )
    configs = [(layout, big) for layout in ("before", "after") for big in (False, True)]
    with tempfile.TemporaryDirectory() as tmp:
        conns = {}
        for layout, big in configs:
            path = Path(tmp) / f"{layout}-{big}.db"
            _build(path, layout, args.rows, args.big_mb if big else 0)
            conns[layout, big] = sqlite3.connect(path, isolation_level=None)
        runs = {config: _measures(conn, args.rows) for config, conn in conns.items()}
        best: dict[tuple[str, bool], dict[str, float]] = {c: {} for c in configs}
        for trial in range(args.trials + 1):  # the first warms the caches and is not kept
            for config in configs:  # interleaved, so that a busy moment hits every layout
                for name, run in runs[config].items():
                    took = _timed_us(run) / (1000 if name.endswith("(ms)") else 1)
                    if trial:
                        best[config][name] = min(took, best[config].get(name, took))
        for conn in conns.values():
            conn.close()
    figures = best
    columns = [
        ("before", False, "before"),
        ("before", True, f"before +{args.big_mb:g} MB"),
        ("after", False, "after"),
        ("after", True, f"after +{args.big_mb:g} MB"),
    ]
    print(f"| {'':28} | " + " | ".join(f"{title:>15}" for _, _, title in columns) + " |")
    print(f"| {'-' * 28} | " + " | ".join("-" * 14 + ":" for _ in columns) + " |")
    for name in figures["before", False]:
        values = " | ".join(f"{figures[layout, big][name]:>15.1f}" for layout, big, _ in columns)
        print(f"| {name:28} | {values} |")


if __name__ == "__main__":
    main()

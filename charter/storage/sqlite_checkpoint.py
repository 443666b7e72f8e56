"""WAL checkpoints off the commit path.

By default SQLite checkpoints in the connection whose COMMIT pushes the WAL past 1,000 pages:
that COMMIT then copies the WAL into the database file and syncs it, and every request waiting
on that group commit waits for the copy too (measured on the sign-up benchmark: about a tenth
of the writer's throughput). Here a thread of its own runs a PASSIVE checkpoint shortly after
writes, on its own connection, while the writer goes on appending to the WAL (a PASSIVE
checkpoint never blocks a writer or a reader). The writer keeps SQLite's automatic checkpoint
as a backstop at a higher mark (``BACKSTOP_PAGES``), for when this thread falls behind: what
it finds is mostly copied already, so it is short.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable

__all__ = ["BACKSTOP_PAGES", "Checkpointer"]

log = logging.getLogger("charter.storage")

BACKSTOP_PAGES = 10_000  # the writer's own automatic checkpoint (SQLite's default is 1,000)
INTERVAL = 0.1  # seconds between checkpoints while writes go on (each copies what came since)


class Checkpointer:
    """Checkpoints the WAL of one database file after writes, at most every ``INTERVAL``."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._wrote = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="charter-sqlite-checkpoint")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def wrote(self) -> None:
        """Tell the checkpointer a commit added to the WAL (called by the writer thread)."""
        if not self._wrote.is_set():
            self._wrote.set()

    def close(self) -> None:
        self._stop.set()
        self._wrote.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wrote.wait()
                if self._stop.is_set():
                    return
                self._wrote.clear()
                try:
                    if conn is None:
                        conn = self._connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the writer's backstop checkpoints meanwhile
                    log.debug("WAL checkpoint failed: %s", exc)
                if self._stop.wait(INTERVAL):
                    return
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

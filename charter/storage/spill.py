"""A query's rows read at database speed, handed on at the reader's pace.

Why: a result streamed straight from a cursor holds a database connection (and, on SQLite, a
snapshot) for as long as the slowest client takes to read it. A dozen clients that ask for a
large collection and never read would hold every pooled connection, and a request that reads a
record while it iterates a search would wait for a second connection that never comes. So a
producer task drains the cursor into a ``Spill`` as fast as the database answers, and gives the
connection back as soon as the cursor is exhausted; the consumer takes rows from the spill when
it wants them. The spill keeps a few megabytes in memory and writes the rest to an anonymous
temporary file (its pages are the kernel's page cache, not the server's memory), so the
producer never waits for the consumer, and a slow reader costs disk, not connections or RAM.
"""

from __future__ import annotations

import asyncio
import collections
import os
import tempfile
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import IO, Any

import msgspec

from .base import Row

__all__ = ["MEMORY_LIMIT", "Spill", "spilled"]

MEMORY_LIMIT = 4 * 1024 * 1024  # bytes of row data kept in memory before spilling to disk
BATCH_BYTES = 1024 * 1024  # a producer aims for batches of about this size
_ROW_OVERHEAD = 64  # bytes counted per row beside its text
_FRAME = 4  # a spilled batch is its length (4 bytes, big-endian) then its MessagePack

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[Row]).decode


def batch_size(rows: list[Row], most: int) -> int:
    """How many rows to ask for next so a batch stays near ``BATCH_BYTES`` (at most ``most``)."""
    if not rows:
        return most
    size = _size(rows) // len(rows) or 1
    return max(1, min(most, BATCH_BYTES // size))


def _size(rows: list[Row]) -> int:
    return sum(len(r.data) + len(r.related or "") + _ROW_OVERHEAD for r in rows)


class Spill:
    """A first-in first-out queue of row batches: one producer, one consumer, one event loop.

    ``put`` never waits: beyond ``memory_limit`` bytes, batches go to a temporary file, and
    once anything is in the file every later batch follows it there (rows keep their order).
    The file is emptied whenever the consumer has read all of it, and deleted by ``close``.
    """

    __slots__ = (
        "_done",
        "_error",
        "_file",
        "_in_memory",
        "_limit",
        "_memory",
        "_read_at",
        "_wake",
        "_written",
        "spilled_bytes",
        "total",
    )

    def __init__(self, memory_limit: int = MEMORY_LIMIT) -> None:
        self._limit = memory_limit
        self._memory: collections.deque[tuple[list[Row], int]] = collections.deque()
        self._in_memory = 0
        self._file: IO[bytes] | None = None
        self._written = 0  # end of the file's data
        self._read_at = 0  # start of its unread data
        self._done = False
        self._error: BaseException | None = None
        self._wake = asyncio.Event()
        self.spilled_bytes = 0  # written to disk in all (for tests and measurements)
        self.total: int | None = None  # the count of the rows, for a producer that reads it

    def put_total(self, total: int) -> None:
        """The count of the rows (read before them, in their snapshot)."""
        self.total = total
        self._wake.set()

    def put(self, rows: list[Row]) -> None:
        """Append a batch (never waits)."""
        if not rows:
            return
        size = _size(rows)
        if self._read_at < self._written or self._in_memory + size > self._limit:
            self._spill(rows)
        else:
            self._memory.append((rows, size))
            self._in_memory += size
        self._wake.set()

    def finish(self, error: BaseException | None = None) -> None:
        """No more batches: the consumer gets what is left, then ``error`` if there is one."""
        self._done = True
        self._error = error
        self._wake.set()

    def close(self) -> None:
        """Drop what is left and delete the file."""
        self._memory.clear()
        self._in_memory = 0
        if self._file is not None:
            self._file.close()
            self._file = None
        self._written = self._read_at = 0

    async def get_total(self) -> int:
        """The count given by ``put_total``, waiting for it; the producer's error if it failed."""
        while self.total is None:
            if self._done:
                self._raise()
                raise RuntimeError("the rows ended without their count")
            self._wake.clear()
            await self._wake.wait()
        return self.total

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def get(self) -> list[Row] | None:
        """The next batch, waiting for the producer when there is none yet; None at the end."""
        while True:
            if self._memory:
                rows, size = self._memory.popleft()
                self._in_memory -= size
                return rows
            if self._read_at < self._written:
                return self._unspill()
            if self._done:
                self._raise()
                return None
            self._wake.clear()
            await self._wake.wait()

    def _spill(self, rows: list[Row]) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="charter-spill-")  # noqa: SIM115
        payload = _encode(rows)
        frame = len(payload).to_bytes(_FRAME, "big") + payload
        os.pwrite(self._file.fileno(), frame, self._written)
        self._written += len(frame)
        self.spilled_bytes += len(frame)

    def _unspill(self) -> list[Row]:
        assert self._file is not None
        fd = self._file.fileno()
        length = int.from_bytes(os.pread(fd, _FRAME, self._read_at), "big")
        payload = os.pread(fd, length, self._read_at + _FRAME)
        self._read_at += _FRAME + length
        if self._read_at >= self._written:  # all read: start the file again from empty
            os.ftruncate(fd, 0)
            self._read_at = self._written = 0
        return _decode(payload)


async def spilled(
    produce: Callable[[Spill], Awaitable[None]],
    *,
    counted: bool = False,
    memory_limit: int = MEMORY_LIMIT,
) -> AsyncGenerator[Any, None]:
    """The rows ``produce(spill)`` puts, read while it runs in a task of its own (first the
    count it gives to ``put_total``, when ``counted``).

    Closing the iterator early (the client went away) cancels the producer, which releases its
    connection in its own ``finally``, and deletes the file.
    """
    spill = Spill(memory_limit)

    async def run() -> None:
        try:
            await produce(spill)
        except asyncio.CancelledError:
            spill.finish()
            raise
        except BaseException as exc:  # handed to the consumer, after the rows before it
            spill.finish(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            spill.finish()

    task = asyncio.ensure_future(run())
    try:
        if counted:
            yield await spill.get_total()
        while (rows := await spill.get()) is not None:
            for row in rows:
                yield row
    finally:
        task.cancel()
        try:
            await asyncio.wait([task])  # its own ``finally`` gives the connection back
        finally:
            spill.close()

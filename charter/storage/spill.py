"""A query's rows read at database speed, handed on at the reader's pace.

Why: a result streamed straight from a cursor holds a database connection (and, on SQLite, a
snapshot) for as long as the slowest client takes to read it. A dozen clients that ask for a
large collection and never read would hold every pooled connection, and a request that reads a
record while it iterates a search would wait for a second connection that never comes. So a
producer task reads the cursor into a ``Spill`` and gives the connection back as soon as the
cursor is exhausted; the consumer takes rows from the spill when it wants them. While the
consumer keeps up, the producer keeps at most a few megabytes ahead of it (a fast client costs
no disk); once the consumer has taken nothing for a moment (its socket is blocked), the rest is
drained at database speed, beyond the memory limit into an anonymous temporary file (its pages
are the kernel's page cache, not the server's memory). A slow reader costs disk, not
connections or RAM.
"""

from __future__ import annotations

import asyncio
import collections
import os
import tempfile
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import msgspec

from .base import Row

__all__ = ["MEMORY_LIMIT", "Spill", "spilled"]

MEMORY_LIMIT = 2 * 1024 * 1024  # bytes of row data kept in memory per stream
PATIENCE = 0.25  # seconds a full spill waits for its consumer before writing to disk
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

    Up to ``memory_limit`` bytes are kept in memory. Beyond that the producer waits while the
    consumer keeps up (a fast client costs no disk), but never longer than ``patience`` for
    one batch: then the spill drains, and batches beyond the memory limit go to a temporary
    file; once anything is in the file every later batch follows it there (rows keep their
    order). The file is emptied whenever the consumer has read all of it, and deleted by
    ``close``.
    """

    __slots__ = (
        "_asked",
        "_asking",
        "_done",
        "_draining",
        "_error",
        "_file",
        "_in_memory",
        "_limit",
        "_memory",
        "_patience",
        "_read_at",
        "_taken",
        "_wake",
        "_written",
        "spilled_bytes",
        "total",
    )

    def __init__(self, memory_limit: int = MEMORY_LIMIT, patience: float = PATIENCE) -> None:
        self._limit = memory_limit
        self._patience = patience
        self._memory: collections.deque[tuple[list[Row], int]] = collections.deque()
        self._in_memory = 0
        self._file: int | None = None  # the descriptor of an unlinked temporary file
        self._written = 0  # end of the file's data
        self._read_at = 0  # start of its unread data
        self._done = False
        self._error: BaseException | None = None
        self._wake = asyncio.Event()  # set by the producer: there is something to take
        self._taken = asyncio.Event()  # set by the consumer: it took a batch
        self._asked = asyncio.Event()  # set by the consumer: it waits for a batch
        self._asking = False
        self._draining = False  # the consumer was found stuck: keep everything, wait no more
        self.spilled_bytes = 0  # written to disk in all (for tests and measurements)
        self.total: int | None = None  # the count of the rows, for a producer that reads it

    def put_total(self, total: int) -> None:
        """The count of the rows (read before them, in their snapshot)."""
        self.total = total
        self._wake.set()

    async def put(self, rows: list[Row]) -> None:
        """Append a batch. With memory full, wait for the consumer while it keeps taking
        batches; once it has taken none for ``patience`` seconds, drain: every batch from then
        on is kept without waiting, in the file beyond the memory limit."""
        if not rows:
            return
        size = _size(rows)
        while not self._draining and self._full(size):
            if not await self._wait(self._taken):
                break
        if self._full(size) or self._read_at < self._written:
            self._spill(rows)
        else:
            self._memory.append((rows, size))
            self._in_memory += size
        self._wake.set()

    async def wanted(self) -> None:
        """For a producer that should read no further ahead than it must: wait until the
        consumer has taken everything and asks for more, or has not asked for ``patience``
        seconds (then drain: from then on this returns at once)."""
        while not self._draining and (self._memory or not self._asking):
            if not await self._wait(self._asked):
                return

    async def _wait(self, event: asyncio.Event) -> bool:
        """Whether ``event`` came within ``patience``; if not, the consumer is stuck: drain."""
        event.clear()
        try:
            await asyncio.wait_for(event.wait(), self._patience)
        except TimeoutError:
            self._draining = True
            return False
        return True

    def _full(self, size: int) -> bool:
        """Whether a batch of ``size`` bytes must wait or go to the file (not while the file
        has rows: later rows follow them there; not when memory is empty: one batch fits)."""
        return (
            self._read_at >= self._written
            and self._in_memory > 0
            and self._in_memory + size > self._limit
        )

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
            os.close(self._file)
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
                self._taken.set()
                return rows
            if self._read_at < self._written:
                return self._unspill()
            if self._done:
                self._raise()
                return None
            self._wake.clear()
            self._asking = True
            self._asked.set()
            try:
                await self._wake.wait()
            finally:
                self._asking = False

    def _spill(self, rows: list[Row]) -> None:
        if self._file is None:
            # Unlinked at once: the kernel frees it when it is closed, or the process ends.
            self._file, path = tempfile.mkstemp(prefix="charter-spill-")
            os.unlink(path)
        payload = _encode(rows)
        frame = len(payload).to_bytes(_FRAME, "big") + payload
        done = 0
        while done < len(frame):  # (a regular file takes it all at once, barring a full disk)
            done += os.pwrite(self._file, frame[done:], self._written + done)
        self._written += len(frame)
        self.spilled_bytes += len(frame)

    def _unspill(self) -> list[Row]:
        assert self._file is not None
        fd = self._file
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
    patience: float = PATIENCE,
) -> AsyncGenerator[Any, None]:
    """The rows ``produce(spill)`` puts, read while it runs in a task of its own (first the
    count it gives to ``put_total``, when ``counted``).

    Closing the iterator early (the client went away) cancels the producer, which releases its
    connection in its own ``finally``, and deletes the file.
    """
    spill = Spill(memory_limit, patience)

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

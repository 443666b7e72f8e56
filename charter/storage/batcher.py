"""Point reads answered in batches by dedicated threads.

Handing each read to a thread pool costs a thread wake-up and a loop wake-up per read. Under
load, reads queue up faster than one is answered; a batcher thread takes every queued read,
answers them on its own connection, and resolves all of their futures with a single call into
each waiting event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ReadBatcher", "drain"]

J = TypeVar("J")

_MAX_BATCH = 128

Job = tuple[Callable[[Any], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
Result = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _resolve(results: list[Result]) -> None:
    for future, value, error in results:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def drain(jobs: queue.SimpleQueue[J | None], first: J, most: int) -> tuple[list[J], bool]:
    """``first`` and what else is queued already (up to ``most`` in all), without waiting;
    and whether the ``None`` that asks the thread to stop was among them."""
    batch = [first]
    while len(batch) < most:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            return batch, False
        if job is None:
            return batch, True
        batch.append(job)
    return batch, False


def _call(fn: Callable[[Any], Any], conn: Any) -> Any:
    return fn(conn)


class ReadBatcher:
    """Threads, each with a connection from ``connect``, answering queued reads in batches.

    ``call(fn, connection)`` runs each read (a backend passes one that retries and translates
    its errors). A thread that cannot connect answers its reads with the error and tries again
    for the next ones: a read never waits for a thread that is gone.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        threads: int = 2,
        *,
        call: Callable[[Callable[[Any], Any], Any], Any] = _call,
    ) -> None:
        self._connect = connect
        self._call = call
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"charter-read-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[Any], Any]) -> asyncio.Future[Any]:
        """Run ``fn(connection)`` on a batcher thread; a future of its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((fn, loop, future))
        return future

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        conn: Any = None
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                batch, stop = drain(self._queue, job, _MAX_BATCH)
                if conn is None:
                    try:
                        conn = self._call(lambda _: self._connect(), None)
                    except Exception as exc:  # each read of the batch is answered with it
                        _deliver([(loop, (future, None, exc)) for _, loop, future in batch])
                if conn is not None:
                    self._answer(conn, batch)
                if stop:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _answer(self, conn: Any, batch: list[Job]) -> None:
        answers: list[tuple[asyncio.AbstractEventLoop, Result]] = []
        for fn, loop, future in batch:
            try:
                answers.append((loop, (future, self._call(fn, conn), None)))
            except Exception as exc:  # reported to the waiting request
                answers.append((loop, (future, None, exc)))
        _deliver(answers)


def _deliver(answers: list[tuple[asyncio.AbstractEventLoop, Result]]) -> None:
    """Resolve the futures with a single call into each waiting event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Result]] = {}
    for loop, result in answers:
        by_loop.setdefault(loop, []).append(result)
    for loop, results in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve, results)

"""Wake-ups between the workers of one machine that share a SQLite file (``--workers N``).

Each hub binds a Unix datagram socket in a folder next to the database
(``<db>-charter-wake/<pid>-<random>.sock``). After a local commit that logged events, it sends
one byte to every other socket in the folder; the event loop watches its own socket
(``add_reader``) and wakes the hub. Why datagrams: a send never blocks (a full queue means that
worker is awake anyway), costs one system call per worker, and nothing runs while nobody
commits: no polling. A socket whose process is gone refuses the datagram (ECONNREFUSED) and is
removed by the sender. A folder path too long for a socket address (about 100 bytes) is
replaced by one in the temporary directory named by a hash of the database's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..storage.sqlite import SQLiteStorage

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["LocalWakeups", "bind_local_wakeups", "wake_folder"]

log = logging.getLogger("charter.realtime")

_SUFFIX = ".sock"
_MAX_ADDRESS = 100  # bytes of a socket path (the system allows 107)
_GONE = (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK)
_SETTLE_NS = 1_000_000_000  # a folder changed this recently may change again in the same tick


def wake_folder(database: str) -> str:
    """The folder of the wake-up sockets of the workers of the SQLite file ``database``."""
    real = os.path.realpath(database)
    folder = f"{real}-charter-wake"
    if len(os.fsencode(folder)) + 20 + len(_SUFFIX) <= _MAX_ADDRESS:
        return folder
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"charter-wake-{digest}")


def bind_local_wakeups(hub: Hub) -> Callable[[], None] | None:
    """Wake ``hub`` on the commits of the other workers on this SQLite file; the function that
    stops it (None: an in-memory database, which no other process can see)."""
    storage = hub.storage
    if not isinstance(storage, SQLiteStorage) or storage.path.startswith("file:"):
        return None
    if storage.path == ":memory:":
        return None
    wakeups = LocalWakeups(wake_folder(storage.path))
    try:
        wakeups.bind(hub.wake)
    except OSError as exc:
        log.warning(
            "no wake-ups from other workers (%s): their events reach this one's subscribers "
            "within a few seconds only",
            exc,
        )
        return None
    stop_commits = storage.on_commit(wakeups.send)
    hub.wake()  # a commit between the hub's start and the bind was not announced to it

    def stop() -> None:
        stop_commits()
        wakeups.close()

    return stop


class LocalWakeups:
    """This worker's socket in ``folder``, and the sending to the others'."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path = ""
        self._sock: socket.socket | None = None
        self._sender: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: list[str] = []
        self._listed = -1  # the folder's mtime when it was listed
        self._folder_fd: int | None = None

    def bind(self, wake: Callable[[], None]) -> None:
        """Bind this worker's socket and call ``wake()`` when a datagram arrives."""
        name = f"{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        for attempt in range(3):  # another worker may remove the empty folder meanwhile
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            path = os.path.join(self.folder, name)
            try:
                sock.bind(path)
                break
            except FileNotFoundError:
                if attempt == 2:
                    sock.close()
                    raise
            except OSError:
                sock.close()
                raise
        self.path = path
        self._sock = sock
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        self._loop = asyncio.get_running_loop()

        def readable() -> None:
            with contextlib.suppress(OSError):  # drain: many commits, one wake-up
                while sock.recv(64):
                    pass
            wake()

        self._loop.add_reader(sock.fileno(), readable)

    def send(self) -> None:
        """One byte to every other worker's socket (never blocks)."""
        sender = self._sender
        if sender is None:
            return
        for path in self._others():
            try:
                sender.sendto(b"\x01", path)
            except OSError as exc:
                if exc.errno in _GONE:  # its process is gone
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                    self._listed = -1
                # else EAGAIN/ENOBUFS: its queue is full, so it has a wake-up waiting already

    def _others(self) -> list[str]:
        """The other workers' sockets. The folder is listed again only when it changed (its
        mtime; while that is under a second old, every time, for clocks that tick coarsely):
        one ``fstat`` of the open folder per commit instead of a listing."""
        try:
            if self._folder_fd is None:
                self._folder_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            changed = os.fstat(self._folder_fd).st_mtime_ns
        except OSError:
            return []
        if changed != self._listed or time.time_ns() - changed < _SETTLE_NS:
            try:
                entries = list(os.scandir(self.folder))
            except OSError:
                return []
            self._peers = [
                e.path for e in entries if e.name.endswith(_SUFFIX) and e.path != self.path
            ]
            self._listed = changed
        return self._peers

    def close(self) -> None:
        """Stop listening, remove this worker's socket and the folder if it is left empty."""
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        if self._folder_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._folder_fd)
            self._folder_fd = None
        if self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)  # fails while other workers have sockets in it
            self.path = ""

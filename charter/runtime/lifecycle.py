"""``Lifecycle``: what the runtime needs of whatever owns the storage (the ``App``): whether it is
open, and a way to open it on first use (a script may call the Table API before any request)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Lifecycle"]


class Lifecycle(Protocol):
    """Opens storage on first use; ``App`` is one."""

    @property
    def started(self) -> bool: ...

    async def startup(self) -> None: ...

"""Storage backends: a small async ABC, its implementations, and the factory that picks one."""

from .base import (
    Change,
    ConflictError,
    DuplicateKey,
    LoggedEvent,
    MissingRecord,
    Row,
    Storage,
    StorageFull,
)
from .factory import open_storage

__all__ = [
    "Change",
    "ConflictError",
    "DuplicateKey",
    "LoggedEvent",
    "MissingRecord",
    "Row",
    "Storage",
    "StorageFull",
    "open_storage",
]

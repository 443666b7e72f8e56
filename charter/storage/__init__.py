"""Storage backends: a small async ABC and its implementations."""

from .base import Change, ConflictError, DuplicateKey, MissingRecord, Row, Storage, open_storage

__all__ = [
    "Change",
    "ConflictError",
    "DuplicateKey",
    "MissingRecord",
    "Row",
    "Storage",
    "open_storage",
]

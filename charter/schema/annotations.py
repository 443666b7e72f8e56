"""Reading type annotations: the one place that knows how ``T | None`` and lists are spelled."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

__all__ = ["is_list_type", "without_none"]

_LISTS = (list, set, frozenset, tuple)


def without_none(tp: Any) -> tuple[Any, bool]:
    """``tp`` without ``None`` among its union members, and whether ``None`` was there."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) < len(get_args(tp)):
            inner = args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
            return inner, True
    return tp, False


def is_list_type(tp: Any) -> bool:
    """Whether ``tp`` (or ``tp | None``) is a list, set, frozenset or tuple type."""
    return get_origin(without_none(tp)[0]) in _LISTS

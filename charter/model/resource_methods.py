"""The resource methods of a table as descriptors: on the class the static helper
(``await Product.get(id)``), on an instance the method a subclass may override; each with the
signatures a type checker sees on either side, and ``resource.*`` to keep overrides typed."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, overload

if TYPE_CHECKING:
    from ..query.model import Query
    from ..runtime.context import RequestContext
    from .table import Table

__all__ = ["resource"]

T = TypeVar("T", bound="Table")
T_co = TypeVar("T_co", covariant=True)


class _ResourceMethod:
    """Class access gives the static helper; instance access gives the resource method."""

    __slots__ = ("instance_fn", "name", "static_fn")

    def __init__(self, name: str, instance_fn: Callable[..., Any], static_fn: Callable[..., Any]):
        self.name = name
        self.instance_fn = instance_fn
        self.static_fn = static_fn

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        if obj is None:
            return types.MethodType(self.static_fn, cls)
        return types.MethodType(self.instance_fn, obj)


# -- the signatures type checkers see: static on the class, resource method on an instance ----


class _StaticGet(Protocol[T_co]):
    def __call__(
        self, id: Any, context: RequestContext | None = None
    ) -> Coroutine[Any, Any, T_co | None]: ...


class _BoundGet(Protocol[T_co]):
    def __call__(self, query: Query | None = None) -> Coroutine[Any, Any, T_co | None]: ...


class _StaticSearch(Protocol[T_co]):
    def __call__(
        self, query: Query | dict[str, Any] | None = None, context: RequestContext | None = None
    ) -> AsyncIterator[T_co]: ...


class _BoundSearch(Protocol[T_co]):
    def __call__(self, query: Query | dict[str, Any] | None = None) -> AsyncIterator[T_co]: ...


class _StaticPut(Protocol):
    def __call__(
        self, record: Table | Mapping[str, Any], context: RequestContext | None = None
    ) -> Coroutine[Any, Any, None]: ...


class _StaticPatch(Protocol):
    def __call__(
        self, id: Any, changes: Any, context: RequestContext | None = None
    ) -> Coroutine[Any, Any, None]: ...


class _BoundWrite(Protocol):
    """``put(data)`` and ``patch(data)`` on an instance."""

    def __call__(self, data: Any) -> Coroutine[Any, Any, None]: ...


class _StaticPost(Protocol[T_co]):
    def __call__(
        self, data: Any, context: RequestContext | None = None
    ) -> Coroutine[Any, Any, T_co]: ...


class _BoundPost(Protocol[T_co]):
    def __call__(self, data: Any) -> Coroutine[Any, Any, T_co]: ...


class _StaticDelete(Protocol):
    def __call__(
        self, id: Any, context: RequestContext | None = None
    ) -> Coroutine[Any, Any, bool]: ...


class _BoundDelete(Protocol):
    def __call__(self) -> Coroutine[Any, Any, bool]: ...


class _StaticPublish(Protocol):
    def __call__(
        self, topic: Any, message: Any, context: RequestContext | None = None
    ) -> Coroutine[Any, Any, None]: ...


class _BoundPublish(Protocol):
    def __call__(self, message: Any) -> Coroutine[Any, Any, None]: ...


class _Get(_ResourceMethod):
    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, cls: type[T]) -> _StaticGet[T]: ...
        @overload
        def __get__(self, obj: T, cls: type[T] | None = None) -> _BoundGet[T]: ...
        def __get__(self, obj: Any, cls: type | None = None) -> Any: ...


class _Search(_ResourceMethod):
    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, cls: type[T]) -> _StaticSearch[T]: ...
        @overload
        def __get__(self, obj: T, cls: type[T] | None = None) -> _BoundSearch[T]: ...
        def __get__(self, obj: Any, cls: type | None = None) -> Any: ...


class _Put(_ResourceMethod):
    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, cls: type[Table]) -> _StaticPut: ...
        @overload
        def __get__(self, obj: Table, cls: type[Table] | None = None) -> _BoundWrite: ...
        def __get__(self, obj: Any, cls: type | None = None) -> Any: ...


class _Patch(_ResourceMethod):
    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, cls: type[Table]) -> _StaticPatch: ...
        @overload
        def __get__(self, obj: Table, cls: type[Table] | None = None) -> _BoundWrite: ...
        def __get__(self, obj: Any, cls: type | None = None) -> Any: ...


class _Post(_ResourceMethod):
    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, cls: type[T]) -> _StaticPost[T]: ...
        @overload
        def __get__(self, obj: T, cls: type[T] | None = None) -> _BoundPost[T]: ...
        def __get__(self, obj: Any, cls: type | None = None) -> Any: ...


class _Delete(_ResourceMethod):
    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, cls: type[Table]) -> _StaticDelete: ...
        @overload
        def __get__(self, obj: Table, cls: type[Table] | None = None) -> _BoundDelete: ...
        def __get__(self, obj: Any, cls: type | None = None) -> Any: ...


class _Publish(_ResourceMethod):
    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, cls: type[Table]) -> _StaticPublish: ...
        @overload
        def __get__(self, obj: Table, cls: type[Table] | None = None) -> _BoundPublish: ...
        def __get__(self, obj: Any, cls: type | None = None) -> Any: ...


class _Resource:
    """Decorators that tell a type checker which resource method a function overrides.

    ``Table.__init_subclass__`` wraps an override whether or not it is decorated (so they
    change nothing at run time); decorated, ``Order.post(data)`` on the class stays the typed
    static helper instead of looking like the plain function.
    """

    @staticmethod
    def get(fn: Callable[..., Any]) -> _Get:
        return cast("_Get", fn)

    @staticmethod
    def search(fn: Callable[..., Any]) -> _Search:
        return cast("_Search", fn)

    @staticmethod
    def put(fn: Callable[..., Any]) -> _Put:
        return cast("_Put", fn)

    @staticmethod
    def patch(fn: Callable[..., Any]) -> _Patch:
        return cast("_Patch", fn)

    @staticmethod
    def post(fn: Callable[..., Any]) -> _Post:
        return cast("_Post", fn)

    @staticmethod
    def delete(fn: Callable[..., Any]) -> _Delete:
        return cast("_Delete", fn)

    @staticmethod
    def publish(fn: Callable[..., Any]) -> _Publish:
        return cast("_Publish", fn)


resource = _Resource()

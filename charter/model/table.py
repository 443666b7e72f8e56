"""``Table``: declare a typed record once; get a REST resource, a Python API and storage.

Resource methods (``get search put patch delete post publish``) live on both levels, as in
HarperDB: ``await Product.get(id)`` on the class is the static helper, and ``self.get(query)``
on an instance is the resource method a subclass may override (``super()`` gives the default).
The static helper goes through the instance method, so an override changes both the endpoint
and the Python API.

Typing: each resource method is a descriptor class of its own (``resource_methods.py``) whose
``__get__`` overloads give type checkers the static signature on the class and the resource
signature on an instance, both in terms of the table class (``await Product.get(id)`` is
``Product | None``). ``dataclass_transform`` makes the annotations the constructor's keywords.
An override is a plain function to a type checker; ``resource.post`` & co. say which one it is.
"""

from __future__ import annotations

import inspect
import types
import weakref
from collections.abc import AsyncIterator, Callable
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Literal,
    TypeVar,
    dataclass_transform,
)

from ..config import not_available
from ..errors import CharterError, HttpError, NotFound
from .fields import Field, FieldInfo, RelationshipInfo, relationship
from .methods import MethodSpec, method_spec
from .options import CACHING, TableOptions, check_caching
from .resource_methods import (
    _Delete,
    _Get,
    _Patch,
    _Post,
    _Publish,
    _Put,
    _ResourceMethod,
    _Search,
    resource,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from ..query.model import Condition, Group, Query
    from ..realtime.events import Event
    from ..runtime.context import RequestContext
    from ..runtime.tables import TableRuntime
    from .roles import User

    RowRule = Condition | Group | Query | Sequence[Condition | Group] | None

__all__ = ["Table", "resource"]

RESOURCE_METHODS = ("get", "search", "put", "patch", "post", "delete", "publish")
HOOKS = ("allow_read", "allow_create", "allow_update", "allow_delete")
ROW_RULES = ("read_filter", "write_filter")


async def maybe_await(value: Any) -> Any:
    """Await ``value`` when a user method returned an awaitable (sync and async both work)."""
    if inspect.isawaitable(value):
        return await value
    return value


R = TypeVar("R")


class _ClassProperty(Generic[R]):
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], R]) -> None:
        self.fn = fn

    def __get__(self, obj: Any, cls: type) -> R:
        return self.fn(cls)


def _runtime(cls: type[Table]) -> TableRuntime:
    """The runtime that serves ``cls`` here: the one app holding it, or, when several apps in
    this process hold it, the app of the running request or transaction."""
    for klass in cls.__mro__:
        bindings: list[weakref.ref[TableRuntime]] | None = klass.__dict__.get(
            "__charter_runtimes__"
        )
        if bindings:
            break
    else:
        bindings = None
    live = [r for r in (ref() for ref in bindings or ()) if r is not None]
    if len(live) == 1:
        return live[0]
    if not live:
        raise CharterError(
            f"{cls.__name__} is not part of a built App: list it in App(tables=[...])"
        )
    return _choose_runtime(cls, live)


def _choose_runtime(cls: type[Table], live: list[TableRuntime]) -> TableRuntime:
    for runtime in live:
        if runtime.serves_current():  # the app of the running request or transaction
            return runtime
    started = [r for r in live if r.running]
    if len(started) == 1:
        return started[0]
    if not started:
        return live[-1]  # the newest app: it is the one being set up
    raise CharterError(
        f"{cls.__name__} is served by {len(started)} running apps; outside a request, say "
        "which one with `async with app.transaction():`"
    )


def bind_runtime(cls: type[Table], runtime: TableRuntime) -> None:
    """Record that an app serves ``cls`` (several apps may, each with its own storage)."""
    bindings: list[weakref.ref[TableRuntime]] = [
        ref for ref in cls.__dict__.get("__charter_runtimes__", ()) if ref() is not None
    ]
    bindings.append(weakref.ref(runtime))
    type.__setattr__(cls, "__charter_runtimes__", bindings)


# -- default resource methods (instance level) -------------------------------------------------


async def _get(self: Table, query: Query | None = None) -> Any:
    return self if self._exists else None


def _search(self: Table, query: Query | dict[str, Any] | None = None) -> AsyncIterator[Table]:
    return _runtime(type(self)).search(query, context=self._acting_for())


async def _put(self: Table, data: Any) -> None:
    await _runtime(type(self)).replace(self, data)


async def _patch(self: Table, data: Any) -> None:
    await _runtime(type(self)).merge(self, data)


async def _post(self: Table, data: Any) -> Any:
    return await _runtime(type(self)).create(data, self._acting_for())


async def _delete(self: Table) -> bool:
    return await _runtime(type(self)).remove(self)


async def _publish(self: Table, message: Any) -> None:
    await _runtime(type(self)).publish(self._key, message, self._acting_for())


# -- static helpers (class level) ----------------------------------------------------------------


# A static helper given a ``context`` acts as that request's user: its grants and row rules
# apply (as over REST). Without one it is server code: unrestricted.


async def _static_get(cls: type[Table], id: Any, context: RequestContext | None = None) -> Any:
    runtime = _runtime(cls)
    if context is None:
        instance = await runtime.load(id, context)
    else:
        runtime.access(context).require(context, runtime.name, "read")
        try:
            instance = await runtime.load_as(id, context)
        except NotFound:
            return None
        instance._acting = True
    return await maybe_await(instance.get(None))


def _static_search(
    cls: type[Table], query: Query | dict[str, Any] | None = None, context: Any = None
) -> AsyncIterator[Any]:
    instance = cls._blank(None, context, acting=context is not None)
    return instance.search(query)  # type: ignore[no-any-return]


async def _static_put(cls: type[Table], record: Any, context: Any = None) -> None:
    data = record.to_dict() if isinstance(record, Table) else dict(record)
    key = data.get(cls.primary_key)
    if key is None:
        raise HttpError(422, f"put() needs the primary key {cls.primary_key!r}")
    await maybe_await(cls._blank(key, context, acting=context is not None).put(data))


async def _static_patch(cls: type[Table], id: Any, changes: Any, context: Any = None) -> None:
    runtime = _runtime(cls)

    # The record is read in the transaction that writes it: a conflict re-runs both, so a
    # patch by id never fails because another write came first.
    async def run(txn: Any) -> None:
        instance = await runtime.load_for(id, context, "update")
        if not instance._exists:
            raise NotFound(f"{cls.__charter_name__} {id!r} not found")
        instance._acting = context is not None
        await maybe_await(instance.patch(changes))

    await runtime._in_txn(run)


async def _static_post(cls: type[Table], data: Any, context: Any = None) -> Any:
    return await maybe_await(cls._blank(None, context, acting=context is not None).post(data))


async def _static_delete(cls: type[Table], id: Any, context: Any = None) -> bool:
    try:
        instance = await _runtime(cls).load_for(id, context, "delete")
    except NotFound:  # outside the caller's rules: as if absent
        return False
    instance._acting = context is not None
    return bool(await maybe_await(instance.delete()))


async def _static_publish(cls: type[Table], topic: Any, message: Any, context: Any = None) -> None:
    await maybe_await(cls._blank(topic, context, acting=context is not None).publish(message))


_DEFAULTS: dict[str, tuple[type[_ResourceMethod], Callable[..., Any], Callable[..., Any]]] = {
    "get": (_Get, _get, _static_get),
    "search": (_Search, _search, _static_search),
    "put": (_Put, _put, _static_put),
    "patch": (_Patch, _patch, _static_patch),
    "post": (_Post, _post, _static_post),
    "delete": (_Delete, _delete, _static_delete),
    "publish": (_Publish, _publish, _static_publish),
}


@dataclass_transform(kw_only_default=True, field_specifiers=(Field, FieldInfo, relationship))
class Table:
    """Base class of every table. Annotated attributes are its fields (see ``Field``)."""

    __charter_table__: ClassVar[bool] = True
    __charter_name__: ClassVar[str] = "Table"
    __charter_options__: ClassVar[TableOptions] = TableOptions()
    __charter_declared__: ClassVar[dict[str, Any]] = {}
    __charter_annotations__: ClassVar[set[str]] = set()
    __charter_overrides__: ClassVar[frozenset[str]] = frozenset()
    __charter_methods__: ClassVar[dict[str, MethodSpec]] = {}

    get = _Get("get", _get, _static_get)
    search = _Search("search", _search, _static_search)
    put = _Put("put", _put, _static_put)
    patch = _Patch("patch", _patch, _static_patch)
    post = _Post("post", _post, _static_post)
    delete = _Delete("delete", _delete, _static_delete)
    publish = _Publish("publish", _publish, _static_publish)

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        source: Any = None,
        expiration: float | None = None,
        eviction: float | None = None,
        scan_interval: float | None = None,
        source_timeout: float | None = None,
        audit: bool | None = None,
        extra: Literal["forbid", "allow"] | None = None,
        strict_queries: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        own = inspect.get_annotations(cls)
        declared: dict[str, Any] = {}
        for attr in own:
            if attr.startswith("_") or attr not in cls.__dict__:
                continue
            value = cls.__dict__[attr]
            if isinstance(value, FieldInfo | RelationshipInfo) or not callable(value):
                declared[attr] = value
                delattr(cls, attr)
        cls.__charter_declared__ = declared
        cls.__charter_annotations__ = {a for a in own if not a.startswith("_")}
        parent = cls.__charter_options__
        given = {
            "source": source,
            "expiration": expiration,
            "eviction": eviction,
            "scan_interval": scan_interval,
            "source_timeout": source_timeout,
            "audit": audit,
            "extra": extra,
            "strict_queries": strict_queries,
        }
        options = {k: v for k, v in given.items() if v is not None}
        _refuse_unbuilt(cls.__name__, options)
        merged = {**_options_dict(parent), **options, "name": name or cls.__name__}
        # (a default source_timeout is not given: only one given here is checked)
        caching = {k: merged[k] for k in CACHING if merged[k] is not None}
        if "source_timeout" not in options:
            caching.pop("source_timeout")
        check_caching(cls.__name__, caching)
        cls.__charter_options__ = TableOptions(**merged)
        cls.__charter_name__ = cls.__charter_options__.name or cls.__name__
        overrides = set(cls.__charter_overrides__)
        for method in RESOURCE_METHODS:
            fn = cls.__dict__.get(method)
            if isinstance(fn, types.FunctionType):
                descriptor, _, static = _DEFAULTS[method]
                setattr(cls, method, descriptor(method, fn, static))
                overrides.add(method)
        overrides.update(h for h in (*HOOKS, *ROW_RULES, "connect") if h in cls.__dict__)
        cls.__charter_overrides__ = frozenset(overrides)
        methods = dict(cls.__charter_methods__)
        for value in cls.__dict__.values():
            spec = method_spec(value)
            if spec is not None:
                if spec.name in RESOURCE_METHODS or spec.name in declared:
                    raise TypeError(
                        f"{cls.__name__}.{spec.name}: a served method needs its own name"
                    )
                methods[spec.name] = spec
        cls.__charter_methods__ = methods

    # -- instances ---------------------------------------------------------------------------

    def __init__(self, **values: Any) -> None:
        self._key = values.get(type(self).primary_key) if values else None
        self._data: dict[str, Any] | None = dict(values)
        self._raw: str | None = None
        self._version = 0
        self._exists = False
        self._context: Any = None
        self._acting = False
        self._from_source = False

    @classmethod
    def _blank(cls, key: Any, context: Any = None, *, acting: bool = False) -> Any:
        """An instance standing for ``key`` (or the collection when None), not loaded.

        ``acting``: its reads and writes act as ``context``'s user (its grants and row rules
        apply), as REST's do; otherwise they are server code's.
        """
        instance = cls.__new__(cls)
        instance._key = key
        instance._data = None
        instance._raw = None
        instance._version = 0
        instance._exists = False
        instance._context = context
        instance._acting = acting and context is not None
        instance._from_source = False
        return instance

    def _acting_for(self) -> RequestContext | None:
        """The request whose user this instance acts for (None: server code)."""
        return self._context if self._acting else None

    if not TYPE_CHECKING:  # hidden from type checkers: the annotations type the attributes

        def __getattr__(self, name: str) -> Any:
            if name.startswith("_"):
                raise AttributeError(name)
            data = self._values()
            if name in data:
                return data[name]
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def _values(self) -> dict[str, Any]:
        if self._data is None:
            self._data = _runtime(type(self)).decode(self._raw) if self._raw else {}
        return self._data

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._key!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @_ClassProperty
    def primary_key(cls: type[Table]) -> str:
        """Name of the primary key attribute."""
        return _runtime(cls).schema.primary_key

    def get_id(self) -> Any:
        return self._key

    def get_updated_time(self) -> int:
        """When the record was last written, in ms since the epoch (0 when never stored)."""
        return self._version

    def get_context(self) -> RequestContext | None:
        """The request context this record was loaded in (else the running one)."""
        return self._context or _runtime(type(self)).current_context()

    def was_loaded_from_source(self) -> bool:
        """True when this record was just fetched from a caching table's source (a miss or
        an expired record, loaded for this read or for a read it waited with)."""
        return self._from_source

    @classmethod
    async def invalidate(cls, id: Any) -> None:
        """Caching tables: mark the cached copy of ``id`` stale (on every worker); the next
        read loads it from the source again, or serves the stale copy while it does if the
        source's ``allow_stale_while_revalidate`` says so (docs/caching.md)."""
        cache = _runtime(cls).cache
        if cache is None:
            raise CharterError(f"{cls.__name__} is not a caching table (it has no source=)")
        await cache.invalidate(id)

    def __charter_public__(self, whole: bool = False) -> dict[str, Any]:
        """What the client may see of this record (used when a method returns it): without
        the attributes the request's role may not read (``whole``: any client's view)."""
        runtime = _runtime(type(self))
        if whole:
            return runtime.public(self._values())
        return runtime.shown(self._values(), runtime.access(runtime.current_context()))

    def to_dict(self) -> dict[str, Any]:
        """Every stored attribute of the record (hidden ones included: this is server-side)."""
        return dict(self._values())

    @classmethod
    async def add_to(cls, id: Any, field: str, amount: float = 1) -> None:
        """Add ``amount`` to a numeric attribute, atomically and without conflicts."""
        await _runtime(cls).add_to(id, field, amount)

    # -- per-record access hooks (HarperDB allowRead & co) ------------------------------------

    def allow_read(self, user: Any) -> bool:
        return True

    def allow_create(self, user: Any) -> bool:
        return True

    def allow_update(self, user: Any) -> bool:
        return True

    def allow_delete(self, user: Any) -> bool:
        return True

    # -- realtime (SPEC section 8) -------------------------------------------------------------

    @classmethod
    def subscribe(
        cls,
        id: Any = None,
        *,
        prefix: str | None = None,
        query: Query | dict[str, Any] | None = None,
        after: int | None = None,
        start_time: int | None = None,
        previous_count: int | None = None,
        omit_current: bool = False,
    ) -> AsyncIterator[Event]:
        """The events of one record (``id``), of the keys starting with ``prefix``, or of the
        records matching ``query`` (default: the whole table), on every worker, in commit
        order: ``async for event in Product.subscribe("p1")``.

        The current record(s) come first unless ``omit_current``; ``after`` resumes after an
        event's position, ``start_time`` (ms) and ``previous_count`` replay history first.
        Inside a request it sees what the request's user may read; server code sees all.
        Raises ``charter.realtime.Overflow`` (resume from its ``position``) when the loop
        falls ``subscriber_buffer`` events behind.
        """
        return _runtime(cls).subscribe(
            id,
            prefix=prefix,
            query=query,
            after=after,
            start_time=start_time,
            previous_count=previous_count,
            omit_current=omit_current,
        )

    # A table may hold its WebSockets' conversations itself: ``async def connect(self, incoming)``
    # yields what is sent, ``incoming`` the client's messages (docs/realtime-websocket.md).

    # -- row rules (SPEC section 6): conditions ANDed into every read or write of a user -------

    @classmethod
    def read_filter(cls, user: User | None) -> RowRule | Awaitable[RowRule]:
        """The rows ``user`` (None: not signed in) may read, as conditions (``owner ==
        user.id``) compiled into the SQL of every read; None: every row. Super users and
        server code are not filtered. May be async."""
        return None

    @classmethod
    def write_filter(cls, user: User | None) -> RowRule | Awaitable[RowRule]:
        """The rows ``user`` may update or delete, and that an insert or update may leave
        (ANDed with ``read_filter``); None: every row it may read. May be async."""
        return None


def _options_dict(options: TableOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in TableOptions.__slots__}


def _refuse_unbuilt(table: str, options: dict[str, Any]) -> None:
    """The audit option is accepted by the SPEC but not built: never ignore it."""
    if options.get("audit"):
        raise not_available(
            f"class {table}(Table, audit=True)",
            "the audit log",
            "remove audit=True (a record's updated time is kept: get_updated_time())",
        )

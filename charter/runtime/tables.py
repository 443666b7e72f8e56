"""``TableRuntime``: one table's operations inside the current transaction.

Validation, defaults, server-maintained fields, keys, encoding and change events happen here,
once, whichever way a write arrives (REST, a Python static helper, a method or an RPC).
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import CharterError, Conflict, Forbidden, NotFound, ValidationError
from ..model.table import maybe_await
from ..query.model import Query
from ..schema import TableSchema
from ..schema.bounds import key_problem, value_problems
from ..schema.validation import details_from_message, validate_object
from ..storage import Row, Storage
from .access import DELETE, INSERT, READ, UPDATE, forbidden_attributes
from .cached import CachingTable
from .context import RequestContext, current_context
from .events import EventBus
from .lifecycle import Lifecycle
from .pending import PendingReads
from .searches import TableSearch
from .transaction import Transaction, current_transaction, run_in_transaction

if TYPE_CHECKING:
    from ..model.table import Table
    from ..sources.cache import Cache

__all__ = ["TableRuntime"]

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.decode


class TableRuntime(TableSearch, CachingTable):
    """Binds a table class to its schema, a storage and an event bus.

    Args:
        tables: every table runtime of the same app by name (joins, selects, related hooks).
        lifecycle: opens the storage on first use (the app).
    """

    def __init__(
        self,
        cls: type[Table],
        schema: TableSchema,
        *,
        storage: Storage,
        events: EventBus,
        tables: Mapping[str, TableRuntime],
        lifecycle: Lifecycle,
    ) -> None:
        self.storage = storage
        self.reads = PendingReads(storage)  # searches that see the transaction's own writes
        self.events = events
        self.realtime: Any = None  # the app's hub (``charter.realtime``): Table.subscribe
        self.cache: Cache | None = None  # a caching table's source (``charter.sources``)
        self.tables = tables
        self.lifecycle = lifecycle
        self.cls = cls
        self.schema = schema
        self.name = schema.name
        self.key = schema.primary_key
        self._record_decoder = msgspec.json.Decoder(schema.record_type)
        self.hidden = schema.hidden
        self.has_created = [f.name for f in schema.fields.values() if f.info.created_time]
        self.has_updated = [f.name for f in schema.fields.values() if f.info.updated_time]
        self.server_fields = [
            f
            for f in schema.fields.values()
            if not f.info.input and not f.info.primary_key and f.info.has_default
        ]
        # A PUT needs the stored record to keep what clients cannot write, to keep the creation
        # time, or to ask the right hook (allow_update or allow_create); otherwise it is blind.
        hooks = {"allow_create", "allow_update"} & cls.__charter_overrides__
        self.put_reads = bool(schema.server_only or self.has_created or hooks)
        self._rules = None
        self._catalog = None

    # -- decoding and encoding ---------------------------------------------------------------

    def decode(self, raw: str) -> dict[str, Any]:
        """The Python values of a stored document."""
        if self.schema.options.extra == "allow":
            data: dict[str, Any] = _json_decode(raw)
            typed = msgspec.convert(
                {k: v for k, v in data.items() if k in self.schema.fields},
                self.schema.record_type,
                strict=False,
            )
            data.update(msgspec.structs.asdict(typed))
            return data
        return msgspec.structs.asdict(self._record_decoder.decode(raw))

    def public(self, data: dict[str, Any]) -> dict[str, Any]:
        """What a client may see of a record (``returned=False`` fields removed)."""
        if not self.hidden:
            return data
        return {k: v for k, v in data.items() if k not in self.hidden}

    def instance(self, key: Any, row: Row | None, context: Any = None) -> Any:
        instance = self.cls._blank(key, context)
        if row is not None:
            instance._raw = row.data
            instance._version = row.version
            instance._exists = True
        return instance

    # -- transaction plumbing ------------------------------------------------------------------

    def current_context(self) -> RequestContext | None:
        """The running request's context (``Table.get_context`` asks through here)."""
        return current_context()

    @property
    def running(self) -> bool:
        """Whether this runtime's storage is open."""
        return self.lifecycle.started

    def serves_current(self) -> bool:
        """Whether the running request or transaction belongs to this runtime's app."""
        context = current_context()
        if context is not None:
            return context.storage is self.storage
        txn = current_transaction()
        return txn is not None and txn.storage is self.storage

    def _txn(self) -> Transaction | None:
        return current_transaction()

    async def _in_txn(self, fn: Any) -> Any:
        """Run ``fn(txn)`` in the current transaction, or a new one committed right away."""
        if not self.lifecycle.started:
            await self.lifecycle.startup()
        result, _ = await run_in_transaction(self.storage, fn)
        return result

    # -- reads ---------------------------------------------------------------------------------

    def check_key(self, key: Any) -> Any:
        """``key`` if it can name a record of this table; ``ValidationError`` otherwise (a
        string key over ``MAX_KEY_BYTES``, an integer outside 64 bits included)."""
        if isinstance(key, str | int) and not isinstance(key, bool):
            problem = key_problem(key)
            if problem is None:
                return key
            raise ValidationError(
                f"not a valid {self.name} key: {problem}",
                details=[{"loc": ["path", self.key], "code": "STRING_CONSTRAINT"
                          if isinstance(key, str) else "NUMERIC_CONSTRAINT", "message": problem}],
            )  # fmt: skip
        if isinstance(key, uuid.UUID):
            return str(key)
        raise ValidationError(f"{key!r} is not a valid {self.name} key")

    async def load(self, key: Any, context: Any = None) -> Any:
        key = self.check_key(key)
        if not self.lifecycle.started:  # a script may use the Table API first: open storage then
            await self.lifecycle.startup()
        txn = self._txn()
        row = await (txn.read(self.name, key) if txn else self.storage.fetch(self.name, key))
        cache = self.cache
        if cache is not None and self.cache_serves(txn, key, row):
            row, loaded = await self.through_cache(key, row, txn)
            instance = self.instance(key, row, context)
            instance._from_source = loaded
            return instance
        return self.instance(key, row, context)

    async def load_for(self, key: Any, context: RequestContext | None, right: str) -> Any:
        """The record ``key`` for a write needing ``right``, as ``context``'s user may reach
        it (an instance that does not exist when there is none): 401/403 before anything is
        read when the user lacks ``right`` or, on a caching table, the read right (a load may
        call the origin; a caller that may not read never causes one)."""
        access = self.access(context)
        if access.unrestricted:
            return await self.load(key, context)
        access.require(context, self.name, right)
        if self.cache is not None:
            access.require(context, self.name, READ)
        return await self.load_as(key, context, write=True)

    async def load_readable(self, raw_key: str, context: Any = None, *, write: bool = False) -> Any:
        """The record a path names, for a request: 404 when the key cannot name one, there is
        none, or it is outside the user's read rule (and write rule, for a ``write``); 403 when
        ``allow_read`` denies it."""
        key = self.schema.coerce_key(raw_key)
        if key is None:
            raise NotFound(f"{self.name} {raw_key!r} not found")
        try:
            instance = await self.load_as(key, context, write=write)
        except NotFound:
            raise NotFound(f"{self.name} {raw_key!r} not found") from None
        if not instance._exists:
            raise NotFound(f"{self.name} {raw_key!r} not found")
        await self._hook(instance, "allow_read")
        return instance

    # -- validation ----------------------------------------------------------------------------

    def _invalid(self, data: Any, exc: msgspec.ValidationError, *, partial: bool) -> Exception:
        details = validate_object(
            data,
            self.schema.input_types,
            set() if partial else self.schema.required_on_create,
            ["body"],
            extra_allowed=self.schema.options.extra == "allow",
            ignored=self.schema.server_only,
        )
        if not details:
            details = [details_from_message(str(exc), ["body"])]
        return ValidationError(details=details)

    def client_input(self, data: Any) -> Any:
        """Client input without what clients may not write (``input=False`` is dropped)."""
        if self.schema.server_only and isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in self.schema.server_only}
        return data

    def validate_full(self, data: Any) -> dict[str, Any]:
        """A complete record: checked, defaults applied, no coercion.

        Server-only attributes pass when server code gives them; the REST layer has already
        dropped them from client input (``client_input``).
        """
        try:
            struct = msgspec.convert(data, self.schema.create_type, strict=True)
        except msgspec.ValidationError as exc:
            raise self._invalid(data, exc, partial=False) from None
        values = {k: v for k, v in msgspec.structs.asdict(struct).items() if v is not msgspec.UNSET}
        if self.schema.options.extra == "allow" and isinstance(data, dict):
            for k, v in data.items():
                if k not in self.schema.fields:
                    values[k] = v
        details = value_problems(self.schema, values)  # what every backend can store
        if details:
            raise ValidationError(details=details)
        return values

    def validate_partial(self, data: Any) -> dict[str, Any]:
        try:
            struct = msgspec.convert(data, self.schema.patch_type, strict=True)
        except msgspec.ValidationError as exc:
            raise self._invalid(data, exc, partial=True) from None
        values = {k: v for k, v in msgspec.structs.asdict(struct).items() if v is not msgspec.UNSET}
        if self.schema.options.extra == "allow" and isinstance(data, dict):
            values.update({k: v for k, v in data.items() if k not in self.schema.fields})
        details = value_problems(self.schema, values)  # what every backend can store
        if details:
            raise ValidationError(details=details)
        return values

    def _stamp(self, values: dict[str, Any], *, created: bool) -> None:
        now_ms = int(time.time() * 1000)
        names = (self.has_created if created else []) + self.has_updated
        for name in names:
            tp = self.schema.fields[name].type
            if tp in (int, float) or tp == int | None or tp == float | None:
                values[name] = now_ms
            else:
                values[name] = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)

    def _encode(self, values: dict[str, Any]) -> str:
        """The stored JSON document; a number JSON cannot hold (inf, nan) is refused."""
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValidationError(
                    details=[
                        {"loc": ["body", name], "code": "NUMERIC_CONSTRAINT",
                         "message": f"{value} cannot be stored: numbers must be finite"}
                    ]
                )  # fmt: skip
        return _json_encode(values).decode()

    def _ordered(self, values: dict[str, Any]) -> dict[str, Any]:
        """The record with its attributes in declaration order (extra ones last)."""
        ordered = {name: values[name] for name in self.schema.fields if name in values}
        if len(ordered) != len(values):
            ordered.update((k, v) for k, v in values.items() if k not in ordered)
        return ordered

    def _check_key(self, values: dict[str, Any], key: Any) -> None:
        given = values.get(self.key)
        if given is not None and given != key:
            raise ValidationError(
                "the primary key in the body differs from the one in the URL",
                details=[
                    {
                        "loc": ["body", self.key],
                        "code": "UNMATCHING_PROPERTIES",
                        "message": f"expected {key!r}",
                    }
                ],
            )
        values[self.key] = key

    # -- writes --------------------------------------------------------------------------------

    async def create(self, data: Any, context: RequestContext | None = None) -> Any:
        """Insert a new record; a missing string key is generated. 409 if the key exists.
        With a request ``context``, as its user: its insert right, writable attributes and
        rules (403 when the new record would be outside them)."""
        access = self._restricted(context, INSERT, data)
        if self.cache is not None and not access.unrestricted:
            access.require(context, self.name, READ)  # the origin is asked whether it exists
        values = self.validate_full(data)
        if values.get(self.key) is None:
            if not self.schema.generates_key:
                raise ValidationError(
                    details=[
                        {"loc": ["body", self.key], "code": "MISSING_PROPERTY",
                         "message": "property is required"}
                    ]
                )  # fmt: skip
            values[self.key] = self.schema.new_key()
        for spec in self.server_fields:
            values.setdefault(spec.name, spec.info.make_default())
        self._stamp(values, created=True)
        values = self._ordered(values)
        key = values[self.key]
        instance = self.instance(key, None)
        instance._data = values
        instance._exists = True
        await self._hook(instance, "allow_create")
        if not access.unrestricted:
            await self._check_written(context, access, values)
        raw = self._encode(values)

        def write(txn: Transaction) -> None:
            txn.put(self.name, key, raw, insert=True)
            self._through(txn, key)
            self._on_commit(txn, instance, "put", values)

        # The origin may hold the key though the cache does not: a create of it is a 409, not
        # a local copy shadowing the origin's record.
        if self.cache is not None and (await self.load(key))._exists:
            raise Conflict(f"{self.name} {key!r} already exists")
        txn = current_transaction()
        if txn is not None and self.lifecycle.started:  # (joined: no task, no coroutine)
            write(txn)
        else:
            await self._in_txn(_async(write))
        return instance

    async def replace(self, instance: Any, data: Any) -> None:
        """Replace the record with ``data`` (an upsert): what you PUT is what you GET.

        An instance acting for a request (REST's, or a static helper's given a context) writes
        as its user: the update or insert right, the writable attributes (the others keep their
        stored values), the row rules."""
        context = instance._acting_for()
        access = self.access(context)
        if not access.unrestricted:
            table = access.table(self.name)
            if not (table.insert or table.update):
                access.require(context, self.name, UPDATE)
            refused = table.unwritable(data) if isinstance(data, dict) else []
            if refused:
                raise forbidden_attributes(self.name, refused)
        given = self.validate_full(data)
        key = instance._key
        self._check_key(given, key)

        async def write(txn: Transaction) -> None:
            values = dict(given)  # a retried transaction starts again from what was given
            existing = instance
            if self.put_reads or not access.unrestricted:
                # A caching table's record may be only at the origin: create or update is
                # decided by what a read would find (through the cache), not by storage alone.
                if self.cache is not None:
                    existing = await self.load(key)
                else:
                    existing = self.instance(key, await txn.read(self.name, key))
            if existing._exists:
                await self._hook(existing, "allow_update")
                old = existing._values()
                for name in self.schema.server_only:
                    if name in old and name not in values:
                        values[name] = old[name]
                if not access.unrestricted:
                    access.require(context, self.name, UPDATE)
                    if await self.outside(key, context, write=True):
                        raise NotFound(f"{self.name} {key!r} not found")
                    for name in self._unwritable(access, old):  # (the body cannot hold them)
                        values[name] = old[name]
                self._stamp(values, created=False)
            else:
                if not access.unrestricted:
                    access.require(context, self.name, INSERT)
                for spec in self.server_fields:
                    values.setdefault(spec.name, spec.info.make_default())
                self._stamp(values, created=True)
                await self._hook(self._detached(key, values), "allow_create")
            record = self._ordered(values)
            if not access.unrestricted:
                await self._check_written(context, access, record)
            self._write(txn, instance, record, "put", record)
            self._through(txn, key)

        await self._in_txn(write)

    async def merge(self, instance: Any, data: Any) -> None:
        """Merge ``data`` into the stored record; 404 when there is none (or it is outside the
        user's rules, with a request context)."""
        context = instance._acting_for()
        access = self._restricted(context, UPDATE, data)
        changes = self.validate_partial(data)
        key = instance._key
        self._check_key(changes, key)

        async def write(txn: Transaction) -> None:
            current = instance
            if instance._exists and instance._version:
                # The changes were computed from this instance: check against when it was read.
                txn.saw(self.name, key, instance._version)
            elif txn.seen_version(self.name, key) is None or not instance._exists:
                current = self.instance(key, await txn.read(self.name, key))
            if not current._exists or (
                not access.unrestricted and await self.outside(key, context, write=True)
            ):
                raise NotFound(f"{self.name} {key!r} not found")
            await self._hook(current, "allow_update")
            values = {**current._values(), **changes}
            self._stamp(values, created=False)
            if not access.unrestricted:
                await self._check_written(context, access, values)
            self._write(txn, instance, values, "patch", changes)
            self._through(txn, key)

        await self._in_txn(write)

    async def merge_blind(self, key: Any, data: Any, context: RequestContext | None = None) -> None:
        """Set the given attributes in whatever version of the record is current at commit
        (a PATCH without a precondition): concurrent ones never conflict. 404 when absent.

        Only for writers that read nothing first: no hook, no override, no If-Match, and no
        row rule (``context`` is checked for the update right and writable attributes).
        """
        access = self._restricted(context, UPDATE, data)
        if not access.unrestricted and access.table(self.name).rules:
            raise CharterError(f"{self.name} has row rules: a blind merge cannot apply them")
        if self.cache is not None and self.cache.writes:
            raise CharterError(f"{self.name} writes through to its source: no blind merge")
        changes = self.validate_partial(data)
        self._check_key(changes, key)
        self._stamp(changes, created=False)
        raw = self._encode(changes)
        instance = self.instance(key, None)

        async def write(txn: Transaction) -> None:
            txn.merge(self.name, key, raw)
            self._on_commit(txn, instance, "patch", changes)

        await self._in_txn(write)

    def _write(
        self, txn: Transaction, instance: Any, record: dict[str, Any], kind: str, event: Any
    ) -> None:
        """Stage ``record`` as the instance's new state; its event follows the commit."""
        txn.put(self.name, instance._key, self._encode(record))
        instance._data = record
        instance._raw = None
        instance._exists = True
        self._on_commit(txn, instance, kind, event)

    async def remove(self, instance: Any) -> bool:
        """Delete the record; False when there was none (or, with a request context, when it
        is outside the user's rules)."""
        key = instance._key
        context = instance._acting_for()
        access = self._restricted(context, DELETE)

        async def write(txn: Transaction) -> bool:
            current = self.instance(key, await txn.read(self.name, key))
            if not current._exists:
                return False
            if not access.unrestricted and await self.outside(key, context, write=True):
                return False
            await self._hook(current, "allow_delete")
            txn.delete(self.name, key)
            self._through(txn, key)
            instance._exists = False
            self._on_commit(txn, instance, "delete", None)
            return True

        return bool(await self._in_txn(write))

    async def add_to(self, key: Any, field: str, amount: float) -> None:
        spec = self.schema.fields.get(field)
        if spec is None or field == self.key:
            raise ValidationError(f"{self.name} has no numeric attribute {field!r}")
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ValidationError("add_to() takes a number")

        async def write(txn: Transaction) -> None:
            txn.increment(self.name, key, field, amount)
            self._on_commit(txn, self.cls._blank(key), "patch", None)

        cache = self.cache
        if cache is not None and (cache.writes or cache.deletes):
            await self._in_txn(self._add_through(key, field, amount))  # (cached.py)
            return
        await self._in_txn(write)

    def subscribe(self, key: Any, **options: Any) -> AsyncIterator[Any]:
        """``Table.subscribe``: the events of a record, a prefix or a query (the hub's)."""
        if self.realtime is None:
            raise CharterError(f"{self.name} is not served by an app with realtime")
        if options.get("query") is not None:
            options["query"] = Query.coerce(options["query"])
        return self.realtime.subscribe(self, key, current_context(), **options)  # type: ignore[no-any-return]

    async def publish(self, key: Any, message: Any, acting: RequestContext | None = None) -> None:
        """Log ``message`` for the subscribers of this record's topic (every worker's). Acting
        for a request, a publish writes to the record's topic: the ``update`` right, a record
        within the write rule if there is one (a topic without a record is refused: it cannot
        be checked), and ``allow_update``, as for a write (docs/realtime.md)."""
        key = self.check_key(key)
        access = self._restricted(acting, UPDATE)
        if not access.unrestricted and await self.outside(key, acting, write=True):  # or absent
            raise Forbidden(f"publishing to {self.name} {key!r} is outside what you may write")
        if "allow_update" in self.cls.__charter_overrides__:
            await self._hook(await self.load(key, acting), "allow_update")
        context = current_context()
        raw = _json_encode(message).decode()

        async def write(txn: Transaction) -> None:
            txn.publish(self.name, key, raw, _user_name(context))

        await self._in_txn(write)

    # -- hooks and events ------------------------------------------------------------------------

    def _detached(self, key: Any, values: dict[str, Any]) -> Any:
        instance = self.cls._blank(key)
        instance._data = values
        return instance

    async def _hook(self, instance: Any, hook: str) -> None:
        if hook not in self.cls.__charter_overrides__:
            return
        context = current_context()
        user = context.user if context is not None else None
        try:
            allowed = await maybe_await(getattr(instance, hook)(user))
        except Exception:
            allowed = False
        if not allowed:
            raise Forbidden(f"{hook} denied for {self.name} {instance._key!r}")

    def _on_commit(self, txn: Transaction, instance: Any, kind: str, values: Any) -> None:
        """The write's event goes to the event log with the commit (the hubs of every worker
        deliver it from there); the instance learns its new version."""
        key = instance._key
        txn.log(self.name, key, kind, _user_name(current_context()))
        if kind == "delete":
            return

        def learn_version(done: Transaction) -> None:
            version = done.versions.get((self.name, key))
            if version is not None:
                instance._version = version

        txn.after_commit(learn_version)


def _async(fn: Callable[[Transaction], None]) -> Callable[[Transaction], Awaitable[None]]:
    """``fn`` as ``run_in_transaction`` takes it."""

    async def run(txn: Transaction) -> None:
        fn(txn)

    return run


def _user_name(context: Any) -> str | None:
    user = getattr(context, "user", None) if context is not None else None
    if user is None:
        return None
    return str(getattr(user, "username", user))

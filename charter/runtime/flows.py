"""Run a declared transaction (``charter.model.operations.Flow``): its steps in order, through
the entity context (as the caller, or as server code when privileged), in the running
transaction.

- ``atomic=True``: every step runs inside one savepoint; when one fails, the savepoint undoes
  every step's staged writes, ``on_error`` runs, and a ``FlowError`` naming the step is raised
  (the request then answers with it, and its transaction commits nothing).
- ``atomic=False``: each step has its own savepoint; a failing step is undone alone,
  ``on_error`` runs, and the ``FlowError`` carries the results of the steps before it, which
  stay staged (a mapped route commits them and answers with the error and those results).
- ``on_success`` runs once the transaction has committed: awaited by a mapped route before it
  answers, or, for a flow called inside a handler, right after that request's commit.

Staged writes are nothing but a change set until commit (``runtime/transaction.py``): undoing
them is exact on every backend and across workers, since no worker ever saw them.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import HttpError, NotFound, status_error
from ..model.operations import Flow, Operation, set_flow_runner
from ..storage import ConflictError
from ..storage.base import DuplicateKey
from .access import INSERT
from .context import RequestContext, current_context
from .entities import EntityContext, tables_of
from .transaction import Transaction, _current, current_transaction, run_in_transaction

__all__ = [
    "FlowContext",
    "FlowError",
    "call",
    "commit_error",
    "execute",
    "failed",
    "new_context",
    "run_callback",
    "succeeded",
]

if TYPE_CHECKING:
    from .tables import TableRuntime

log = logging.getLogger("charter.flows")
_background: set[asyncio.Task[Any]] = set()


@dataclass(slots=True)
class FlowContext:
    """What a step's functions see: the request's ``body``, path ``params`` and ``query``, its
    ``user``, and ``results`` (the earlier steps' results by name).

    ``entities`` is the entity context the steps run through (as the caller, or privileged).
    """

    body: Any
    params: Mapping[str, Any]
    query: Mapping[str, Any]
    user: Any
    entities: EntityContext
    context: RequestContext | None = None
    results: dict[str, Any] = field(default_factory=dict)
    created: dict[tuple[str, Any], int] = field(default_factory=dict)  # (table, key): step


class FlowError(HttpError):
    """A step failed. Its status and code are the cause's (500 ``INTERNAL`` for an unexpected
    exception, which is logged, not shown); ``details`` names the step.

    Attributes:
        step: the failing step's name; ``index`` its position.
        results: the results of the steps before it: kept when the flow is not atomic, undone
            when it is.
        atomic: whether the flow was atomic (so nothing of it stays).
    """

    step: str = ""
    index: int = 0
    cause: BaseException | None = None
    results: dict[str, Any]
    atomic: bool = True

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(None, message, code, details, headers)
        self.results = {}

    @classmethod
    def of_step(
        cls, operation: Operation, index: int, cause: BaseException, results: dict[str, Any],
        *, atomic: bool,
    ) -> FlowError:  # fmt: skip
        """The failure of step ``index`` caused by ``cause``: its status, code and details."""
        known = cause if isinstance(cause, HttpError) else status_error(cause)
        if known is not None:
            status, code, message = known.status_code, known.code, known.message
            inner, headers = known.details, known.headers
        else:
            status, code, message, inner, headers = 500, "INTERNAL", "internal error", None, {}
        detail: dict[str, Any] = {
            "loc": ["operations", index, operation.name],
            "code": code,
            "message": message,
            "step": operation.name,
            "operation": f"{operation.table}.{operation.op}",
        }
        if inner:
            detail["details"] = inner
        error = cls(
            f"step {operation.name!r} ({operation.table}.{operation.op}) failed: {message}",
            code=code,
            details=[detail],
            headers=headers,
        )
        error.status_code = status
        error.step, error.index, error.cause = operation.name, index, cause
        error.results, error.atomic = results, atomic
        return error


async def _value(value: Any, ctx: FlowContext) -> Any:
    """A step's ``data``/``where``: as given, or what its function (sync or async) returns."""
    if callable(value) and not isinstance(value, type):
        value = value(ctx)
        if inspect.isawaitable(value):
            value = await value
    return value


async def run_callback(fn: Any, *args: Any) -> Any:
    """Call a user function, sync or async."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _step(operation: Operation, index: int, ctx: FlowContext, *, atomic: bool) -> Any:
    if operation.condition is not None and not await run_callback(operation.condition, ctx):
        return None
    entities = ctx.entities
    table = operation.table
    data = await _value(operation.data, ctx) if operation.data is not None else None
    where = await _value(operation.where, ctx) if operation.where is not None else None
    if data is not None and not isinstance(data, Mapping):
        raise TypeError(f"step {operation.name!r}: data gave {type(data).__name__}, not a dict")
    op = operation.op
    result: Any
    if op == "create":
        assert data is not None
        runtime = entities.runtime(table)
        primary = runtime.key
        key = data.get(primary)
        if key is not None and not atomic:
            # A step of its own savepoint must fail here, not at commit (which would fail the
            # steps that succeeded too); an atomic flow leaves it to the commit (one read less).
            # The insert right first: a caller without it must not learn which keys exist.
            acting = entities.acting_for()
            runtime.access(acting).require(acting, runtime.name, INSERT)
            if await entities.exists(table, key):
                raise DuplicateKey.for_key(table, key)
        result = await entities.create(table, data)
        ctx.created[(table, result.get(primary))] = index
    elif op == "read":
        result = await entities.find_one(table, where)
        if result is None:
            raise NotFound(f"no {table} record matches")
    elif op == "list":
        result = await entities.find_many(table, where)
    elif op == "update":
        assert data is not None
        result = await entities.update(table, where, data)
    elif op == "delete":
        result = await entities.delete(table, where)
    else:  # upsert
        assert data is not None
        result = await entities.upsert(table, data)
    if operation.transform is not None:  # it makes the answer: it sees what the caller may
        result = await run_callback(operation.transform, entities.shown(table, result))
    return result


async def execute(
    flow: Flow, ctx: FlowContext, txn: Transaction, *, dropped: bool = False
) -> dict[str, Any]:
    """Run the steps in ``txn`` (see the module docstring); ``ctx.results`` fills as they go.
    Raises ``FlowError`` after undoing what must be undone (the caller runs ``on_error`` once
    what must stay is committed); a ``ConflictError`` (the transaction re-runs) passes.

    ``dropped``: the caller drops ``txn`` when an atomic flow fails (a mapped route's own
    request transaction), so the steps need no savepoint of their own to be undone."""
    steps = list(enumerate(flow.operations))
    current = steps[0]
    try:
        if flow.atomic and dropped:
            for current in steps:
                ctx.results[current[1].name] = await _step(current[1], current[0], ctx, atomic=True)
        elif flow.atomic:
            with txn.savepoint():
                for current in steps:
                    ctx.results[current[1].name] = await _step(
                        current[1], current[0], ctx, atomic=True
                    )
        else:
            for current in steps:
                with txn.savepoint():
                    ctx.results[current[1].name] = await _step(
                        current[1], current[0], ctx, atomic=False
                    )
    except ConflictError:
        raise
    except Exception as exc:
        index, operation = current
        kept = {} if flow.atomic else dict(ctx.results)
        error = FlowError.of_step(operation, index, exc, kept, atomic=flow.atomic)
        if not isinstance(exc, HttpError) and status_error(exc) is None:
            log.error("step %r of a transaction failed", operation.name, exc_info=exc)
        raise error from exc
    return ctx.results


def commit_error(flow: Flow, ctx: FlowContext, exc: Exception) -> Exception:
    """What a failed commit answers: a key taken by a concurrent create is the failure of the
    step that created it (a ``FlowError`` naming it); anything else as it is."""
    if isinstance(exc, DuplicateKey):
        for (table, key), index in ctx.created.items():
            if DuplicateKey.for_key(table, key).message == exc.message:
                operation = flow.operations[index]
                return FlowError.of_step(operation, index, exc, {}, atomic=flow.atomic)
    return exc


async def failed(flow: Flow, error: BaseException, ctx: FlowContext) -> None:
    """Run ``on_error`` outside the transaction; an error there is logged (the original
    failure is what is answered)."""
    if flow.on_error is None:
        return
    try:
        await _outside_transaction(flow.on_error, error, ctx)
    except Exception:
        log.exception("on_error of a transaction failed")


async def succeeded(flow: Flow, results: dict[str, Any], ctx: FlowContext) -> None:
    """Run ``on_success`` (after the commit) outside the transaction; an error there is
    logged: what committed stays committed and the caller is told it did."""
    if flow.on_success is None:
        return
    try:
        await _outside_transaction(flow.on_success, results, ctx)
    except Exception:
        log.exception("on_success of a transaction failed")


async def _outside_transaction(fn: Any, *args: Any) -> Any:
    """Run a callback with no current transaction: the flow's is committed (``on_success``)
    or about to be dropped (``on_error`` of an atomic flow), so what the callback writes with
    the Table API commits on its own instead of being staged there and lost."""
    context = contextvars.copy_context()
    context.run(_current.set, None)
    task = asyncio.get_running_loop().create_task(run_callback(fn, *args), context=context)
    return await task


def new_context(
    body: Any,
    params: Mapping[str, Any],
    query: Mapping[str, Any],
    *,
    privileged: bool,
    tables: Mapping[str, TableRuntime] | None = None,
) -> FlowContext:
    """A flow context for the running request (or server code outside one); ``tables``: the
    app's, when the caller knows them."""
    context = current_context()
    user = context.user if context is not None else None
    return FlowContext(
        {} if body is None else body,
        dict(params),
        dict(query),
        user,
        # privileged or not, the steps of a request ask allow_read (as every allow_* hook)
        EntityContext(privileged=privileged, tables=tables, check_read=context is not None),
        context,
    )


async def call(
    flow: Flow,
    *,
    body: Any,
    params: Mapping[str, Any],
    query: Mapping[str, Any],
    privileged: bool,
) -> dict[str, Any]:
    """``await flow(...)``: in the running transaction (``on_success`` follows its commit), or
    in a new one committed before this returns."""
    txn = current_transaction()
    if txn is not None:
        ctx = new_context(body, params, query, privileged=privileged)
        try:
            results = await execute(flow, ctx, txn)
        except FlowError as error:
            await failed(flow, error, ctx)
            raise
        if flow.on_success is not None:
            txn.after_commit(lambda _: _spawn(succeeded(flow, results, ctx)))
        return results
    runtime = next(iter(tables_of().values()), None)
    if runtime is None:
        raise HttpError(500, "the app has no tables")
    if not runtime.lifecycle.started:
        await runtime.lifecycle.startup()
    contexts: list[FlowContext] = []

    async def run(txn: Transaction) -> tuple[dict[str, Any], FlowError | None]:
        ctx = new_context(body, params, query, privileged=privileged)  # fresh on a re-run
        contexts.append(ctx)
        try:
            return await execute(flow, ctx, txn), None
        except FlowError as partial:
            if partial.atomic:
                raise
            return ctx.results, partial  # committed: what succeeded stays

    try:
        (results, kept_failure), _ = await run_in_transaction(runtime.storage, run)
    except FlowError as failure:
        await failed(flow, failure, contexts[-1])
        raise
    if kept_failure is not None:
        await failed(flow, kept_failure, contexts[-1])
        raise kept_failure
    await succeeded(flow, results, contexts[-1])
    return results


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


set_flow_runner(call)

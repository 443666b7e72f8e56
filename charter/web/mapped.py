"""Serve a ``map_route(...)``: read and validate the body, run the flow in the request's
transaction, commit, run ``on_success``, answer with the response the route declares.

The route commits the request's transaction itself, before it answers, so that
``on_success`` runs after the commit and before the response (a conflict at that commit
re-runs the request as any other's does). Status codes:

- success: ``status`` (default 201 for POST, 200 otherwise; 204 when the response is empty);
- a failing step of an atomic route: the step's error (its status and code; ``details`` names
  the step); nothing is written;
- a failing step of a route with ``atomic=False``: the same envelope, plus ``"results"``, the
  results of the steps that succeeded, which are committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from ..config import Config
from ..errors import CharterError, ValidationError, error_body
from ..http.codecs import JSON, Codec, for_request, negotiate, read_body
from ..http.request import Request
from ..http.response import Response
from ..http.routing import Route
from ..model.operations import MappedRoute, Operation
from ..runtime.context import current_context
from ..runtime.flows import (
    FlowContext,
    FlowError,
    commit_error,
    execute,
    failed,
    new_context,
    run_callback,
    succeeded,
)
from ..runtime.grants import require
from ..runtime.transaction import current_transaction
from ..schema.contract_types import schema_type
from ..storage import ConflictError
from .endpoints import _builtins
from .routes import _details, _plain

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["MappedEndpoint", "mapped_route"]


class MappedEndpoint:
    """The handler of one mapped route."""

    def __init__(
        self, tables: Mapping[str, TableRuntime], config: Config, declared: MappedRoute
    ) -> None:
        self.tables = tables
        self.config = config
        self.declared = declared
        self.flow = declared.flow
        self.steps: dict[str, Operation] = {op.name: op for op in declared.flow.operations}
        for op in declared.flow.operations:
            _check_step(declared, op, tables)
        validate = declared.validate
        self.payload_type: Any = None
        self.check: Any = None
        self._decode_json: Any = None
        if isinstance(validate, type | dict):
            self.payload_type = schema_type(validate, f"{declared.name}Payload")
            self._decode_json = msgspec.json.Decoder(self.payload_type, strict=True).decode
        elif validate is not None:
            self.check = validate
        if declared.status is not None:
            self.status = declared.status
        else:
            self.status = 201 if declared.method == "POST" else 200

    async def __call__(self, request: Request, **params: str) -> Response:
        require(current_context(), roles=self.declared.roles)
        codec = _codec(request)  # before anything is written: a 406 must change nothing
        body = await self._body(request)
        txn = current_transaction()
        if txn is None:  # (the dispatcher runs every handler in one)
            raise CharterError("a mapped route runs inside the request's transaction")
        ctx = new_context(
            body,
            params,
            _flat(request.query) if request.scope.get("query_string") else {},
            privileged=self.declared.privileged,
            tables=self.tables,
        )
        try:
            results = await execute(self.flow, ctx, txn, dropped=True)
        except FlowError as error:
            if error.atomic:
                await failed(self.flow, error, ctx)
                raise  # the request's transaction is dropped: no step leaves a trace
            await txn.commit()  # what succeeded stays
            await failed(self.flow, error, ctx)
            return self._partial(codec, error, ctx)
        try:
            await txn.commit()
        except ConflictError:
            raise  # the request re-runs, flow and all
        except Exception as exc:
            reported = commit_error(self.flow, ctx, exc)
            await failed(self.flow, reported, ctx)
            if reported is exc:
                raise
            raise reported from exc
        await succeeded(self.flow, results, ctx)
        value = _builtins(await self._response(results, ctx))
        if value is None:
            return Response(204)
        return Response(self.status, codec.encode(value), {"content-type": codec.media_type})

    # -- input ---------------------------------------------------------------------------------

    async def _body(self, request: Request) -> Any:
        raw = await request.body()
        content_type = request.header("content-type")
        if self._decode_json is not None and raw and for_request(content_type) is JSON:
            try:  # one pass, straight into the schema; anything wrong: the path below says what
                checked = self._decode_json(raw)
            except msgspec.MsgspecError:
                pass
            else:
                plain = _plain(checked, self.declared.validate)
                return msgspec.to_builtins(plain) if not isinstance(plain, dict) else plain
        value = read_body(content_type, raw, dict) if raw else None
        if self.payload_type is not None:
            try:
                checked = msgspec.convert(value, self.payload_type, strict=True)
            except msgspec.ValidationError as exc:
                details = _details(value, self.payload_type, exc, "body")
                raise ValidationError(details=details) from None
            plain = _plain(checked, self.declared.validate)
            return msgspec.to_builtins(plain) if not isinstance(plain, dict) else plain
        if self.check is not None:
            problems = _problems(await run_callback(self.check, {} if value is None else value))
            if problems:
                raise ValidationError(details=problems)
        return value

    # -- output --------------------------------------------------------------------------------

    def _visible(self, ctx: FlowContext, name: str, value: Any) -> Any:
        """A step's result as the caller may see it (a privileged route: as any client may);
        a step's ``transform`` output is made of that view already and is shown as it is."""
        step = self.steps.get(name)
        if step is None or step.transform is not None or value is None:
            return value
        return ctx.entities.shown(step.table, value)

    async def _response(self, results: dict[str, Any], ctx: FlowContext) -> Any:
        spec = self.declared.response
        shown = {name: self._visible(ctx, name, value) for name, value in results.items()}
        entity = spec.get("entity")
        value: Any = shown[entity] if entity is not None else shown
        pick, omit = spec.get("pick"), spec.get("omit")
        if pick is not None or omit is not None:
            value = _filtered(value, pick, omit)
        transform = spec.get("transform")
        if transform is not None:
            value = await run_callback(transform, value)
        return value

    def _partial(self, codec: Codec, error: FlowError, ctx: FlowContext) -> Response:
        """A non-atomic route's failure: the error envelope, plus the committed results."""
        body = error_body(error.status_code, error.code, error.message, error.details)
        body["results"] = _builtins({n: self._visible(ctx, n, v) for n, v in error.results.items()})
        headers = {"content-type": codec.media_type, **error.headers}
        return Response(error.status_code, codec.encode(body), headers)


def _check_step(declared: MappedRoute, op: Operation, tables: Mapping[str, TableRuntime]) -> None:
    """A step's table exists and its static ``where`` and ``data`` name its attributes: a
    mistake there fails when the app is built, not at the first request."""
    where = f"map_route {declared.method} {declared.path}, step {op.name!r}"
    runtime = tables.get(op.table)
    if runtime is None:
        raise CharterError(f"{where}: no table {op.table!r} in the app")
    fields = runtime.schema.fields
    if isinstance(op.where, dict):
        unknown = sorted(set(op.where) - set(fields))
        if unknown:
            raise CharterError(f"{where}: where names no attribute of {op.table}: {unknown}")
    if isinstance(op.data, dict) and runtime.schema.options.extra != "allow":
        unknown = sorted(set(op.data) - set(fields))
        if unknown:
            raise CharterError(f"{where}: data names no attribute of {op.table}: {unknown}")


def _codec(request: Request) -> Codec:
    """The response's codec from ``Accept`` (406 when none fits); a table's CSV is for
    collections of records, so a route's answer falls back to JSON."""
    codec = negotiate(request.header("accept"))
    return JSON if codec.media_type == "text/csv" else codec


def _filtered(value: Any, pick: Any, omit: Any) -> Any:
    if isinstance(value, list):
        return [_filtered(item, pick, omit) for item in value]
    if not isinstance(value, dict):
        return value
    if pick is not None:
        value = {k: v for k, v in value.items() if k in pick}
    if omit is not None:
        value = {k: v for k, v in value.items() if k not in omit}
    return value


def _problems(found: Any) -> list[dict[str, Any]]:
    """A validator's answer as error details: None, True, or an empty list: valid; False: one
    problem; strings and ``{"message", "field"?, "code"?}`` dicts: one detail each. A dict
    ``{"valid": ..., "errors": [...]}`` (Nevr's shape) is read as its errors."""
    if isinstance(found, dict) and "valid" in found:
        found = [] if found["valid"] else (found.get("errors") or False)
    if found is None or found is True:
        return []
    if found is False:
        found = ["payload is invalid"]
    if isinstance(found, str | dict):
        found = [found]
    details = []
    for problem in found:
        if isinstance(problem, dict):
            detail = dict(problem)
            field = detail.pop("field", None)
            detail.setdefault("loc", ["body"] if field is None else ["body", field])
            detail.setdefault("code", "UNMATCHING_PROPERTIES")
            detail.setdefault("message", "invalid")
        else:
            detail = {"loc": ["body"], "code": "UNMATCHING_PROPERTIES", "message": str(problem)}
        details.append(detail)
    return details


def _flat(query: dict[str, list[str]]) -> dict[str, Any]:
    """The query string: one value per name, a list when repeated or named ``k[]``."""
    return {
        k.removesuffix("[]"): v if k.endswith("[]") or len(v) > 1 else v[-1]
        for k, v in query.items()
    }


def _step_label(op: Operation) -> str:
    """``Table.op``, with its name when it is not the table's, ``?`` when conditional."""
    label = f"{op.table}.{op.op}"
    if op.name != op.table:
        label += f" as {op.name}"
    return label + ("?" if op.condition is not None else "")


def mapped_route(
    tables: Mapping[str, TableRuntime], config: Config, declared: MappedRoute
) -> Route:
    """The route of a ``map_route(...)`` declaration."""
    endpoint = MappedEndpoint(tables, config, declared)
    flow = declared.flow
    meta: dict[str, Any] = {
        "mapped": declared,
        "roles": declared.roles,
        "steps": ", ".join(_step_label(op) for op in flow.operations),
        "atomic": flow.atomic,
        "privileged": declared.privileged,
    }
    return Route(declared.method, declared.path, endpoint, declared.name, "mapped", meta)

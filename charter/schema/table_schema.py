"""A table's schema: its fields, key, indexes, relationships and compiled msgspec types.

Built once when the app is built; every request then uses the compiled types.
"""

from __future__ import annotations

import copy
import functools
import typing
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, get_args, get_origin

import msgspec

from ..errors import ValidationError
from ..model.fields import MISSING, FieldInfo, RelationshipInfo
from ..model.options import TableOptions
from .annotations import without_none
from .bounds import key_problem, may_hold_int
from .keys import new_uuid

__all__ = ["FieldSpec", "TableOptions", "TableSchema", "build_schema"]

_IMMUTABLE_DEFAULTS = (str, int, float, bool, bytes, type(None), tuple, frozenset)


@dataclass(slots=True)
class FieldSpec:
    """One stored attribute: its Python type, options and the msgspec type that checks it."""

    name: str
    type: Any
    info: FieldInfo
    checked_type: Any
    optional: bool

    @property
    def required_on_create(self) -> bool:
        return self.info.input and not self.info.has_default and not self.info.primary_key


@dataclass(slots=True)
class RelationshipSpec:
    """A relationship attribute, resolved to its target table name."""

    name: str
    target: str
    many: bool
    from_: str | None
    to: str | None


@dataclass(slots=True)
class TableSchema:
    """Everything compiled from a table declaration."""

    name: str
    fields: dict[str, FieldSpec]
    primary_key: str
    key_type: type
    relationships: dict[str, RelationshipSpec]
    options: TableOptions
    indexes: list[str] = field(default_factory=list)
    hidden: frozenset[str] = frozenset()
    server_only: frozenset[str] = frozenset()
    record_type: Any = None
    described_type: Any = None
    create_type: Any = None
    patch_type: Any = None
    input_types: dict[str, Any] = field(default_factory=dict)
    required_on_create: set[str] = field(default_factory=set)
    defaults: dict[str, FieldInfo] = field(default_factory=dict)
    # (name, may hold an integer, indexed) of the attributes ``bounds.value_problems`` checks
    bounded: tuple[tuple[str, bool, bool], ...] = ()

    @property
    def cached(self) -> bool:
        """Whether this is a caching table (it has a ``source``): its records carry a stale
        mark in storage (``Storage.mark_stale``)."""
        return self.options.source is not None

    @property
    def generates_key(self) -> bool:
        return self.key_type in (str, uuid.UUID)

    def new_key(self) -> Any:
        return new_uuid()

    def coerce_key(self, raw: str) -> Any:
        """A key from a URL segment, typed as declared (``None`` when it cannot be).

        ``ValidationError`` (422) when no record can have it: longer than ``MAX_KEY_BYTES``,
        or an integer outside 64 bits.
        """
        key: Any = raw
        if self.key_type is int:
            try:
                key = int(raw)
            except ValueError:
                return None
        problem = key_problem(key)
        if problem is not None:
            raise ValidationError(
                f"not a valid {self.name} key: {problem}",
                details=[{"loc": ["path", self.primary_key], "message": problem,
                          "code": "NUMERIC_CONSTRAINT" if self.key_type is int
                          else "STRING_CONSTRAINT"}],
            )  # fmt: skip
        return key


def _unwrap_annotated(tp: Any) -> tuple[Any, FieldInfo | None]:
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        infos = [m for m in meta if isinstance(m, FieldInfo)]
        rest = [m for m in meta if not isinstance(m, FieldInfo)]
        if rest:
            base = Annotated[(base, *rest)]
        return base, infos[0] if infos else None
    return tp, None


def _checked_type(tp: Any, info: FieldInfo) -> Any:
    """The msgspec type with the field's constraints attached to the non-null member."""
    constraints = info.constraints()
    meta_kwargs: dict[str, Any] = dict(constraints)
    if info.description:
        meta_kwargs["description"] = info.description
    if not meta_kwargs:
        return tp
    inner, optional = without_none(tp)
    checked: Any = Annotated.__class_getitem__((inner, msgspec.Meta(**meta_kwargs)))  # type: ignore[attr-defined]
    return (checked | None) if optional else checked


def _is_table(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__charter_table__")


def _relationship_target(tp: Any) -> tuple[Any, bool]:
    inner, _ = without_none(tp)
    if get_origin(inner) in (list, typing.List):  # noqa: UP006
        (item,) = get_args(inner)
        return item, True
    return inner, False


def _struct_default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return msgspec.field(default_factory=info.default_factory)
    default = info.default
    if isinstance(default, _IMMUTABLE_DEFAULTS) or not isinstance(default, list | dict | set):
        return default
    if not default:
        return msgspec.field(default_factory=type(default))
    return msgspec.field(default_factory=functools.partial(copy.deepcopy, default))


def build_schema(cls: type, options: TableOptions) -> TableSchema:
    """Compile a table class's annotations into a ``TableSchema``."""
    name = options.name or cls.__name__
    hints = typing.get_type_hints(cls, include_extras=True)
    declared: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        declared.update(getattr(klass, "__charter_declared__", {}))
    fields: dict[str, FieldSpec] = {}
    relationships: dict[str, RelationshipSpec] = {}
    for attr, hint in hints.items():
        if attr.startswith("_") or get_origin(hint) is typing.ClassVar:
            continue
        if attr not in declared and attr not in getattr(cls, "__charter_annotations__", set()):
            continue
        default = declared.get(attr, MISSING)
        tp, annotated_info = _unwrap_annotated(hint)
        if isinstance(default, RelationshipInfo):
            target, many = _relationship_target(tp)
            target_name = getattr(target, "__charter_name__", getattr(target, "__name__", target))
            relationships[attr] = RelationshipSpec(
                attr, str(target_name), many or default.to is not None, default.from_, default.to
            )
            continue
        if isinstance(default, FieldInfo):
            info = default if annotated_info is None else annotated_info.merge(default)
        elif annotated_info is not None:
            info = annotated_info
            if default is not MISSING:
                info.default = default
        else:
            info = FieldInfo(default)
        _, optional = without_none(tp)
        if optional and not info.has_default:
            info.default = None
        fields[attr] = FieldSpec(attr, tp, info, _checked_type(tp, info), optional)
    keys = [f.name for f in fields.values() if f.info.primary_key]
    if len(keys) > 1:
        raise TypeError(f"table {name} declares more than one primary key: {keys}")
    if not keys:
        if "id" not in fields:
            info = FieldInfo(primary_key=True)
            fields = {"id": FieldSpec("id", str, info, str, False), **fields}
        fields["id"].info.primary_key = True
        fields["id"].info.indexed = True
        keys = ["id"]
    key = keys[0]
    key_type, _ = without_none(fields[key].type)
    if key_type not in (str, int, uuid.UUID):
        raise TypeError(f"primary key {name}.{key} must be str, int or UUID, not {key_type!r}")
    if key_type is str and fields[key].info.min_length is None:
        # An empty key cannot be addressed: /Table/ is the collection.
        fields[key].info.min_length = 1
        fields[key].checked_type = _checked_type(fields[key].type, fields[key].info)
    schema = TableSchema(
        name=name,
        fields=fields,
        primary_key=key,
        key_type=key_type,
        relationships=relationships,
        options=options,
        indexes=[f.name for f in fields.values() if f.info.indexed and f.name != key],
        hidden=frozenset(f.name for f in fields.values() if not f.info.returned),
        server_only=frozenset(f.name for f in fields.values() if not f.info.input),
        defaults={f.name: f.info for f in fields.values()},
    )
    schema.bounded = tuple(
        (f.name, ints, f.info.indexed)
        for f in fields.values()
        if (ints := may_hold_int(f.type)) or f.info.indexed
    )
    _compile_types(schema)
    return schema


def _compile_types(schema: TableSchema) -> None:
    """Build the msgspec Struct types for stored records, creates, patches and the JSON Schema.

    Stored records are decoded without constraints (data written under older constraints must
    still load); the described type carries them.
    """
    record_fields: list[tuple[str, Any, Any]] = []
    described_fields: list[tuple[str, Any, Any]] = []
    create_fields: list[tuple[str, Any, Any]] = []
    patch_fields: list[tuple[str, Any, Any]] = []
    for spec in schema.fields.values():
        info = spec.info
        default = _struct_default(info) if info.has_default else msgspec.NODEFAULT
        if info.primary_key:
            default = msgspec.NODEFAULT
        record_fields.append((spec.name, spec.type, default))
        described_fields.append((spec.name, spec.checked_type, default))
        if not info.input:
            create_fields.append((spec.name, Any, msgspec.UNSET))
            patch_fields.append((spec.name, Any, msgspec.UNSET))
            continue
        schema.input_types[spec.name] = spec.checked_type
        if info.primary_key:
            create_fields.append((spec.name, spec.checked_type, msgspec.UNSET))
        else:
            create_fields.append((spec.name, spec.checked_type, default))
            if default is msgspec.NODEFAULT:
                schema.required_on_create.add(spec.name)
        patch_fields.append((spec.name, spec.checked_type, msgspec.UNSET))
    forbid = schema.options.extra != "allow"
    schema.record_type = msgspec.defstruct(
        f"{schema.name}Record", record_fields, kw_only=True, omit_defaults=False
    )
    schema.described_type = msgspec.defstruct(schema.name, described_fields, kw_only=True)
    schema.create_type = msgspec.defstruct(
        f"{schema.name}Create", create_fields, kw_only=True, forbid_unknown_fields=forbid
    )
    schema.patch_type = msgspec.defstruct(
        f"{schema.name}Patch", patch_fields, kw_only=True, forbid_unknown_fields=forbid
    )

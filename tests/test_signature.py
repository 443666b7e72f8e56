"""The sans-I/O core of endpoints: compiling signatures, binding arguments, JSON Schema types."""

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import msgspec
import pytest

from charter import HttpResult, Partial, Request, RequestContext
from charter.schema.from_json_schema import type_from_json_schema
from charter.schema.signature import compile_signature
from charter.schema.validation import InputError

INJECT = {RequestContext: "context", Request: "request"}


@dataclasses.dataclass
class Inner:
    a: int
    b: str


@dataclasses.dataclass
class Outer:
    name: str
    inner: Inner


def place(product_id: str, qty: int = 1, *, note: str | None = None) -> dict[str, int]:
    return {}


def test_body_parameters_and_their_kinds():
    sig = compile_signature(place)
    assert [(p.name, p.source, p.required, p.positional) for p in sig.params] == [
        ("product_id", "body", True, True),
        ("qty", "body", False, True),
        ("note", "body", False, False),
    ]
    assert sig.return_kind == "value"
    assert sig.result_type == dict[str, int]
    assert sig.is_async is False
    assert sig.takes_body is True


def test_bind_body_by_name_and_position():
    sig = compile_signature(place)
    assert sig.bind_body({"product_id": "p"}) == {"product_id": "p", "qty": 1, "note": None}
    assert sig.bind_body(["p", 3])["qty"] == 3
    with pytest.raises(InputError) as extra:
        sig.bind_body(["p", 3, "a note"])  # note is keyword-only
    assert extra.value.details[0]["loc"] == ["body", 2]


def test_bind_body_reports_every_problem_without_coercion():
    sig = compile_signature(place)
    with pytest.raises(InputError) as error:
        sig.bind_body({"qty": "2", "colour": "red"})
    assert sorted((tuple(d["loc"]), d["code"]) for d in error.value.details) == [
        (("body", "colour"), "EXTRANEOUS_PROPERTY"),
        (("body", "product_id"), "MISSING_PROPERTY"),
        (("body", "qty"), "UNMATCHING_PROPERTIES"),
    ]


def test_bind_query_coerces_and_makes_lists():
    def search(n: int, tags: list[int] | None = None, at: dt.date | None = None) -> None:
        pass

    sig = compile_signature(search, query_params=True)
    assert sig.takes_body is False
    assert sig.return_kind == "none"
    assert sig.bind_query({"n": ["3"], "tags[]": ["1", "2"]}) == {"n": 3, "tags": [1, 2]}
    assert sig.bind_query({"n": ["1", "2"]}) == {"n": 2}  # last value wins for scalars
    assert sig.bind_query({"n": ["1"], "at": ["2024-01-02"]})["at"] == dt.date(2024, 1, 2)
    with pytest.raises(InputError) as error:
        sig.bind_query({"tags": ["x"]})
    assert sorted(d["loc"] for d in error.value.details) == [["query", "n"], ["query", "tags", 0]]


def test_objects_in_the_query_string_are_json():
    def find(where: Inner) -> None:
        pass

    sig = compile_signature(find, query_params=True)
    assert sig.bind_query({"where": ['{"a": 1, "b": "x"}']}) == {"where": Inner(1, "x")}


def test_injected_stream_and_skipped_parameters():
    async def upload(self, data: AsyncIterator[bytes], ctx: RequestContext, req: Request) -> int:
        return 0

    sig = compile_signature(upload, skip_first=True, inject=INJECT)
    assert [(p.name, p.source) for p in sig.params] == [
        ("data", "stream"),
        ("ctx", "inject"),
        ("req", "inject"),
    ]
    assert sig.stream_param is not None and sig.stream_param.name == "data"
    assert sig.takes_body is False
    assert sig.is_async is True


def test_return_kinds():
    async def stream() -> AsyncIterator[bytes]:
        yield b""

    def result() -> HttpResult[int]:
        return HttpResult(1)

    def untyped():
        pass

    assert compile_signature(stream).return_kind == "stream"
    assert (compile_signature(result).return_kind, compile_signature(result).result_type) == (
        "result",
        int,
    )
    assert compile_signature(untyped).return_kind == "value"
    assert compile_signature(untyped).result_type is Any


def test_partial_makes_every_field_optional_recursively():
    def update(changes: Partial[Outer]) -> None:
        pass

    sig = compile_signature(update)
    bound = sig.bind_body({"changes": {"inner": {"b": "x"}}})
    assert msgspec.to_builtins(bound["changes"]) == {"inner": {"b": "x"}}
    assert msgspec.to_builtins(sig.bind_body({"changes": {}})["changes"]) == {}
    with pytest.raises(InputError) as error:
        sig.bind_body({"changes": {"inner": {"a": "1"}}})
    assert error.value.details[0]["loc"] == ["body", "changes", "inner", "a"]
    with pytest.raises(InputError):
        sig.bind_body({"changes": {"unknown": 1}})


# -- JSON Schema -> msgspec types --------------------------------------------------------------


def convert(schema: Any, value: Any) -> Any:
    return msgspec.convert(value, type_from_json_schema(schema), strict=True)


@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [
        ({"type": "string", "minLength": 2, "pattern": "^a"}, "ab", "b"),
        ({"type": "integer", "minimum": 0, "exclusiveMaximum": 10}, 9, 10),
        ({"type": "number"}, 1.5, "1.5"),
        ({"type": "boolean"}, True, 1),
        ({"type": "null"}, None, 0),
        ({"type": ["string", "null"]}, None, 1),
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 2}, [1, 2], [1, 2, 3]),
        ({"enum": ["a", "b"]}, "a", "c"),
        ({"enum": [1.5, 2.5]}, 2.5, "x"),
        ({"const": 3}, 3, 4),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "x", 1.5),
        ({"type": "string", "format": "date-time"}, "2024-01-02T03:04:05Z", "soon"),
        ({"type": "string", "format": "uuid"}, str(uuid.UUID(int=1)), "x"),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, {"k": 1}, {"k": "1"}),
        ({"type": "object", "required": ["a"]}, {"a": None}, {"b": 1}),
    ],
)
def test_json_schema_types(schema, good, bad):
    convert(schema, good)
    with pytest.raises(msgspec.ValidationError):
        convert(schema, bad)


def test_json_schema_objects():
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "first-name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "nested": {"type": "object", "properties": {"x": {"type": "integer"}}},
        },
        "required": ["id", "first-name"],
        "additionalProperties": False,
    }
    value = {"id": 1, "first-name": "Ada", "nested": {"x": 2}}
    assert msgspec.to_builtins(convert(schema, value)) == value
    for bad in ({"id": 1}, {"id": "1", "first-name": "a"}, {**value, "extra": 1}):
        with pytest.raises(msgspec.ValidationError):
            convert(schema, bad)
    open_schema = {**schema, "additionalProperties": True}
    assert msgspec.to_builtins(convert(open_schema, {**value, "extra": 1})) == value


def test_json_schema_discriminated_unions():
    schema = {
        "oneOf": [
            {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}},
            {"type": "object", "properties": {"kind": {"enum": ["b"]}, "y": {"type": "string"}}},
        ]
    }
    assert msgspec.to_builtins(convert(schema, {"kind": "b", "y": "s"})) == {"kind": "b", "y": "s"}
    with pytest.raises(msgspec.ValidationError):
        convert(schema, {"kind": "a", "x": "s"})
    with pytest.raises(msgspec.ValidationError):
        convert(schema, {"kind": "c"})


def test_json_schema_object_unions_need_a_discriminator():
    schema = {"anyOf": [{"type": "object"}, {"type": "object", "properties": {"a": {}}}]}
    with pytest.raises(TypeError, match="discriminator"):
        type_from_json_schema(schema)


def test_json_schema_trivial_and_invalid():
    assert type_from_json_schema({}) is Any
    assert type_from_json_schema(True) is Any
    assert type_from_json_schema({"enum": ["x"]}) == Literal["x"]
    with pytest.raises(TypeError):
        type_from_json_schema("string")

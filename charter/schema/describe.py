"""A table described as JSON Schema (what ``GET /Table`` answers), built from its schema."""

from __future__ import annotations

from typing import Any

import msgspec

from .table_schema import TableSchema

__all__ = ["describe"]


def describe(schema: TableSchema) -> dict[str, Any]:
    """The table as JSON Schema, with its key, indexes and relationships."""
    (record_schema,), components = msgspec.json.schema_components(
        [schema.described_type], ref_template="#/$defs/{name}"
    )
    name = schema.described_type.__name__
    body: dict[str, Any] = dict(components.pop(name, record_schema))
    properties = {k: v for k, v in body.get("properties", {}).items() if k not in schema.hidden}
    for field_name, prop in properties.items():
        spec = schema.fields[field_name]
        if not spec.info.input:
            prop["readOnly"] = True
        if spec.info.description:
            prop["description"] = spec.info.description
    body["properties"] = properties
    body["required"] = [r for r in body.get("required", []) if r in properties]
    body.update(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"/{schema.name}",
            "title": schema.name,
            "x-primaryKey": schema.primary_key,
            "x-indexes": [schema.primary_key, *schema.indexes],
            "x-relationships": {
                rel.name: {"target": rel.target, "many": rel.many, "from": rel.from_, "to": rel.to}
                for rel in schema.relationships.values()
            },
        }
    )
    if schema.options.extra == "allow":
        body["additionalProperties"] = True
    if components:
        body["$defs"] = components
    return body

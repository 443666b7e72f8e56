"""The shared parts of the OpenAPI document: the components' type schemas, collected while the
paths are built and rendered all at once, and the error envelope every operation answers with.

Why apart: the table paths (``openapi_tables``), the route operations (``openapi_routes``) and
the document itself (``openapi``) all use them.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

__all__ = ["DEFAULT_ERROR", "ERROR_SCHEMA", "REF", "Schemas", "safe"]

REF = "#/components/schemas/{name}"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}
DEFAULT_ERROR = {
    "description": "an error, in the envelope every Charter error uses",
    "content": {"application/json": {"schema": ERROR_REF}},
}


class Schemas:
    """Collects types, then renders them all at once into components."""

    def __init__(self) -> None:
        self.types: list[Any] = []
        self.slots: list[tuple[dict[str, Any], str, int]] = []

    def ref(self, target: dict[str, Any], key: str, tp: Any) -> None:
        """Set ``target[key]`` to the schema of ``tp`` (``key=""``: fill ``target`` itself)."""
        self.slots.append((target, key, len(self.types)))
        self.types.append(tp)

    def render(self, components: dict[str, Any]) -> None:
        if not self.types:
            return
        schemas, defs = msgspec.json.schema_components(self.types, ref_template=REF)
        components.update(defs)
        for target, key, index in self.slots:
            if key:
                target[key] = schemas[index]
            else:
                target.update(schemas[index])


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)

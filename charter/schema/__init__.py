"""Sans-I/O schema layer: table schemas, validators, error details, JSON Schema."""

from .table_schema import FieldSpec, TableOptions, TableSchema, build_schema
from .validation import InputError, validate

__all__ = ["FieldSpec", "InputError", "TableOptions", "TableSchema", "build_schema", "validate"]

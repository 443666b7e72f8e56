"""Query language: object model, URL parser, operator registry and SQL compiler (sans-I/O)."""

from .model import Condition, Group, Query, Select, SelectItem, Sort
from .parser import parse_query_string

__all__ = ["Condition", "Group", "Query", "Select", "SelectItem", "Sort", "parse_query_string"]

"""Charter: a contract-first backend framework.

Declare tables and typed methods in Python; Charter serves them as REST resources with a URL
query language, with validation and transactions enforced from the declarations.
"""

from . import auth, crypto
from .app import App
from .errors import (
    CharterError,
    Conflict,
    Forbidden,
    HttpError,
    InvalidQuery,
    MalformedInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RateLimited,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationError,
)
from .http.cors import CORS
from .http.request import Request
from .http.response import Response
from .model import perms
from .model.contracts import Contract, endpoint_error_schema, route
from .model.fields import Field, relationship
from .model.methods import Service, delete, get, patch, post, put, rpc
from .model.operations import Operation, map_route, transaction
from .model.results import HttpResp, HttpResult
from .model.roles import Grant, Role, User
from .model.table import Table, resource
from .query import Condition, Group, Query, Sort
from .runtime.context import RequestContext, current_context
from .runtime.entities import EntityContext, entities
from .runtime.flows import FlowContext, FlowError
from .runtime.transaction import Transaction
from .schema.signature import Partial
from .sources import Source
from .web.middleware import Middleware
from .web.rate_limit import rate_limit

__version__ = "0.1.0"

__all__ = [
    "CORS",
    "App",
    "CharterError",
    "Condition",
    "Conflict",
    "Contract",
    "EntityContext",
    "Field",
    "FlowContext",
    "FlowError",
    "Forbidden",
    "Grant",
    "Group",
    "HttpError",
    "HttpResp",
    "HttpResult",
    "InvalidQuery",
    "MalformedInput",
    "MethodNotAllowed",
    "Middleware",
    "NotFound",
    "Operation",
    "Partial",
    "PayloadTooLarge",
    "PreconditionFailed",
    "Query",
    "RateLimited",
    "Request",
    "RequestContext",
    "Response",
    "Role",
    "Service",
    "Sort",
    "Source",
    "Table",
    "Transaction",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "User",
    "ValidationError",
    "auth",
    "crypto",
    "current_context",
    "delete",
    "endpoint_error_schema",
    "entities",
    "get",
    "map_route",
    "patch",
    "perms",
    "post",
    "put",
    "rate_limit",
    "relationship",
    "resource",
    "route",
    "rpc",
    "transaction",
]

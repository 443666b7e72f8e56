"""The public API of ``charter``: pinned, so that any change to it is deliberate."""

import importlib
import pkgutil
import types

import charter

PUBLIC = [
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


def ruff_order(name: str) -> tuple[int, str]:
    """The order of ruff's RUF022: CONSTANTS, then Classes, then functions and modules."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_all_is_pinned():
    assert charter.__all__ == PUBLIC


def test_all_is_sorted():
    assert charter.__all__ == sorted(charter.__all__, key=ruff_order)


def test_every_exported_name_exists():
    for name in charter.__all__:
        assert getattr(charter, name) is not None, name


def test_every_public_object_is_exported():
    """Names that are not modules and do not start with ``_`` are all in ``__all__``."""
    public = {
        name
        for name, value in vars(charter).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(charter.__all__)


def test_the_error_tree_has_one_root():
    for name in charter.__all__:
        value = getattr(charter, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, charter.CharterError), name
            assert value.__doc__, name
    http_errors = {
        charter.MalformedInput: (400, "MALFORMED_INPUT"),
        charter.InvalidQuery: (400, "INVALID_QUERY"),
        charter.Unauthorized: (401, "UNAUTHORIZED"),
        charter.Forbidden: (403, "FORBIDDEN"),
        charter.NotFound: (404, "NOT_FOUND"),
        charter.MethodNotAllowed: (405, "METHOD_NOT_ALLOWED"),
        charter.Conflict: (409, "CONFLICT"),
        charter.PreconditionFailed: (412, "PRECONDITION_FAILED"),
        charter.PayloadTooLarge: (413, "PAYLOAD_TOO_LARGE"),
        charter.UnsupportedMediaType: (415, "UNSUPPORTED_MEDIA_TYPE"),
        charter.ValidationError: (422, "INVALID_PROPERTIES"),
        charter.RateLimited: (429, "RATE_LIMITED"),
        charter.Unavailable: (503, "UNAVAILABLE"),
    }
    for cls, (status, code) in http_errors.items():
        error = cls()
        assert isinstance(error, charter.HttpError)
        assert (error.status_code, error.code) == (status, code)
    custom = charter.HttpError(402, "pay", code="PAYMENT_REQUIRED", details=[{"x": 1}])
    assert (custom.status_code, custom.message, custom.code) == (402, "pay", "PAYMENT_REQUIRED")
    assert custom.details == [{"x": 1}]


def test_every_exception_class_in_the_package_has_the_one_root():
    """Not only the exported ones: every exception class any charter module defines."""
    found = []
    for module in pkgutil.walk_packages(charter.__path__, "charter."):
        loaded = importlib.import_module(module.name)
        for value in vars(loaded).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__.startswith("charter")
            ):
                found.append(value)
                assert issubclass(value, charter.CharterError), value
                assert value.__doc__, value
    assert len(found) > 15


def test_version():
    assert isinstance(charter.__version__, str)


def test_every_modules_all_names_what_it_defines() -> None:
    """``__all__`` agrees with each module: every listed name exists there."""
    for module in pkgutil.walk_packages(charter.__path__, "charter."):
        loaded = importlib.import_module(module.name)
        for name in getattr(loaded, "__all__", ()):
            assert hasattr(loaded, name), f"{module.name}.__all__ lists {name}"


def test_public_names_come_from_the_package_not_its_internals() -> None:
    """The README and docs import public names from ``charter`` (and ``charter.testing``)."""
    import pathlib
    import re

    root = pathlib.Path(charter.__file__).resolve().parent.parent
    internal = re.compile(r"from charter\.(model|web|storage|schema|http)\b")
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        if page.name == "architecture.md":
            continue
        for line in page.read_text().splitlines():
            assert not internal.search(line), f"{page.name}: {line}"

"""The ``charter`` command: serve, develop and inspect an app.

``APP`` is ``module:attr``, ``path/to/file.py:attr`` or ``path/to/file.py`` (attr ``app``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .model import perms
from .redaction import mask_url

__all__ = ["load_app", "main"]

_APP_ENV = "CHARTER_APP"


def load_app(spec: str) -> Any:
    """Import the app named by ``spec`` (see the module docstring)."""
    target, _, attr = spec.partition(":")
    attr = attr or "app"
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target).resolve()
        if not path.exists():
            raise SystemExit(f"charter: no such file {target}")
        sys.path.insert(0, str(path.parent))
        name = path.stem
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise SystemExit(f"charter: cannot import {target}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        module = importlib.import_module(target)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SystemExit(f"charter: {target} has no attribute {attr!r}") from None


def _factory() -> Any:
    """Entry point for uvicorn workers and reload: the app named by ``CHARTER_APP``."""
    return load_app(os.environ[_APP_ENV])


def _banner(app: Any, spec: str, args: argparse.Namespace, workers: int, mode: str) -> None:
    """What the server is and does, stated truthfully: nothing here may promise a protection."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    where = f"http://{args.host}:{args.port}"
    console.print(f"[bold]Charter[/] {mode} [cyan]{escape(spec)}[/] at [bold]{where}[/]")
    console.print(f"  database:   {escape(mask_url(app.config.database))}")
    console.print(f"  workers:    {workers}")
    console.print(f"  shared:     {escape(app.shared.describe())}")
    if args.access_log:
        console.print("  access log: on")
    else:
        console.print("  access log: off (--access-log to log every request)")
    if mode == "dev":
        console.print("  responses:  validated against their declarations")
    if app.config.auth:
        console.print(
            "  auth:       on - requests sign in (Basic, tokens); without credentials they act "
            "as the role 'anonymous'"
        )
    else:
        console.print(
            "  [yellow]auth: off[/] - every request acts as a super user; serve this only to "
            "trusted clients, or turn sign-in on with App(auth=True) / CHARTER_AUTH=true"
        )


def _serve(args: argparse.Namespace, *, reload: bool = False) -> None:
    import uvicorn

    from .http.server import PROTOCOL

    if args.database:
        os.environ["CHARTER_DATABASE"] = args.database
    if reload:
        os.environ.setdefault("CHARTER_VALIDATE_RESPONSES", "1")
    os.environ[_APP_ENV] = args.app
    app = load_app(args.app)
    workers = getattr(args, "workers", 1) or 1
    _banner(app, args.app, args, workers, "dev" if reload else "serving")
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "access_log": args.access_log,
        "timeout_graceful_shutdown": 30,
        "lifespan": "on",
        # Charter's protocol: read/send timeouts, header limits, errors in the envelope. An
        # import string, so that worker processes and the reloader load it too.
        "http": PROTOCOL,
    }
    if reload:
        target = args.app.partition(":")[0]
        watch = str(Path(target).resolve().parent) if target.endswith(".py") else os.getcwd()
        uvicorn.run(
            "charter.cli:_factory", factory=True, reload=True, reload_dirs=[watch], **options
        )
    elif workers > 1:
        uvicorn.run("charter.cli:_factory", factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, **options)


def _routes(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    app = load_app(args.app)
    table = RichTable(title=f"Routes of {args.app}")
    for column in ("method", "path", "name", "kind", "details"):
        table.add_column(column)
    for route in app.router.routes:
        shown = ("egroup", "perm", "roles", "static")
        details = ", ".join(
            f"{k}={_shown(k, route.meta[k])}" for k in shown if route.meta.get(k) is not None
        )
        table.add_row(route.method, route.path, route.name, route.kind, details)
    Console(width=160).print(table)


def _shown(key: str, value: Any) -> str:
    if key == "perm":
        return f"{value} ({perms.label(value)})"
    return str(value)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:

    help_format = _HelpFormatter
    parser = argparse.ArgumentParser(
        prog="charter", description="Charter command line.", formatter_class=help_format
    )
    parser.add_argument("--version", action="version", version=f"charter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def server_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("app", help="module:attr, file.py:attr or file.py")
        sub.add_argument("--host", default="127.0.0.1", help="interface to listen on")
        sub.add_argument("--port", type=int, default=8000, help="port to listen on")
        sub.add_argument(
            "--database",
            help="sqlite:///path or postgresql://... (default: CHARTER_DATABASE, else the "
            "app's, else sqlite:///./data/charter.db)",
        )
        sub.add_argument("--log-level", default="info", help="uvicorn's log level")
        sub.add_argument(
            "--access-log",
            action=argparse.BooleanOptionalAction,
            default=False,
            help="log one line per request",
        )

    serve = commands.add_parser("serve", help="serve an app", formatter_class=help_format)
    server_options(serve)
    serve.add_argument("--workers", type=int, default=1, help="worker processes sharing the port")
    dev = commands.add_parser(
        "dev",
        help="serve an app and reload it when its files change",
        formatter_class=help_format,
    )
    server_options(dev)
    routes = commands.add_parser(
        "routes", help="list every endpoint of an app", formatter_class=help_format
    )
    routes.add_argument("app", help="module:attr, file.py:attr or file.py")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``charter`` command."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        _serve(args)
    elif args.command == "dev":
        _serve(args, reload=True)
    elif args.command == "routes":
        _routes(args)


if __name__ == "__main__":
    main()

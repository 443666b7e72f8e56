"""The ``charter`` command: serve, develop and inspect an app, and generate its clients.

``APP`` is ``module:attr``, ``path/to/file.py:attr`` or ``path/to/file.py`` (attr ``app``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, auth
from .auth.directory import check_roles
from .clients.output import client_drift, generate_client, write_client
from .errors import CharterError
from .model import perms
from .model.roles import Grant, Role
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
            "  auth:       on - requests sign in (Basic, Bearer tokens from POST /auth/login, "
            "cookie sessions); without credentials they act as the role 'anonymous'"
        )
        source = "CHARTER_SECRET" if app.config.secret else "made once, kept in the database"
        console.print(f"  tokens:     signed with the app's secret ({source})")
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
        "ws": "websockets-sansio",  # the lighter implementation: an idle socket holds less
        # WebSocket subscriptions: pings at the event streams' keep-alive interval, and no
        # message larger than a request body may be.
        "ws_ping_interval": app.config.keepalive,
        "ws_max_size": app.config.max_body_size,
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
        shown = ("egroup", "perm", "roles", "static", "steps", "atomic", "privileged")
        details = ", ".join(
            f"{k}={_shown(k, route.meta[k])}" for k in shown if route.meta.get(k) is not None
        )
        table.add_row(route.method, route.path, route.name, route.kind, details)
    Console(width=160).print(table)


def _gen(args: argparse.Namespace) -> None:
    """``charter gen client``: write a typed client, or check that a folder holds one."""
    app = load_app(args.app)
    try:
        files = generate_client(app, args.lang)
    except CharterError as exc:
        raise SystemExit(f"charter: {exc}") from None
    folder = Path(args.output)
    if args.check:
        problems = client_drift(files, folder)
        if problems:
            lines = "\n".join(f"  {p}" for p in problems)
            raise SystemExit(
                f"charter: the {args.lang} client in {folder} is out of date:\n{lines}\n"
                f"run `charter gen client --lang {args.lang} -o {folder} {args.app}` to update it"
            )
        print(f"the {args.lang} client in {folder} is up to date")
        return
    written = write_client(files, folder)
    print(f"wrote the {args.lang} client: {', '.join(str(p) for p in written)}")


def _shown(key: str, value: Any) -> str:
    if key == "perm":
        return f"{value} ({perms.label(value)})"
    return str(value)


# -- charter users / charter roles ----------------------------------------------------------------


def _read_password(name: str) -> str:
    """A new password: asked twice on a terminal, else the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("the same again: ") != first:
            raise SystemExit("charter: the two passwords differ; nothing changed")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise SystemExit("charter: a password is required (none was given); nothing changed")
    return password


def _manage(args: argparse.Namespace) -> None:
    if args.database:
        os.environ["CHARTER_DATABASE"] = args.database
    app = load_app(args.app)
    password = None
    if args.command == "users" and args.verb in ("add", "passwd"):
        password = _read_password(args.name)
    try:
        asyncio.run(_manage_app(app, args, password))
    except CharterError as exc:  # a refusal (409, 404, 422...) or a bad declaration
        message = getattr(exc, "message", None) or str(exc)
        raise SystemExit(f"charter: {message}") from None


async def _manage_app(app: Any, args: argparse.Namespace, password: str | None) -> None:
    await app.startup()
    try:
        if args.command == "users":
            await _users(app, args, password)
        else:
            await _roles(app, args)
    finally:
        await app.shutdown()


async def _known_role(app: Any, role: str | None) -> None:
    if role is not None and role not in {r.name for r in await auth.list_roles(app)}:
        raise SystemExit(
            f"charter: no role is named {role!r}; declare it in the app or add it with "
            "`charter roles add`"
        )


async def _users(app: Any, args: argparse.Namespace, password: str | None) -> None:
    if args.verb == "add":
        if args.role is None and not args.super:
            raise SystemExit("charter: give the user a role (--role ROLE) or --super")
        await _known_role(app, args.role)
        assert password is not None
        user = await auth.add_user(app, args.name, password, role=args.role, super_user=args.super)
        print(
            f"added user {user.username} (role: {user.role or '-'}, super user: {user.super_user})"
        )
    elif args.verb == "list":
        for user in await auth.list_users(app):
            print(f"{user.username}\trole: {user.role or '-'}\tsuper user: {user.super_user}")
    elif args.verb == "passwd":
        assert password is not None
        await auth.set_password(app, args.name, password)
        print(f"changed the password of {args.name}; its sessions are ended")
    elif args.verb == "remove":
        if not await auth.remove_user(app, args.name):
            raise SystemExit(f"charter: no user is named {args.name!r}")
        print(f"removed user {args.name}")
    elif args.verb == "grant":
        if args.role is None and args.super is None:
            raise SystemExit("charter: give --role ROLE, --super or --no-super")
        await _known_role(app, args.role)
        user = await auth.set_role(app, args.name, args.role, super_user=args.super)
        print(f"{user.username} now has role {user.role or '-'} (super user: {user.super_user})")


_RIGHTS = ("read", "insert", "update", "delete")


def _pairs(values: Sequence[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, eq, rest = value.partition("=")
        if not eq or not key:
            raise SystemExit(f"charter: {option} takes NAME=VALUE, not {value!r}")
        pairs.append((key, rest))
    return pairs


def _bits(text: str) -> int:
    if text.isdigit():
        return int(text)
    values = {"R": 4, "W": 2, "X": 1, "_": 0}
    if not text or any(c not in values for c in text.upper()):
        raise SystemExit(f"charter: permission bits are RWX, R_X, R__... or 0-7, not {text!r}")
    return sum(values[c] for c in set(text.upper()))


def _role_from(args: argparse.Namespace) -> Role:
    rights: dict[str, dict[str, bool]] = {}
    for table, words in _pairs(args.table, "--table"):
        chosen = [w.strip() for w in words.split(",") if w.strip()]
        unknown = set(chosen) - set(_RIGHTS)
        if unknown:
            raise SystemExit(
                f"charter: table rights are {', '.join(_RIGHTS)}, not {sorted(unknown)}"
            )
        rights[table] = {w: True for w in chosen}
    attributes: dict[str, dict[str, str]] = {}
    for table, spec in _pairs(args.attributes, "--attributes"):
        for item in (i.strip() for i in spec.split(",") if i.strip()):
            name, colon, letters = item.partition(":")
            attributes.setdefault(table, {})[name] = letters if colon else "r"
    tables = {
        table: Grant(**rights.get(table, {}), attributes=attributes.get(table))
        for table in {*rights, *attributes}
    }
    egroups = {name: _bits(bits) for name, bits in _pairs(args.egroup, "--egroup")}
    return Role(args.name, super_user=args.super, tables=tables, egroups=egroups)


async def _roles(app: Any, args: argparse.Namespace) -> None:
    if args.verb == "list":
        for role in await auth.list_roles(app):
            tables = ", ".join(
                f"{name}: {'/'.join(r for r in _RIGHTS if getattr(g, r)) or '-'}"
                for name, g in sorted(role.tables.items())
            )
            egroups = ", ".join(f"{e}: {perms.label(b)}" for e, b in sorted(role.egroups.items()))
            print(
                f"{role.name}\tsuper user: {role.super_user}\ttables: {tables or '-'}"
                f"\tegroups: {egroups or '-'}"
            )
    elif args.verb == "add":
        role = _role_from(args)
        check_roles([role], {name: runtime.schema for name, runtime in app.tables.items()})
        await auth.add_role(app, role)
        print(f"added role {role.name}")
    elif args.verb == "remove":
        if not await auth.remove_role(app, args.name):
            raise SystemExit(f"charter: no role is named {args.name!r} (among roles not in code)")
        print(f"removed role {args.name}")


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
    gen = commands.add_parser("gen", help="generate code from an app", formatter_class=help_format)
    kinds = gen.add_subparsers(dest="kind", required=True)
    client = kinds.add_parser(
        "client",
        help="write a typed client of every table, method, RPC and route (docs/clients.md)",
        formatter_class=help_format,
    )
    client.add_argument(
        "--lang",
        choices=["python", "ts"],
        required=True,
        help="python (a package on httpx and msgspec) or ts (an ESM TypeScript package on fetch)",
    )
    client.add_argument("-o", "--output", required=True, help="the folder to write")
    client.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the folder differs from what the app generates now",
    )
    client.add_argument("app", help="module:attr, file.py:attr or file.py")
    _user_commands(commands, help_format)
    return parser


def _user_commands(commands: Any, help_format: type[argparse.HelpFormatter]) -> None:
    """``charter users ...`` and ``charter roles ...`` (SPEC section 6)."""

    def app_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("app", help="module:attr, file.py:attr or file.py")
        sub.add_argument(
            "--database", help="sqlite:///path or postgresql://... (as for charter serve)"
        )

    users = commands.add_parser(
        "users", help="manage the users of an app", formatter_class=help_format
    )
    verbs = users.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser(
        "add",
        help="add a user (password from a prompt, or from standard input)",
        formatter_class=help_format,
    )
    add.add_argument("name", help="the username")
    add.add_argument("--role", help="the user's role")
    add.add_argument("--super", action="store_true", help="a super user (may do everything)")
    app_options(add)
    listing = verbs.add_parser("list", help="list the users", formatter_class=help_format)
    app_options(listing)
    passwd = verbs.add_parser(
        "passwd",
        help="change a user's password (signs the user out everywhere)",
        formatter_class=help_format,
    )
    passwd.add_argument("name", help="the username")
    app_options(passwd)
    remove = verbs.add_parser("remove", help="remove a user", formatter_class=help_format)
    remove.add_argument("name", help="the username")
    app_options(remove)
    grant = verbs.add_parser(
        "grant", help="give a user a role, or make it a super user", formatter_class=help_format
    )
    grant.add_argument("name", help="the username")
    grant.add_argument("--role", help="the new role")
    grant.add_argument(
        "--super",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="make the user a super user (--no-super: no longer one)",
    )
    app_options(grant)

    roles = commands.add_parser(
        "roles", help="manage the roles of an app", formatter_class=help_format
    )
    verbs = roles.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="list the roles", formatter_class=help_format)
    app_options(listing)
    add = verbs.add_parser(
        "add", help="add or replace a role not declared in code", formatter_class=help_format
    )
    add.add_argument("name", help="the role's name")
    add.add_argument("--super", action="store_true", help="the role may do everything")
    add.add_argument(
        "--table",
        action="append",
        default=[],
        metavar="TABLE=RIGHTS",
        help="rights on a table: read,insert,update,delete (repeatable)",
    )
    add.add_argument(
        "--attributes",
        action="append",
        default=[],
        metavar="TABLE=ATTR:r,ATTR:rw",
        help="per attribute rights on a table; unlisted attributes are hidden (repeatable)",
    )
    add.add_argument(
        "--egroup",
        action="append",
        default=[],
        metavar="EGROUP=BITS",
        help="permission bits on an egroup: RWX, R_X, R__... or 0-7 (repeatable)",
    )
    app_options(add)
    remove = verbs.add_parser(
        "remove", help="remove a role not declared in code", formatter_class=help_format
    )
    remove.add_argument("name", help="the role's name")
    app_options(remove)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``charter`` command."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        _serve(args)
    elif args.command == "dev":
        _serve(args, reload=True)
    elif args.command == "routes":
        _routes(args)
    elif args.command == "gen":
        _gen(args)
    elif args.command in ("users", "roles"):
        _manage(args)


if __name__ == "__main__":
    main()

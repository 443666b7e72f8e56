"""The authorisation matrix (issue 11 point 8): roles x tables x operations x attributes x
protocols, generated from the declarations of tests/auth_rules_shop.py (its ``ROLES``, the
tables' schemas and row rules, the endpoints' egroups and roles). An oracle written from SPEC
section 6 (not from ``charter.runtime.access``) says for each cell what must happen; each cell
checks the exact status, the exact attributes and rows shown, and that no value the actor may
not see is anywhere in the raw response bytes (every such value is a sentinel string). Every
actor signs in for real; both backends.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cbor2
import msgspec
import pytest

from charter import Grant, Role
from tests.auth_rules_shop import ROLES, USERS, Shopfront, cheap_passwords, hidden, open_shop

ACTORS: list[str | None] = ["boss", "ann", "bob", "vic", "max", "nia", None]
TABLES = ["Brand", "Product"]
OWNERS = {  # who owns each seeded row ("" = public), as Shopfront.seed stores them
    "Brand": {"acme": "", "annco": "ann", "bobco": "bob"},
    "Product": {"pub1": "", "ann1": "ann", "ann2": "ann", "bob1": "bob"},
}
SENTINELS = {"Brand": ["notes"], "Product": ["cost", "secret"]}  # attributes holding one
FORMATS = {
    "json": ("application/json", msgspec.json.decode),
    "msgpack": ("application/msgpack", msgspec.msgpack.decode),
    "cbor": ("application/cbor", cbor2.loads),
    "csv": ("text/csv", None),
}


@pytest.fixture
def shop(database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shopfront]:
    cheap_passwords(monkeypatch)
    with open_shop(database) as front:
        yield front


# -- the oracle: SPEC section 6 applied to the declarations ------------------------------------


class Oracle:
    """What each actor may do, derived from ``ROLES`` and the tables' schemas."""

    def __init__(self, shop: Shopfront) -> None:
        self.schemas = {name: rt.schema for name, rt in shop.app.tables.items()}
        self.roles = {role.name: role for role in ROLES}

    def role(self, actor: str | None) -> Role:
        return self.roles["anonymous" if actor is None else USERS.get(actor, "boss")]

    def super(self, actor: str | None) -> bool:
        return self.role(actor).super_user

    def grant(self, actor: str | None, table: str) -> Grant | None:
        if self.super(actor):
            return Grant(read=True, insert=True, update=True, delete=True)
        return self.role(actor).tables.get(table)

    def may(self, actor: str | None, table: str, right: str) -> bool:
        grant = self.grant(actor, table)
        return bool(grant is not None and getattr(grant, right))

    def deny(self, actor: str | None) -> int:
        return 401 if actor is None else 403

    def fields(self, table: str) -> list[str]:
        schema = self.schemas[table]
        return [f for f in schema.fields if f not in schema.hidden]

    def readable(self, actor: str | None, table: str) -> set[str]:
        grant = self.grant(actor, table)
        if grant is None or not grant.read:
            return set()
        if grant.attributes is None:
            return set(self.fields(table))
        listed = {a for a, rights in grant.attributes.items() if "r" in rights}
        return (listed | {self.schemas[table].primary_key}) & set(self.fields(table))

    def writable(self, actor: str | None, table: str, attribute: str) -> bool:
        grant = self.grant(actor, table)
        if grant is None:
            return False
        if grant.attributes is None or attribute == self.schemas[table].primary_key:
            return True
        return "w" in grant.attributes.get(attribute, frozenset())

    def linked(self, actor: str | None, table: str, name: str) -> bool:
        rel = self.schemas[table].relationships[name]
        if not self.may(actor, rel.target, "read"):
            return False
        if rel.from_ is not None and rel.from_ not in self.readable(actor, table):
            return False
        return rel.to is None or rel.to in self.readable(actor, rel.target)

    def sees_row(self, actor: str | None, owner: str) -> bool:
        return self.super(actor) or owner == "" or (actor is not None and owner == actor)

    def writes_row(self, actor: str | None, table: str, owner: str) -> bool:
        if self.super(actor):
            return True
        if table == "Product":  # write_filter: your own rows (and the read rule)
            return actor is not None and owner == actor
        return self.sees_row(actor, owner)  # no write_filter: what it may read

    def visible_rows(self, actor: str | None, table: str) -> set[str]:
        if not self.may(actor, table, "read"):
            return set()
        return {k for k, owner in OWNERS[table].items() if self.sees_row(actor, owner)}

    def forbidden(self, actor: str | None) -> list[bytes]:
        """Every stored value ``actor`` may not see: sentinels of hidden attributes, and of
        rows outside its rules (their names)."""
        out = []
        for table, rows in OWNERS.items():
            readable = self.readable(actor, table)
            for key, owner in rows.items():
                visible = self.may(actor, table, "read") and self.sees_row(actor, owner)
                for attribute in SENTINELS[table]:
                    if not visible or attribute not in readable:
                        out.append(hidden(table, attribute, key).encode())
                if not visible:
                    out.append(f"{table.lower()} {key}".encode())
        return out

    def egroup_bits(self, actor: str | None, egroup: str) -> int:
        return 7 if self.super(actor) else self.role(actor).egroups.get(egroup, 0)


@dataclass
class Cells:
    """The matrix's cells: each a name, a verdict and what went wrong."""

    oracle: Oracle
    count: int = 0
    failures: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: Any = "") -> None:
        self.count += 1
        if not ok:
            self.failures.append(f"{name}: {detail}")

    def status(self, name: str, response: Any, expected: int) -> bool:
        ok = response.status_code == expected
        self.check(
            name, ok, f"got {response.status_code}, expected {expected}: {response.text[:300]}"
        )
        return ok

    def no_leak(self, name: str, actor: str | None, response: Any) -> None:
        leaked = [s for s in self.oracle.forbidden(actor) if s in response.content]
        self.check(f"{name} leaks nothing", not leaked, leaked)

    def done(self) -> None:
        assert self.count > 0
        assert not self.failures, f"{len(self.failures)}/{self.count} cells failed:\n" + "\n".join(
            self.failures[:40]
        )


def _decode(fmt: str, body: bytes) -> Any:
    decode = FORMATS[fmt][1]
    if decode is not None:
        return decode(body)
    rows = list(csv.reader(io.StringIO(body.decode())))
    return rows[0] if rows else []


def _same_as_unknown(
    cells: Cells, name: str, got: Any, unknown: Any, replace: tuple[str, str]
) -> None:
    same = got.status_code == unknown.status_code and got.json()["error"][
        "message"
    ] == unknown.json()["error"]["message"].replace(*replace)
    cells.check(name, same, f"{got.status_code} {got.text[:200]} vs {unknown.text[:200]}")


# -- reads ---------------------------------------------------------------------------------------


def test_matrix_reads(shop: Shopfront) -> None:
    oracle = Oracle(shop)
    cells = Cells(oracle)
    c = shop.client
    for actor, table in itertools.product(ACTORS, TABLES):
        auth = shop.auth(actor)
        tag = f"{actor or 'anonymous'} {table}"
        read = oracle.may(actor, table, "read")
        readable = oracle.readable(actor, table)
        rows = oracle.visible_rows(actor, table)
        # describe
        r = c.get(f"/{table}", auth=auth)
        if cells.status(f"{tag} describe", r, 200 if read else oracle.deny(actor)) and read:
            cells.check(
                f"{tag} describe fields",
                set(r.json()["properties"]) == readable,
                r.json()["properties"].keys(),
            )
        cells.no_leak(f"{tag} describe", actor, r)
        # the collection in every format
        for fmt, (media, _) in FORMATS.items():
            r = c.get(f"/{table}/", auth=auth, headers={"accept": media})
            cells.no_leak(f"{tag} list {fmt}", actor, r)
            if (
                not cells.status(f"{tag} list {fmt}", r, 200 if read else oracle.deny(actor))
                or not read
            ):
                continue
            body = _decode(fmt, r.content)
            if fmt == "csv":
                cells.check(f"{tag} csv columns", set(body) == readable, body)
                continue
            cells.check(
                f"{tag} list {fmt} rows", {x["id"] for x in body} == rows, [x["id"] for x in body]
            )
            cells.check(f"{tag} list {fmt} attrs", all(set(x) <= readable for x in body), body[:1])
        # counted
        r = c.head(f"/{table}/", auth=auth, headers={"prefer": "count=exact"})
        if cells.status(f"{tag} HEAD count", r, 200 if read else oracle.deny(actor)) and read:
            cells.check(
                f"{tag} count", r.headers["content-range"].endswith(f"/{len(rows)}"), r.headers
            )
        r = c.get(f"/{table}/?limit(1)", auth=auth, headers={"prefer": "count=exact"})
        if cells.status(f"{tag} GET count", r, 200 if read else oracle.deny(actor)) and read:
            cells.check(
                f"{tag} count", r.headers["content-range"].endswith(f"/{len(rows)}"), r.headers
            )
        # explain: the plan, never the rule's values or the SQL for a restricted role
        r = c.get(f"/{table}/?explain(true)", auth=auth)
        if cells.status(f"{tag} explain", r, 200 if read else oracle.deny(actor)) and read:
            cells.check(f"{tag} explain sql", ("sql" in r.json()) == oracle.super(actor), r.json())
        cells.no_leak(f"{tag} explain", actor, r)
        # each record, each property, in each format
        missing = c.get(f"/{table}/zzzz", auth=auth)
        for key in OWNERS[table]:
            for fmt, (media, _) in FORMATS.items():
                r = c.get(f"/{table}/{key}", auth=auth, headers={"accept": media})
                cells.no_leak(f"{tag} get {key} {fmt}", actor, r)
                expected = oracle.deny(actor) if not read else 200 if key in rows else 404
                if (
                    cells.status(f"{tag} get {key} {fmt}", r, expected)
                    and expected == 200
                    and fmt != "csv"
                ):
                    cells.check(
                        f"{tag} get {key} {fmt} attrs",
                        set(_decode(fmt, r.content)) <= readable,
                        r.content,
                    )
            if read and key not in rows:
                _same_as_unknown(
                    cells,
                    f"{tag} {key} as missing",
                    c.get(f"/{table}/{key}", auth=auth),
                    missing,
                    ("zzzz", key),
                )
            r = c.head(f"/{table}/{key}", auth=auth)
            cells.status(
                f"{tag} HEAD {key}",
                r,
                oracle.deny(actor) if not read else 200 if key in rows else 404,
            )
            for attribute in [*oracle.fields(table), "secret", "nosuch"]:
                r = c.get(f"/{table}/{key}.{attribute}", auth=auth)
                cells.no_leak(f"{tag} {key}.{attribute}", actor, r)
                if not read:
                    cells.status(f"{tag} {key}.{attribute}", r, oracle.deny(actor))
                elif key in rows and attribute in readable:
                    cells.status(f"{tag} {key}.{attribute}", r, 200)
                elif attribute in readable:  # a row outside the rule: as a missing row
                    absent = c.get(f"/{table}/zzzz.{attribute}", auth=auth)
                    _same_as_unknown(cells, f"{tag} {key}.{attribute}", r, absent, ("zzzz", key))
                else:
                    unknown = c.get(f"/{table}/{key}.nosuch", auth=auth)
                    _same_as_unknown(
                        cells, f"{tag} {key}.{attribute}", r, unknown, ("nosuch", attribute)
                    )
    cells.done()


def test_matrix_queries(shop: Shopfront) -> None:
    oracle = Oracle(shop)
    cells = Cells(oracle)
    c = shop.client
    for actor, table in itertools.product(ACTORS, TABLES):
        auth = shop.auth(actor)
        tag = f"{actor or 'anonymous'} {table}"
        read = oracle.may(actor, table, "read")
        readable = oracle.readable(actor, table)
        schema = oracle.schemas[table]
        probes = {
            "condition": ("{a}=1", "nosuch=1"),
            "range": ("{a}=gt=1", "nosuch=gt=1"),
            "or": ("[id=x|{a}=1]", "[id=x|nosuch=1]"),
            "sort": ("sort({a})", "sort(nosuch)"),
            "select": ("select($id,{a})", "select($id,nosuch)"),
        }
        for attribute in [*oracle.fields(table), "secret"]:
            for kind, (shape, unknown_shape) in probes.items():
                r = c.get(f"/{table}/?" + shape.format(a=attribute), auth=auth)
                name = f"{tag} {kind} on {attribute}"
                cells.no_leak(name, actor, r)
                if not read:
                    cells.status(name, r, oracle.deny(actor))
                elif attribute in readable:
                    cells.status(name, r, 200)
                else:
                    unknown = c.get(f"/{table}/?" + unknown_shape, auth=auth)
                    _same_as_unknown(cells, name, r, unknown, ("nosuch", attribute))
        # joins and nested selects: the related table's grant and rules apply
        for rel, spec in schema.relationships.items():
            target = spec.target
            linked = oracle.linked(actor, table, rel)
            for attribute in [*oracle.fields(target), "secret"]:
                if attribute == "secret" and target != "Product":
                    continue
                ok = linked and attribute in oracle.readable(actor, target)
                for kind, shape, unknown_shape in [
                    ("join", f"{rel}.{attribute}=1", f"{rel}.nosuch=1"),
                    (
                        "nested select",
                        f"select(id,{rel}{{{attribute}}})",
                        f"select(id,{rel}{{nosuch}})",
                    ),
                ]:
                    name = f"{tag} {kind} {rel}.{attribute}"
                    r = c.get(f"/{table}/?" + shape, auth=auth)
                    cells.no_leak(name, actor, r)
                    if not read:
                        cells.status(name, r, oracle.deny(actor))
                    elif ok:
                        cells.status(name, r, 200)
                    elif not linked:
                        unknown = c.get(f"/{table}/?" + shape.replace(rel, "nosuchrel"), auth=auth)
                        _same_as_unknown(cells, name, r, unknown, ("nosuchrel", rel))
                    else:
                        unknown = c.get(f"/{table}/?" + unknown_shape, auth=auth)
                        _same_as_unknown(cells, name, r, unknown, ("nosuch", attribute))
            # a whole related record: only the related rows and attributes the actor may see
            name = f"{tag} select whole {rel}"
            r = c.get(f"/{table}/?select(id,{rel})", auth=auth)
            cells.no_leak(name, actor, r)
            if read and linked and cells.status(name, r, 200):
                seen = oracle.visible_rows(actor, target)
                for row in r.json():
                    related = row[rel] if spec.many else [row[rel]] if row[rel] else []
                    cells.check(f"{name} rows", all(x["id"] in seen for x in related), related)
                    cells.check(
                        f"{name} attrs",
                        all(set(x) <= oracle.readable(actor, target) for x in related),
                        related,
                    )
            r = c.get(f"/{table}/?{rel}.name=sw=&select(id)", auth=auth)  # every related name
            if read and linked and cells.status(f"{tag} join rows {rel}", r, 200):
                seen = oracle.visible_rows(actor, target)
                expected = _joined(table, rel, seen) & oracle.visible_rows(actor, table)
                cells.check(
                    f"{tag} join rows {rel}", set(r.json()) == expected, (r.json(), expected)
                )
    cells.done()


def _joined(table: str, rel: str, targets: set[str]) -> set[str]:
    """Rows of ``table`` linked through ``rel`` to one of ``targets`` (the seeded links)."""
    brand_of = {"pub1": "acme", "ann1": "annco", "ann2": "acme", "bob1": "bobco"}
    if table == "Product":
        return {p for p, b in brand_of.items() if b in targets}
    return {b for p, b in brand_of.items() if p in targets}


# -- writes ----------------------------------------------------------------------------------------


def test_matrix_writes(shop: Shopfront) -> None:
    oracle = Oracle(shop)
    cells = Cells(oracle)
    c = shop.client
    serial = itertools.count()
    ids = shop.ids

    def other(actor: str | None) -> str:
        return "bob" if actor == "ann" else "ann"

    def make(table: str, owner: str) -> str:
        key = f"w{next(serial)}"
        body: dict[str, Any] = {"name": f"made {key}", "owner": ids.get(owner, "")}
        extra = {"Product": {"price": 7.5, "cost": "made cost"}, "Brand": {"notes": "made notes"}}
        shop.put_as_boss(f"/{table}/{key}", {**body, **extra[table]})
        return key

    def stored(table: str, key: str) -> Any:
        r = shop.get_as_boss(f"/{table}/{key}")
        return r.json() if r.status_code == 200 else None

    readonly = {"Product": ("price", 1.0), "Brand": ("notes", "n")}
    for actor, table in itertools.product(ACTORS, TABLES):
        auth = shop.auth(actor)
        tag = f"{actor or 'anonymous'} {table}"
        me = ids.get(actor or "", "\x00")
        for right, attempt in [
            ("insert", "POST own"), ("insert", "POST other"), ("insert", "POST read-only"),
            ("insert", "PUT new"),
        ]:  # fmt: skip
            key = f"n{next(serial)}"
            owner = ids[other(actor)] if attempt == "POST other" else me
            body: dict[str, Any] = {"id": key, "name": f"new {key}", "owner": owner}
            if attempt == "POST read-only":
                body[readonly[table][0]] = readonly[table][1]
            if attempt.startswith("PUT"):
                r = c.put(f"/{table}/{key}", json=body, auth=auth)
                ok_status = 204
            else:
                r = c.post(f"/{table}/", json=body, auth=auth)
                ok_status = 201
            name = f"{tag} {attempt}"
            cells.no_leak(name, actor, r)
            if not oracle.may(actor, table, right):
                expected = oracle.deny(actor)
            elif not all(oracle.writable(actor, table, a) for a in body) or not oracle.writes_row(
                actor, table, other(actor) if attempt == "POST other" else actor or ""
            ):
                expected = 403
            else:
                expected = ok_status
            cells.status(name, r, expected)
            cells.check(
                f"{name} stored", (stored(table, key) is not None) == (expected == ok_status), key
            )
        for whose in ("own", "other", "public"):
            owner = {"own": actor or "", "other": other(actor), "public": ""}[whose]
            writes = oracle.writes_row(actor, table, owner)
            for attempt in ("PUT", "PATCH", "PATCH read-only", "DELETE", "restock"):
                if attempt == "restock" and table != "Product":
                    continue
                key = make(table, owner)
                before = stored(table, key)
                name = f"{tag} {attempt} {whose}"
                body = {"name": f"changed {key}", "owner": me}
                if attempt == "PATCH read-only":
                    body = {readonly[table][0]: readonly[table][1]}
                if attempt == "DELETE":
                    r = c.delete(f"/{table}/{key}", auth=auth)
                    right, ok_status = "delete", 204
                elif attempt == "restock":
                    r = c.post(f"/{table}/{key}/restock", auth=auth)
                    right, ok_status = "", 200
                else:
                    method = attempt.split()[0]
                    r = c.request(method, f"/{table}/{key}", json=body, auth=auth)
                    right, ok_status = "update", 204
                cells.no_leak(name, actor, r)
                if attempt == "restock":
                    allowed = oracle.egroup_bits(actor, "shop") & 6 == 6
                    expected = oracle.deny(actor) if not allowed else ok_status if writes else 404
                elif not oracle.may(actor, table, right):
                    expected = oracle.deny(actor)
                elif right == "update" and not all(oracle.writable(actor, table, a) for a in body):
                    expected = 403
                else:
                    expected = ok_status if writes else 404
                cells.status(name, r, expected)
                after = stored(table, key)
                if expected != ok_status or attempt == "restock":
                    cells.check(f"{name} unchanged", after == before, (before, after))
                elif attempt == "DELETE":
                    cells.check(f"{name} deleted", after is None, after)
                else:  # what it may not write keeps its value (a PUT included)
                    kept = {a: v for a, v in before.items() if not oracle.writable(actor, table, a)}
                    now = {a: after.get(a) for a in kept}
                    cells.check(f"{name} keeps what it may not write", now == kept, (kept, now))
                if attempt == "restock" and expected == 200:
                    cells.check(
                        f"{name} attrs",
                        set(r.json()) <= oracle.readable(actor, table) | {"id"},
                        r.json(),
                    )
        # delete by query: exactly the matching rows it may write
        batch = f"q{next(serial)}"
        made = {whose: [] for whose in ("own", "other", "public")}  # type: dict[str, list[str]]
        for whose in made:
            owner = {"own": actor or "", "other": other(actor), "public": ""}[whose]
            for _ in range(2):
                key = f"{batch}x{next(serial)}"
                shop.put_as_boss(
                    f"/{table}/{key}", {"name": f"{batch} {key}", "owner": ids.get(owner, "")}
                )
                made[whose].append(key)
        r = c.delete(f"/{table}/?name=sw={batch}", auth=auth)
        name = f"{tag} DELETE by query"
        if not oracle.may(actor, table, "delete"):
            cells.status(name, r, oracle.deny(actor))
            expected_gone: set[str] = set()
        else:
            cells.status(name, r, 200)
            expected_gone = {
                key
                for whose, keys in made.items()
                for key in keys
                if oracle.writes_row(
                    actor, table, {"own": actor or "", "other": other(actor), "public": ""}[whose]
                )
            }
            cells.check(name, r.json() == len(expected_gone), (r.json(), expected_gone))
        gone = {key for keys in made.values() for key in keys if stored(table, key) is None}
        cells.check(f"{name} rows", gone == expected_gone, (gone, expected_gone))
    cells.done()


# -- model methods, RPC, contract routes, storage proxy, OpenAPI ----------------------------------


def test_matrix_endpoints(shop: Shopfront) -> None:
    oracle = Oracle(shop)
    cells = Cells(oracle)
    c = shop.client
    routes = {
        "/managers": lambda a: (
            (not oracle.super(a) and oracle.role(a).name == "manager") or oracle.super(a)
        ),
        "/members": lambda a: a is not None,
        "/everyone": lambda a: True,
        "/strangers": lambda a: a is None,
    }
    rpcs = {"ping": 1, "memo": 1, "peek": 7}
    for actor in ACTORS:
        auth = shop.auth(actor)
        tag = actor or "anonymous"
        # undeclared instance method: the table's read right, the read rule
        read = oracle.may(actor, "Product", "read")
        for key in OWNERS["Product"]:
            r = c.get(f"/Product/{key}/label", auth=auth)
            visible = key in oracle.visible_rows(actor, "Product")
            cells.status(
                f"{tag} label {key}", r, oracle.deny(actor) if not read else 200 if visible else 404
            )
            cells.no_leak(f"{tag} label {key}", actor, r)
        # declared static method: R__ on "shop"
        r = c.get("/Product/total", auth=auth)
        allowed = oracle.egroup_bits(actor, "shop") & 4 == 4
        cells.status(f"{tag} total", r, 200 if allowed else oracle.deny(actor))
        for name, bits in rpcs.items():
            args = (
                ['SELECT data FROM "Product"']
                if name == "peek"
                else ["hi"]
                if name == "memo"
                else []
            )
            r = c.post(f"/rpc/{name}", json=args, auth=auth)
            allowed = oracle.egroup_bits(actor, "shop") & bits == bits
            cells.no_leak(f"{tag} rpc {name}", actor, r)
            if not allowed:
                cells.status(f"{tag} rpc {name}", r, oracle.deny(actor))
            elif name == "peek":  # the storage proxy reaches no table, for anyone
                sqlite = shop.app.database.__class__.__name__ == "SQLiteStorage"
                cells.status(f"{tag} storage proxy on a table", r, 403 if sqlite else 501)
                cells.check(f"{tag} storage proxy leaks", b"SENTINEL" not in r.content, r.text)
            elif name == "memo" and shop.app.database.__class__.__name__ != "SQLiteStorage":
                cells.status(f"{tag} rpc {name}", r, 501)
            else:
                cells.status(f"{tag} rpc {name}", r, 200)
        for path, allows in routes.items():
            r = c.get(path, auth=auth)
            if path == "/strangers" and actor is not None:
                expected = 403
            else:
                expected = 200 if allows(actor) else oracle.deny(actor)
            cells.status(f"{tag} route {path}", r, expected)
    cells.done()


def test_matrix_openapi(shop: Shopfront) -> None:
    oracle = Oracle(shop)
    cells = Cells(oracle)
    c = shop.client
    for actor in ACTORS:
        tag = actor or "anonymous"
        r = c.get("/openapi.json", auth=shop.auth(actor))
        if not cells.status(f"{tag} openapi", r, 200):
            continue
        document = r.json()
        paths, components = document["paths"], document["components"]["schemas"]
        for table in TABLES:
            rights = {
                right: oracle.may(actor, table, right)
                for right in ("read", "insert", "update", "delete")
            }
            operations = set(paths.get(f"/{table}/{{id}}", {})) - {"parameters"}
            expected = {
                op
                for op, ok in [
                    ("get", rights["read"]),
                    ("put", rights["insert"] or rights["update"]),
                    ("patch", rights["update"]),
                    ("post", rights["update"]),  # a publish to the record's subscribers
                    ("delete", rights["delete"]),
                ]
                if ok
            }
            cells.check(
                f"{tag} openapi {table} operations", operations == expected, (operations, expected)
            )
            if any(rights.values()):
                shown = set(components.get(table, {}).get("properties", {}))
                cells.check(
                    f"{tag} openapi {table} fields",
                    shown == oracle.readable(actor, table)
                    or (not rights["read"] and shown <= set(oracle.fields(table))),
                    shown,
                )
            hidden_fields = set(oracle.fields(table)) - oracle.readable(actor, table)
            if rights["read"] and not any(oracle.writable(actor, table, f) for f in hidden_fields):
                text = r.text
                leaked = [f for f in hidden_fields if f'"{f}"' in text]
                cells.check(
                    f"{tag} openapi names no hidden attribute of {table}", not leaked, leaked
                )
        bits = oracle.egroup_bits(actor, "shop")
        cells.check(
            f"{tag} openapi restock", ("/Product/{id}/restock" in paths) == (bits & 6 == 6), bits
        )
        cells.check(f"{tag} openapi total", ("/Product/total" in paths) == (bits & 4 == 4), bits)
        cells.check(f"{tag} openapi ping", ("/rpc/ping" in paths) == (bits & 1 == 1), bits)
        # a super user's document is the whole app's
        expected_strangers = actor is None or oracle.super(actor)
        cells.check(
            f"{tag} openapi strangers", ("/strangers" in paths) == expected_strangers, actor
        )
        cells.check(f"{tag} openapi members", ("/members" in paths) == (actor is not None), actor)
    cells.done()

"""``app.storage.<collection>``: documents, lists, containment queries and confined ``exec``."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from charter import App, Field, Table
from charter.errors import CharterError, Forbidden, HttpError, ValidationError
from charter.runtime import storage_proxy
from charter.runtime.storage_proxy import Collection


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(tables=[Product], database=db_url(tmp_path))
    await app.startup()
    yield app
    await app.shutdown()


# -- documents ---------------------------------------------------------------------------------


async def test_get_default(app: App) -> None:
    assert await app.storage.carts.get("missing") is None
    assert await app.storage.carts.get("missing", {"items": []}) == {"items": []}


async def test_set_get_roundtrip_nested(app: App) -> None:
    doc = {
        "user": {"name": "Ana", "tags": ["a", "b"], "address": {"city": "Lisbon", "zip": None}},
        "items": [{"sku": "x", "qty": 2, "price": 9.5}, {"sku": "y", "qty": 1, "gift": True}],
        "count": 3,
        "unicode": "Ωμέγα ✓",
    }
    carts = app.storage.carts
    assert await carts.set("c1", doc) is None
    assert await carts.get("c1") == doc
    for scalar in ["text", 42, 1.5, True, None, []]:
        await carts.set("s", scalar)
        assert await carts.get("s") == scalar
    await carts.set("c1", {"replaced": True})  # set replaces, it does not merge
    assert await carts.get("c1") == {"replaced": True}


async def test_set_refuses_what_is_not_json_and_non_string_keys(app: App) -> None:
    with pytest.raises(ValidationError, match="not JSON"):
        await app.storage.carts.set("k", object())
    with pytest.raises(ValidationError, match="string"):
        await app.storage.carts.set(1, {})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="string"):
        await app.storage.carts.get(None)  # type: ignore[arg-type]


async def test_update_merges(app: App) -> None:
    carts = app.storage.carts
    await carts.set("c", {"a": 1, "nested": {"x": 1}})
    merged = await carts.update("c", {"b": 2, "nested": {"y": 2}})
    assert merged == {"a": 1, "b": 2, "nested": {"y": 2}}  # shallow: nested is replaced
    assert await carts.get("c") == merged
    assert await carts.update("new", {"z": 1}) == {"z": 1}  # absent: starts from {}
    assert await carts.get("new") == {"z": 1}


async def test_update_errors(app: App) -> None:
    carts = app.storage.carts
    await carts.set("list", [1, 2])
    await carts.set("num", 5)
    with pytest.raises(ValidationError, match="not an object"):
        await carts.update("list", {"a": 1})
    with pytest.raises(ValidationError, match="not an object"):
        await carts.update("num", {"a": 1})
    with pytest.raises(ValidationError, match="object of changes"):
        await carts.update("c", [("a", 1)])  # type: ignore[arg-type]
    assert await carts.get("list") == [1, 2]
    assert await carts.get("num") == 5


async def test_delete_returns_bool(app: App) -> None:
    carts = app.storage.carts
    await carts.set("k", {"v": 1})
    assert await carts.delete("k") is True
    assert await carts.delete("k") is False
    assert await carts.get("k") is None


# -- lists -------------------------------------------------------------------------------------


async def test_push_returns_length_and_keeps_order(app: App) -> None:
    queue = app.storage.queue
    assert await queue.push("jobs", "a") == 1
    assert await queue.push("jobs", "b", "c") == 3
    assert await queue.push("jobs", {"n": 4}) == 4
    assert await queue.get("jobs") == ["a", "b", "c", {"n": 4}]
    assert await queue.push("empty") == 0
    assert await queue.get("empty") == []


async def test_pop_and_shift(app: App) -> None:
    queue = app.storage.queue
    await queue.push("jobs", 1, 2, 3, 4)
    assert await queue.pop("jobs") == 4
    assert await queue.shift("jobs") == 1
    assert await queue.get("jobs") == [2, 3]
    assert await queue.shift("jobs") == 2
    assert await queue.pop("jobs") == 3
    assert await queue.pop("jobs") is None
    assert await queue.shift("jobs") is None
    assert await queue.get("jobs") == []
    # Absent: None, and nothing is created.
    assert await queue.pop("nothing") is None
    assert await queue.shift("nothing") is None
    assert await queue.get("nothing", "absent") == "absent"


async def test_list_operations_on_a_non_list(app: App) -> None:
    queue = app.storage.queue
    await queue.set("obj", {"a": 1})
    for op in (queue.pop, queue.shift):
        with pytest.raises(ValidationError, match="not a list"):
            await op("obj")
    with pytest.raises(ValidationError, match="not a list"):
        await queue.push("obj", 1)
    assert await queue.get("obj") == {"a": 1}


async def test_concurrent_pushes_are_atomic(app: App) -> None:
    queue = app.storage.queue
    lengths = await asyncio.gather(*(queue.push("q", i) for i in range(50)))
    assert sorted(lengths) == list(range(1, 51))
    items = await queue.get("q")
    assert sorted(items) == list(range(50))
    # The list's order is the order the pushes were applied (their returned lengths).
    assert [items[n - 1] for n in lengths] == list(range(50))


# -- query -------------------------------------------------------------------------------------


async def test_query_containment(app: App) -> None:
    users = app.storage.users
    await users.set("ana", {"role": "admin", "tags": ["a", "b", "c"], "address": {"city": "L"}})
    await users.set("bo", {"role": "user", "tags": ["b"], "address": {"city": "P", "zip": 1}})
    await users.set("cy", {"role": "user", "tags": [], "orders": [{"id": 1, "ok": True}]})
    await users.set("list", ["role", "user"])
    await users.set("flag", {"active": True, "n": 1})

    async def keys(match: dict[str, Any]) -> list[str]:
        return [row["key"] for row in await users.query(match)]

    assert await keys({"role": "user"}) == ["bo", "cy"]
    assert await keys({"address": {"city": "P"}}) == ["bo"]
    assert await keys({"address": {"zip": 1}}) == ["bo"]
    assert await keys({"tags": ["b"]}) == ["ana", "bo"]
    assert await keys({"tags": ["c", "a"]}) == ["ana"]
    assert await keys({"tags": []}) == ["ana", "bo", "cy"]
    assert await keys({"orders": [{"ok": True}]}) == ["cy"]
    assert await keys({"orders": [{"ok": False}]}) == []
    assert await keys({"missing": None}) == []
    assert await keys({"active": 1}) == []  # true is not 1
    assert await keys({"n": 1.0}) == ["flag"]  # numbers compare by value
    assert await keys({}) == ["ana", "bo", "cy", "flag"]  # every object, not the list
    rows = await users.query({"role": "admin"})
    assert rows == [
        {
            "key": "ana",
            "value": {"role": "admin", "tags": ["a", "b", "c"], "address": {"city": "L"}},
        }
    ]
    with pytest.raises(ValidationError):
        await users.query(["role"])  # type: ignore[arg-type]


async def test_query_order_is_first_set_order(app: App) -> None:
    c = app.storage.ordered
    for key in ["z", "a", "m"]:
        await c.set(key, {"x": 1})
    await c.set("z", {"x": 1, "changed": True})  # keeps its position
    await c.update("a", {"y": 2})
    assert [r["key"] for r in await c.query({"x": 1})] == ["z", "a", "m"]
    await c.delete("z")
    await c.set("z", {"x": 1})  # a new key again: last
    assert [r["key"] for r in await c.query({"x": 1})] == ["a", "m", "z"]


# -- names -------------------------------------------------------------------------------------


async def test_collection_names(app: App) -> None:
    assert app.storage.carts is app.storage["carts"]
    assert app.storage.Carts is app.storage.carts  # case-insensitive, as SQLite's tables
    assert isinstance(app.storage.a_1, Collection)
    assert app.storage.carts.table == "storage_carts"
    for bad in ["", "1abc", "a-b", "a b", "a;DROP", 'a"', "é", "a" * 64, "_x"]:
        with pytest.raises(ValidationError, match="invalid collection name"):
            app.storage[bad]
    with pytest.raises(ValidationError):
        app.storage[5]  # type: ignore[index]
    with pytest.raises(AttributeError):
        app.storage._private  # noqa: B018
    assert len("a" * 63) == 63 and isinstance(app.storage["a" * 63], Collection)


async def test_collection_name_colliding_with_a_declared_table(tmp_path: Path) -> None:
    class Notes(Table, name="storage_notes"):
        id: str = Field(primary_key=True)

    app = App(tables=[Notes], database=db_url(tmp_path))
    await app.startup()
    try:
        with pytest.raises(ValidationError, match="table of the app"):
            app.storage.notes  # noqa: B018
        with pytest.raises(ValidationError, match="table of the app"):
            app.storage["NOTES"]
    finally:
        await app.shutdown()


async def test_existing_table_that_is_not_a_collection(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE storage_foreign (a, b)")
    conn.commit()
    conn.close()
    app = App(tables=[Product], database=db_url(tmp_path))
    await app.startup()
    try:
        with pytest.raises(CharterError, match="not a storage collection"):
            await app.storage.foreign.get("k")
    finally:
        await app.shutdown()


# -- persistence -------------------------------------------------------------------------------


async def test_data_persists_across_restarts(tmp_path: Path) -> None:
    first = App(tables=[Product], database=db_url(tmp_path))
    await first.startup()
    await first.storage.carts.set("c1", {"items": [{"sku": "x"}]})
    await first.storage.queue.push("jobs", "a", "b", "c")
    await first.storage.carts.set("c2", {"n": 2})
    await first.shutdown()

    second = App(tables=[Product], database=db_url(tmp_path))
    await second.startup()
    try:
        assert await second.storage.carts.get("c1") == {"items": [{"sku": "x"}]}
        assert await second.storage.queue.shift("jobs") == "a"
        assert await second.storage.queue.push("jobs", "d") == 3
        assert await second.storage.queue.get("jobs") == ["b", "c", "d"]
        assert [r["key"] for r in await second.storage.carts.query({})] == ["c1", "c2"]
        assert await second.storage.carts.exec("SELECT count(*) FROM {table}") == [(2,)]
    finally:
        await second.shutdown()


async def test_first_use_starts_the_app(tmp_path: Path) -> None:
    app = App(tables=[Product], database=db_url(tmp_path))
    try:
        await app.storage.carts.set("k", 1)
        assert await app.storage.carts.get("k") == 1
    finally:
        await app.shutdown()


# -- exec: allowed -----------------------------------------------------------------------------


async def seed(app: App) -> None:
    carts = app.storage.carts
    await carts.set("a", {"user": "ana", "qty": 2, "items": ["x", "y"]})
    await carts.set("b", {"user": "bo", "qty": 5, "items": ["z"]})
    await carts.set("c", {"user": "cy", "qty": 1, "items": []})


async def test_exec_select_json_extract_and_aggregates(app: App) -> None:
    await seed(app)
    carts = app.storage.carts
    rows = await carts.exec(
        "SELECT key, json_extract(value, '$.user') FROM {table} "
        "WHERE json_extract(value, '$.qty') >= ? ORDER BY seq",
        (2,),
    )
    assert rows == [("a", "ana"), ("b", "bo")]
    assert await carts.exec(
        "SELECT count(*), sum(value ->> '$.qty'), max(value ->> 'qty'), avg(value->>'qty') "
        "FROM {table}"
    ) == [(3, 8, 5, 8 / 3)]
    assert await carts.exec(
        "SELECT json_group_array(key) FROM (SELECT key FROM main.{table} ORDER BY key DESC)"
    ) == [('["c","b","a"]',)]
    assert await carts.exec(
        "SELECT key, row_number() OVER (ORDER BY value ->> 'qty' DESC) FROM {table}"
    ) == [("b", 1), ("a", 2), ("c", 3)]
    assert await carts.exec(
        "SELECT key FROM {table} WHERE value ->> 'user' = :user", {"user": "cy"}
    ) == [("c",)]
    assert await carts.exec("SELECT upper('a'), abs(-2), round(2.5), date('2020-01-02')") == [
        ("A", 2, 3.0, "2020-01-02")
    ]


async def test_exec_json_each_and_json_tree(app: App) -> None:
    await seed(app)
    carts = app.storage.carts
    rows = await carts.exec(
        "SELECT t.key, j.value FROM {table} AS t, json_each(t.value, '$.items') AS j ORDER BY 1, 2"
    )
    assert rows == [("a", "x"), ("a", "y"), ("b", "z")]
    assert await carts.exec(
        "SELECT count(*) FROM {table} AS t, json_tree(t.value) WHERE t.key = ?", ("c",)
    ) == [(4,)]
    # Again, on a connection where they have been used (prepared statement cache).
    assert len(await carts.exec("SELECT * FROM json_each('[1, 2]')")) == 2


async def test_exec_writes_its_own_table(app: App) -> None:
    await seed(app)
    carts = app.storage.carts
    assert (
        await carts.exec(
            "UPDATE {table} SET value = json_set(value, '$.qty', 10) WHERE key = ?", ("a",)
        )
        == []
    )
    assert (await carts.get("a"))["qty"] == 10
    assert await carts.exec(
        "DELETE FROM {table} WHERE json_extract(value, '$.qty') < ? RETURNING key", (2,)
    ) == [("c",)]
    assert await carts.get("c") is None
    assert await carts.exec(
        "INSERT INTO {table} (key, value, seq) VALUES (?, json_object('n', 1), "
        "(SELECT coalesce(max(seq), 0) + 1 FROM {table})) RETURNING key",
        ("d",),
    ) == [("d",)]
    assert await carts.get("d") == {"n": 1}
    await carts.exec(
        "INSERT INTO {table} (key, value, seq) VALUES ('d', '2', 0) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    assert await carts.get("d") == 2
    await carts.exec("REPLACE INTO {table} (key, value, seq) VALUES ('e', '[]', 99)")
    assert await carts.push("e", 1) == 1
    assert [r["key"] for r in await carts.query({})] == ["a", "b"]


async def test_exec_read_only_recursive_cte(app: App) -> None:
    rows = await app.storage.carts.exec(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5) "
        "SELECT sum(x) FROM n"
    )
    assert rows == [(15,)]
    counted = await app.storage.carts.exec(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5) "
        "SELECT count(*) FROM n"
    )
    assert counted == [(5,)]


async def test_exec_trailing_semicolon_and_comments(app: App) -> None:
    carts = app.storage.carts
    await carts.set("k", 1)
    for sql in [
        "SELECT count(*) FROM {table};",
        "SELECT count(*) FROM {table}; -- a comment",
        "SELECT count(*) FROM {table}; /* a comment */ ;;",
        "-- lead\n/* in */ SELECT count(*) /* ; */ FROM {table} -- ; tail",
        "SELECT count(*) FROM {table} WHERE key != ';DROP TABLE Product;'",
    ]:
        assert await carts.exec(sql) == [(1,)], sql


async def test_exec_errors_are_validation_errors(app: App) -> None:
    carts = app.storage.carts
    await carts.set("k", {"a": 1})
    cases: list[tuple[str, Any]] = [
        ("SELECT * FRM {table}", ()),
        ("SELECT * FROM {table} WHERE key = ?", ()),
        ("SELECT * FROM {table} WHERE key = ?", ("a", "b")),
        ("UPDATE {table} SET value = 'not json'", ()),
        ("UPDATE {table} SET key = NULL", ()),
        ("INSERT INTO {table} (key, value) VALUES ('x', '1')", ()),
        ("SELECT no_such_function(1)", ()),
        ("SELECT * FROM no_such_table_here", ()),
        ("", ()),
        ("  -- just a comment\n", ()),
        (";", ()),
    ]
    for sql, params in cases:
        with pytest.raises(ValidationError):
            await carts.exec(sql, params)
    with pytest.raises(ValidationError):
        await carts.exec("SELECT ?", "ab")  # a string is not a list of parameters
    with pytest.raises(ValidationError):
        await carts.exec(b"SELECT 1")  # type: ignore[arg-type]
    assert await carts.get("k") == {"a": 1}


async def test_exec_limits(app: App) -> None:
    carts = app.storage.carts
    await carts.set("k", 1)
    carts.time_limit = 0.2
    forever = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
    )
    with pytest.raises(ValidationError, match="interrupted"):
        await carts.exec(forever)
    carts.row_limit = 3
    with pytest.raises(ValidationError, match="more than 3 rows"):
        await carts.exec("SELECT value FROM json_each('[1,2,3,4]')")
    assert len(await carts.exec("SELECT value FROM json_each('[1,2,3]')")) == 3
    carts.length_limit = 1000
    with pytest.raises(ValidationError, match="too big"):
        await carts.exec("SELECT zeroblob(10000)")
    # The writer is fine, and other collections keep the default limits.
    await carts.set("k", 2)
    assert await carts.get("k") == 2
    assert await app.storage.other.exec("SELECT length(zeroblob(10000))") == [(10000,)]


# -- exec: confinement -------------------------------------------------------------------------

# The exact text of statements Charter itself prepared on the writer connection (cached there):
# running them must go through the authorizer again, not reuse the authorized-less statement.
PRODUCT_PUT = (
    'INSERT INTO "Product" (id, data, version) VALUES (?, ?, ?) '
    "ON CONFLICT (id) DO UPDATE SET data = excluded.data, "
    "version = max(excluded.version, version + 1) RETURNING version"
)
OTHER_SELECT = 'SELECT value FROM "storage_other" WHERE key = ?'

ATTACKS: list[tuple[str, tuple[Any, ...]]] = [
    # plain statements on another table (declared Charter table, another collection, internal)
    ("SELECT * FROM Product", ()),
    ('SELECT * FROM "PRODUCT"', ()),
    ("SELECT * FROM main.Product", ()),
    ("SELECT * FROM storage_other", ()),
    ("SELECT * FROM _charter_tables", ()),
    ("SELECT * FROM _charter_archive", ()),
    ("INSERT INTO Product (id, data, version) VALUES ('evil', '{}', 1)", ()),
    ("REPLACE INTO Product (id, data, version) VALUES ('p1', '{}', 1)", ()),
    ("INSERT INTO storage_other (key, value, seq) VALUES ('evil', '1', 1)", ()),
    ("UPDATE Product SET data = '{}'", ()),
    ("UPDATE storage_other SET value = '0'", ()),
    ("DELETE FROM Product", ()),
    ("DELETE FROM storage_other", ()),
    (PRODUCT_PUT, ("p1", '{"id": "p1", "name": "pwned"}', 1)),
    (OTHER_SELECT, ("secret",)),
    # subqueries, joins, CTEs
    ("SELECT * FROM {table} WHERE key IN (SELECT id FROM Product)", ()),
    ("SELECT (SELECT data FROM Product LIMIT 1)", ()),
    ("SELECT * FROM {table} WHERE EXISTS (SELECT 1 FROM storage_other)", ()),
    ("SELECT * FROM {table} JOIN Product ON Product.id = {table}.key", ()),
    ("SELECT * FROM {table} NATURAL JOIN storage_other", ()),
    ("SELECT * FROM {table}, Product", ()),
    ("SELECT * FROM {table} UNION SELECT id, data, version FROM Product", ()),
    ("WITH p AS (SELECT * FROM Product) SELECT * FROM p", ()),
    ("WITH p AS (SELECT * FROM Product) SELECT count(*) FROM p", ()),
    ("WITH storage_carts AS (SELECT * FROM Product) SELECT count(*) FROM storage_carts", ()),
    ("SELECT count(*) FROM Product", ()),
    ("SELECT count(*) FROM storage_other", ()),
    ("SELECT * FROM {table} JOIN storage_other USING (key)", ()),
    ("SELECT count(*) FROM {table} NATURAL JOIN Product", ()),
    ("WITH x AS (SELECT 1) DELETE FROM Product", ()),
    ("WITH x AS (SELECT id FROM Product) DELETE FROM {table} WHERE key IN x", ()),
    ("UPDATE {table} SET value = (SELECT data FROM Product LIMIT 1)", ()),
    ("INSERT INTO {table} (key, value, seq) SELECT id, data, 1 FROM Product", ()),
    ("DELETE FROM {table} WHERE key IN (SELECT key FROM storage_other)", ()),
    (
        "INSERT INTO {table} (key, value, seq) VALUES ('x', '1', 9) "
        "RETURNING (SELECT count(*) FROM Product)",
        (),
    ),
    (
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 3) "
        "INSERT INTO {table} (key, value, seq) SELECT 'r' || x, x, x FROM r",
        (),
    ),
    # views, triggers, schema changes
    ("CREATE VIEW v AS SELECT * FROM Product", ()),
    ("CREATE TEMP VIEW v AS SELECT * FROM {table}", ()),
    ("CREATE TRIGGER t AFTER INSERT ON {table} BEGIN DELETE FROM Product; END", ()),
    ("CREATE TEMP TRIGGER t AFTER INSERT ON {table} BEGIN DELETE FROM Product; END", ()),
    ("CREATE TABLE evil (x)", ()),
    ("CREATE TEMP TABLE evil (x)", ()),
    ("CREATE TABLE evil AS SELECT * FROM {table}", ()),
    ("CREATE INDEX evil ON {table} (seq)", ()),
    ("CREATE VIRTUAL TABLE temp.evil USING fts5(x)", ()),
    ("DROP TABLE Product", ()),
    ("DROP TABLE {table}", ()),
    ("DROP TABLE IF EXISTS storage_other", ()),
    ('DROP INDEX "Product__name"', ()),
    ("ALTER TABLE Product RENAME TO evil", ()),
    ("ALTER TABLE {table} ADD COLUMN evil TEXT", ()),
    ("ALTER TABLE {table} RENAME TO evil", ()),
    # attach, vacuum, pragmas, the schema table
    ("ATTACH DATABASE '{tmp}/attached.db' AS evil", ()),
    ("DETACH DATABASE main", ()),
    ("VACUUM", ()),
    ("VACUUM INTO '{tmp}/copy.db'", ()),
    ("PRAGMA table_info(Product)", ()),
    ("PRAGMA writable_schema = 1", ()),
    ("PRAGMA query_only = 0", ()),
    ("SELECT * FROM pragma_table_info('Product')", ()),
    ("SELECT name FROM pragma_table_list", ()),
    ("SELECT * FROM {table} WHERE key IN (SELECT name FROM pragma_table_info('Product'))", ()),
    ("SELECT * FROM sqlite_master", ()),
    ("SELECT * FROM sqlite_schema", ()),
    ("SELECT * FROM sqlite_temp_master", ()),
    ("SELECT rowid FROM sqlite_master", ()),
    ("SELECT * FROM json_each((SELECT group_concat(sql) FROM sqlite_schema))", ()),
    ("UPDATE {table} SET value = json_object('n', (SELECT count(*) FROM sqlite_master))", ()),
    ("SELECT * FROM dbstat", ()),
    ("SELECT count(*) FROM dbstat", ()),
    ("SELECT count(*) FROM sqlite_stmt", ()),
    ("SELECT count(*) FROM pragma_table_list", ()),
    ("SELECT * FROM sqlite_stmt", ()),
    ("ANALYZE", ()),
    ("REINDEX", ()),
    ("EXPLAIN SELECT * FROM Product", ()),
    # several statements, hidden behind comments or literals
    ("SELECT 1; DROP TABLE Product", ()),
    ("SELECT 1; -- \nDROP TABLE Product", ()),
    ("SELECT 1; /* */ DROP TABLE Product", ()),
    ("SELECT 1 /* ; */ ; DELETE FROM Product", ()),
    ("SELECT * FROM {table}; DELETE FROM Product; --", ()),
    ("SELECT ';'; DELETE FROM Product", ()),
    ("SELECT 1;\n\nDELETE FROM storage_other", ()),
    ("SELECT $a(') ; DELETE FROM Product; SELECT ')", ()),
    ("SELECT 1\x00; DELETE FROM Product", ()),
    # transaction control: the statement runs inside the writer's batch transaction
    ("BEGIN", ()),
    ("COMMIT", ()),
    ("END", ()),
    ("ROLLBACK", ()),
    ("SAVEPOINT evil", ()),
    ("RELEASE job", ()),
    ("ROLLBACK TO job", ()),
    ("INSERT OR ROLLBACK INTO {table} (key, value, seq) VALUES ('mine', '1', 1)", ()),
    ("UPDATE OR ROLLBACK {table} SET key = 'mine'", ()),
    # functions
    ("SELECT load_extension('{tmp}/evil.so')", ()),
    ("SELECT fts3_tokenizer('simple')", ()),
    ("SELECT last_insert_rowid()", ()),
    ("SELECT total_changes()", ()),
    ("SELECT changes()", ()),
    ("SELECT sqlite_compileoption_get(0)", ()),
    ("SELECT rtreecheck('Product')", ()),
]

# Functions SQLite's library does not have (the CLI's): "no such function" (422), or refused.
ABSENT_FUNCTIONS = ["SELECT readfile('/etc/passwd')", "SELECT writefile('{tmp}/w', 'x')"]


def _files(folder: Path) -> list[str]:
    """The files in ``folder``, but the wake-up sockets' folder of the realtime hub."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith("-charter-wake"))


def snapshot(path: Path) -> dict[str, Any]:
    """Every table's rows and the whole schema, read on a connection of its own."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        data = {
            name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
            for kind, name, _, _ in schema
            if kind == "table"
        }
        return {"schema": sorted(schema, key=repr), "data": data}
    finally:
        conn.close()


@pytest.fixture
async def attacked(app: App, tmp_path: Path) -> App:
    await Product.put({"id": "p1", "name": "Air"})
    await Product.put({"id": "p2", "name": "Max"})
    await app.storage.other.set("secret", {"token": "s3cr3t"})
    await app.storage.other.push("list", 1, 2)  # caches OTHER_SELECT on the writer
    await app.storage.carts.set("mine", {"n": 1})
    await app.storage.carts.set("yours", {"n": 2})
    return app


@pytest.mark.parametrize(("sql", "params"), ATTACKS, ids=[a[0][:60] for a in ATTACKS])
async def test_exec_refuses(attacked: App, tmp_path: Path, sql: str, params: Any) -> None:
    sql = sql.replace("{tmp}", str(tmp_path))
    before = snapshot(tmp_path / "t.db")
    with pytest.raises(Forbidden) as caught:
        await attacked.storage.carts.exec(sql, params)
    assert caught.value.status_code == 403
    assert caught.value.message.startswith("exec() ")
    assert "refused" in caught.value.message
    assert snapshot(tmp_path / "t.db") == before
    assert _files(tmp_path) == ["t.db", "t.db-shm", "t.db-wal"]
    # Everything still works on the shared writer connection.
    await Product.put({"id": "p3", "name": "New"})
    assert (await Product.get("p3")).name == "New"
    assert (await Product.get("p1")).name == "Air"
    await attacked.storage.other.push("list", 3)
    assert await attacked.storage.other.get("list") == [1, 2, 3]
    assert await attacked.storage.carts.exec("SELECT count(*) FROM {table}") == [(2,)]


@pytest.mark.parametrize("sql", ABSENT_FUNCTIONS)
async def test_exec_absent_functions(attacked: App, tmp_path: Path, sql: str) -> None:
    before = snapshot(tmp_path / "t.db")
    with pytest.raises(HttpError) as caught:
        await attacked.storage.carts.exec(sql.replace("{tmp}", str(tmp_path)))
    assert isinstance(caught.value, Forbidden | ValidationError)
    assert "no such function" in caught.value.message or "refused" in caught.value.message
    assert snapshot(tmp_path / "t.db") == before


async def test_exec_refusal_messages(attacked: App) -> None:
    carts = attacked.storage.carts
    expected = {
        "SELECT * FROM Product": "reads table 'Product'",
        "DELETE FROM storage_other": "writes table 'storage_other'",
        "SELECT * FROM sqlite_schema": "reads the schema table 'sqlite_master'",
        "SELECT load_extension('x')": "calls function load_extension()",
        "PRAGMA table_info(Product)": "only SELECT",
        "SELECT * FROM {table} NATURAL JOIN storage_other": "uses table 'storage_other'",
        "SELECT 1; DROP TABLE Product": "exactly one SQL statement",
        "DROP TABLE Product": "only SELECT",
        "INSERT OR ROLLBACK INTO {table} VALUES ('a', '1', 1)": "OR ROLLBACK",
    }
    for sql, message in expected.items():
        with pytest.raises(Forbidden, match=message):
            await carts.exec(sql)


async def test_refused_and_failing_exec_do_not_disturb_concurrent_writes(
    attacked: App, tmp_path: Path
) -> None:
    """Refused statements in the same writer batch as good writes: the good ones commit."""
    carts = attacked.storage.carts
    bad = [sql.replace("{tmp}", str(tmp_path)) for sql, params in ATTACKS if not params]
    bad += ["UPDATE {table} SET value = 'not json'", "SELECT * FRM {table}"]
    good = [Product.put({"id": f"g{i}", "name": f"good {i}"}) for i in range(20)]
    good += [attacked.storage.queue.push("q", i) for i in range(20)]
    results = await asyncio.gather(*(carts.exec(sql) for sql in bad), *good, return_exceptions=True)
    failures = results[: len(bad)]
    assert all(isinstance(f, Forbidden | ValidationError) for f in failures), [
        f for f in failures if not isinstance(f, HttpError)
    ]
    assert not any(isinstance(r, BaseException) for r in results[len(bad) :])
    for i in range(20):
        assert (await Product.get(f"g{i}")).name == f"good {i}"
    assert sorted(await attacked.storage.queue.get("q")) == list(range(20))
    assert await carts.get("mine") == {"n": 1}
    # A conflicting OR ROLLBACK would have rolled back the batch: refused before it runs.
    with pytest.raises(Forbidden):
        await carts.exec("INSERT OR ROLLBACK INTO {table} VALUES ('mine', '1', 1)")
    await carts.set("after", True)
    assert await carts.get("after") is True


async def test_timed_out_read_does_not_disturb_the_writer(attacked: App) -> None:
    carts = attacked.storage.carts
    carts.time_limit = 0.2
    forever = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT max(x) FROM n"
    results = await asyncio.gather(
        Product.put({"id": "t1", "name": "before"}),
        carts.exec(forever),
        Product.put({"id": "t2", "name": "after"}),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValidationError)
    assert (await Product.get("t1")).name == "before"
    assert (await Product.get("t2")).name == "after"


async def test_exec_needs_sqlite(postgres_url: str) -> None:
    app = App(tables=[Product], database=postgres_url)
    try:
        with pytest.raises(HttpError) as caught:
            await app.storage.carts.get("k")
        assert caught.value.status_code == 501
    finally:
        await app.shutdown()


LEXICAL_ONLY = ("OR ROLLBACK",)  # only the text check refuses these (SQLite has no hook)


@pytest.mark.parametrize(
    ("sql", "params"),
    [a for a in ATTACKS if not any(word in a[0] for word in LEXICAL_ONLY)],
    ids=[a[0][:60] for a in ATTACKS if not any(word in a[0] for word in LEXICAL_ONLY)],
)
async def test_exec_authorizer_alone_refuses(
    attacked: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql: str, params: Any
) -> None:
    """Defense in depth: with the text check off, SQLite's authorizer and the program check
    still refuse every attack (several statements are refused by sqlite3 itself)."""
    monkeypatch.setattr(storage_proxy, "confine_text", lambda text: text)
    sql = sql.replace("{tmp}", str(tmp_path))
    before = snapshot(tmp_path / "t.db")
    with pytest.raises(HttpError) as caught:
        await attacked.storage.carts.exec(sql, params)
    # Several statements, and EXPLAIN EXPLAIN, do not even compile.
    several = ";" in sql.rstrip().rstrip(";") or "\x00" in sql or sql.startswith("EXPLAIN")
    if not several:
        assert isinstance(caught.value, Forbidden), caught.value
    assert snapshot(tmp_path / "t.db") == before
    assert _files(tmp_path) == ["t.db", "t.db-shm", "t.db-wal"]
    await Product.put({"id": "p3", "name": "New"})
    assert (await Product.get("p3")).name == "New"
    assert await attacked.storage.other.get("secret") == {"token": "s3cr3t"}


async def test_in_memory_database() -> None:
    app = App(tables=[Product], database="sqlite://:memory:")
    await app.startup()
    try:
        await Product.put({"id": "p1", "name": "Air"})
        carts = app.storage.carts
        await carts.set("a", {"n": 1})
        assert await carts.exec("SELECT count(*), sum(value ->> 'n') FROM {table}") == [(1, 1)]
        assert await carts.exec("DELETE FROM {table} RETURNING key") == [("a",)]
        for attack in ["SELECT * FROM Product", "SELECT * FROM {table} NATURAL JOIN Product"]:
            with pytest.raises(Forbidden):
                await carts.exec(attack)
        assert (await Product.get("p1")).name == "Air"
    finally:
        await app.shutdown()

"""Run one SQL statement of a caller's confined to one table of a SQLite connection.

The storage proxy's ``exec`` (see ``charter.runtime.storage_proxy``) runs SQL it did not write;
this module decides what such a statement may touch and runs it.

``exec`` writes ``{table}`` for the collection's table (the text is replaced everywhere, string
literals included). Columns: ``key TEXT PRIMARY KEY``, ``value TEXT`` (the document as JSON
text; ``CHECK (json_valid(value))``) and ``seq INTEGER NOT NULL`` (an INSERT gives it, e.g.
``(SELECT coalesce(max(seq), 0) + 1 FROM {table})``). The statement runs on the writer
connection inside the writer's batch transaction (under its own savepoint, so a failing one
changes nothing), and is confined in four layers:

1. the text must be exactly one statement (comments and trailing ``;`` aside) that starts with
   SELECT, VALUES, WITH, INSERT, REPLACE, UPDATE or DELETE, and does not use ``OR ROLLBACK``
   (which would roll back the writer's whole batch);
2. SQLite's authorizer allows only: reading, inserting, updating and deleting the collection's
   own table (in ``main``), reading the ``json_each``/``json_tree`` table-valued functions,
   SELECT, recursive CTEs in statements that do not write, and functions of an allowlist
   (the core, date, math, JSON, aggregate and window functions; not ``load_extension``,
   ``fts3_tokenizer``, ``last_insert_rowid``, ``changes``...). Every other action — another
   table, view or collection, ``sqlite_master``/``sqlite_schema``, PRAGMA (statement or
   ``pragma_*`` function), ATTACH/DETACH/VACUUM, CREATE/DROP/ALTER anything, ANALYZE, REINDEX,
   BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE, ``dbstat``/``sqlite_stmt`` — is denied while the
   statement is prepared, so nothing runs;
3. the compiled program (``EXPLAIN``) may open only the b-trees of the collection's table and
   its indexes, and no schema or transaction opcode: SQLite does not authorize the columns a
   ``NATURAL JOIN`` or ``JOIN ... USING`` compares, so the authorizer alone would let
   ``{table} NATURAL JOIN other`` read ``other``;
4. limits: a statement that does not write is interrupted after ``time_limit`` seconds (one
   that writes cannot be: SQLite rolls back the whole transaction when it interrupts a write);
   a result has at most ``row_limit`` rows; strings and blobs at most ``length_limit`` bytes.

Refused statements raise ``Forbidden`` and change nothing; the writer connection, its
transaction and its other jobs carry on. A permitted statement that fails raises
``ValidationError``, unless the database itself failed (locked, full, read-only, an I/O error:
the 503s of ``sqlite_errors``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from typing import Any

from ..errors import Forbidden, ValidationError
from .sqlite_errors import Outcome, outcome, translate

__all__ = ["confine_text", "run_confined"]

# The kinds of statement exec() runs (the first keyword of the statement).
_STATEMENTS = frozenset({"select", "values", "with", "insert", "replace", "update", "delete"})

# What sqlite_errors answers 503 for: the caller's statement is not at fault. (Every other
# failure of a permitted statement, a constraint or a limit included, is the caller's: 422.)
_OUTAGES = frozenset({Outcome.RETRY, Outcome.UNAVAILABLE, Outcome.FULL})

# Table-valued functions a statement may read (eponymous virtual tables of SQLite's core).
_VTABS = frozenset({"json_each", "json_tree"})
# Run before the authorizer is installed: an eponymous virtual table's first use on a
# connection declares it, which the authorizer would see as a write to sqlite_master.
_WARM_VTABS = "SELECT 1 FROM json_each('[]'), json_tree('[]')"

# Functions a statement may call. An allowlist: anything a build adds (fts3_tokenizer,
# load_extension, rtree checks, ...) is refused, as is what reveals the writer connection's
# other work (last_insert_rowid, changes, total_changes).
_FUNCTION_NAMES = """
    abs char coalesce concat concat_ws format glob hex if ifnull iif instr length like
    likelihood likely lower ltrim max min nullif octet_length printf quote random randomblob
    replace round rtrim sign soundex substr substring trim typeof unhex unicode unistr
    unistr_quote unlikely upper zeroblob sqlite_version
    avg count group_concat string_agg sum total median percentile percentile_cont
    percentile_disc
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value
    nth_value
    date time datetime julianday unixepoch strftime timediff current_date current_time
    current_timestamp
    acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log
    log10 log2 mod pi pow power radians sin sinh sqrt tan tanh trunc
    json jsonb json_array jsonb_array json_array_length json_error_position json_extract
    jsonb_extract json_insert jsonb_insert json_object jsonb_object json_patch jsonb_patch
    json_pretty json_remove jsonb_remove json_replace jsonb_replace json_set jsonb_set
    json_type json_valid json_quote json_group_array jsonb_group_array json_group_object
    jsonb_group_object -> ->>
"""
_FUNCTIONS = frozenset(_FUNCTION_NAMES.split())

_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
_SCHEMA = {
    getattr(sqlite3, name)
    for name in dir(sqlite3)
    if name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_")) or name == "SQLITE_ALTER_TABLE"
}
_WHAT = {
    sqlite3.SQLITE_PRAGMA: "runs a pragma",
    sqlite3.SQLITE_ATTACH: "attaches a database (ATTACH or VACUUM)",
    sqlite3.SQLITE_DETACH: "detaches a database",
    sqlite3.SQLITE_TRANSACTION: "controls the transaction",
    sqlite3.SQLITE_SAVEPOINT: "controls the transaction",
    sqlite3.SQLITE_ANALYZE: "runs ANALYZE",
    sqlite3.SQLITE_REINDEX: "runs REINDEX",
}


def run_confined(
    conn: sqlite3.Connection,
    statement: str,
    bound: Any,
    *,
    table: str,
    collection: str,
    vtabs: frozenset[str],
    time_limit: float,
    row_limit: int,
    length_limit: int,
) -> list[tuple[Any, ...]]:
    """Run ``statement`` on ``conn`` allowed to use only ``table``; the rows it returns.

    Raises ``Forbidden`` when it would touch anything else (nothing runs), ``ValidationError``
    when it fails or goes over a limit.
    """
    state = _ExecState()

    def authorize(action: int, arg1: str | None, arg2: str | None, db: Any, _: Any) -> int:
        if state.denied:
            return sqlite3.SQLITE_DENY
        name = (arg1 or "").lower()
        own = name == table and db in ("main", None)
        if action == sqlite3.SQLITE_SELECT:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            if own or (name in vtabs and db in ("main", None)):
                return sqlite3.SQLITE_OK
            # SQLite authorizes a FROM item none of whose columns is used (count(*)) by
            # the name written there with column "": a CTE's name is not a real object.
            if arg2 == "" and db is None and not _is_object(name, state.known):
                return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action in _WRITES and own and not state.recursive:
            state.writes = True
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_RECURSIVE and not state.writes:
            state.recursive = True
            return sqlite3.SQLITE_OK
        state.denied = _describe(action, arg1, arg2, table)
        return sqlite3.SQLITE_DENY

    def progress() -> int:
        if not state.writes and time.monotonic() > state.deadline:
            state.timed_out = True
            return 1
        return 0

    def run(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
        conn.execute(_WARM_VTABS).fetchall()
        state.known, roots, own_roots = _schema(conn, table)
        length = conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, min(length, length_limit))
        cursor: sqlite3.Cursor | None = None
        # Installing an authorizer expires every prepared statement of the connection, so
        # a cached statement of the same text is prepared (and authorized) again.
        conn.set_authorizer(authorize)
        conn.set_progress_handler(progress, 1000)
        state.deadline = time.monotonic() + time_limit
        try:
            # The authorizer does not see every table a statement uses (the columns of a
            # NATURAL JOIN or USING are not authorized): check the compiled program too.
            state.denied = _check_program(conn, statement, bound, roots, own_roots)
            if state.denied:
                raise sqlite3.DatabaseError(state.denied)
            cursor = conn.execute(statement, bound)
            rows = cursor.fetchmany(row_limit + 1)
            if len(rows) > row_limit:
                raise ValidationError(f"exec() returns more than {row_limit} rows")
            return rows
        except (sqlite3.Error, sqlite3.Warning) as exc:
            if state.denied:
                raise Forbidden(
                    f"exec() on collection {collection!r} refused: the statement "
                    f"{state.denied}; it may only use its own table {{table}}"
                ) from None
            if state.timed_out:
                raise ValidationError(
                    f"exec() interrupted: the statement ran over {time_limit} s"
                ) from None
            outage = translate(exc) if outcome(exc) in _OUTAGES else None
            if outage is not None:  # the database failed, not the statement
                raise outage from exc
            raise ValidationError(f"exec() failed: {exc}") from None
        except (OverflowError, TypeError, ValueError) as exc:
            raise ValidationError(f"exec() failed: {exc}") from None
        finally:
            if cursor is not None:
                cursor.close()
            conn.set_progress_handler(None, 0)
            conn.set_authorizer(None)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length)

    return run(conn)


def confine_text(sql: str) -> str:
    """The one statement of ``sql``; Forbidden for anything but one allowed statement."""
    if "\x00" in sql:
        raise Forbidden("exec() refused: the SQL contains a NUL character")
    statements = [s for s in _split(sql) if s.words or s.other]
    if not statements:
        raise ValidationError("exec() takes one SQL statement; the SQL is empty")
    if len(statements) > 1:
        raise Forbidden("exec() refused: it runs exactly one SQL statement, not several")
    found = statements[0]
    first = found.words[0] if found.words and found.first_is_word else None
    if first not in _STATEMENTS:
        raise Forbidden(
            "exec() refused: it runs only SELECT, VALUES, WITH, INSERT, REPLACE, UPDATE "
            "or DELETE statements"
        )
    if "rollback" in found.words:
        raise Forbidden("exec() refused: OR ROLLBACK would roll back more than the statement")
    return sql[found.start : found.end]


class _ExecState:
    __slots__ = ("deadline", "denied", "known", "recursive", "timed_out", "writes")

    def __init__(self) -> None:
        self.known: frozenset[str] = frozenset()
        self.denied: str | None = None
        self.writes = False
        self.recursive = False
        self.timed_out = False
        self.deadline = 0.0


_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_schema"})
# Virtual table modules of common builds, for when PRAGMA module_list is not compiled in.
_MODULES = frozenset(
    {"dbstat", "sqlite_dbpage", "sqlite_stmt", "fts3", "fts4", "fts4aux", "fts3tokenize", "fts5"}
    | {"fts5vocab", "rtree", "rtree_i32", "geopoly", "json_each", "json_tree", "carray"}
    | {"generate_series", "completion", "zipfile", "fsdir", "csv", "series", "swarmvtab"}
)
# Opcodes that change the schema, the transaction or the database file.
_FORBIDDEN_OPS = frozenset(
    {"AutoCommit", "Savepoint", "CreateBtree", "Destroy", "ParseSchema", "DropTable"}
    | {"DropIndex", "DropTrigger", "Vacuum", "IncrVacuum", "SqlExec", "JournalMode"}
    | {"Checkpoint", "SetCookie", "LoadAnalysis", "VCreate", "VDestroy", "VUpdate", "Expire"}
)
_P2ISREG = 0x10  # OPFLAG_P2ISREG: OpenRead/OpenWrite take the root page from a register


def _is_object(name: str, known: frozenset[str]) -> bool:
    """Whether ``name`` is a table, view, index or virtual table module of the connection."""
    return name in known or name.startswith(("sqlite_", "pragma_"))


def _schema(
    conn: sqlite3.Connection, table: str
) -> tuple[frozenset[str], dict[int, str], frozenset[int]]:
    """Known object names, root page -> name, and the root pages of ``table`` and its indexes."""
    rows = conn.execute("SELECT lower(name), lower(tbl_name), rootpage FROM sqlite_master")
    known = set(_MODULES)
    roots: dict[int, str] = {1: "sqlite_master"}
    own: set[int] = set()
    for name, tbl_name, root in rows.fetchall():
        known.add(name)
        if root:
            roots[root] = name
            if tbl_name == table:
                own.add(root)
    known.update(row[0] for row in conn.execute("SELECT lower(name) FROM sqlite_temp_master"))
    with contextlib.suppress(sqlite3.Error):  # builds without the introspection pragmas
        known.update(row[0] for row in conn.execute("SELECT lower(name) FROM pragma_module_list"))
    return frozenset(known), roots, frozenset(own)


def _check_program(
    conn: sqlite3.Connection,
    statement: str,
    bound: Any,
    roots: dict[int, str],
    own_roots: frozenset[int],
) -> str | None:
    """What the compiled statement does beyond its table (None when nothing)."""
    for row in conn.execute("EXPLAIN " + statement, bound).fetchall():
        op, p1, p2, p3, p5 = row[1], row[2], row[3], row[4], row[6]
        if op in ("OpenRead", "OpenWrite", "ReopenIdx"):
            if p5 & _P2ISREG:
                return "opens a table chosen at run time"
            root, db = p2, p3
        elif op == "Clear":
            root, db = p1, p2
        elif op == "TableLock":
            root, db = p2, p1
        elif op == "Transaction":
            if p1 != 0:
                return "uses a database other than main"
            continue
        elif op in _FORBIDDEN_OPS:
            return f"changes the schema or the transaction ({op})"
        else:
            continue
        if db != 0 or root not in own_roots:
            return f"uses table {roots.get(root, f'at page {root}')!r}"
    return None


def _describe(action: int, arg1: str | None, arg2: str | None, table: str) -> str:
    """What a denied authorizer action does, for the error message."""
    if (arg1 or "").lower() in _SCHEMA_TABLES:
        if action == sqlite3.SQLITE_READ:
            return f"reads the schema table {arg1!r}"
        return "changes the schema (or uses a virtual table other than json_each/json_tree)"
    if action == sqlite3.SQLITE_READ:
        return f"reads table {arg1!r}"
    if action in _WRITES:
        if (arg1 or "").lower() == table:
            return "writes its table in a statement with a recursive CTE"
        return f"writes table {arg1!r}"
    if action == sqlite3.SQLITE_RECURSIVE:
        return "uses a recursive CTE in a statement that writes"
    if action == sqlite3.SQLITE_FUNCTION:
        return f"calls function {arg2}()"
    if action in _SCHEMA:
        return "changes the schema"
    return _WHAT.get(action, f"does what it may not (authorizer action {action})")


class _Statement:
    __slots__ = ("end", "first_is_word", "other", "start", "words")

    def __init__(self, start: int) -> None:
        self.start = start
        self.end = start
        self.words: list[str] = []
        self.other = False  # a token that is not a bare word (literal, operator, ...)
        self.first_is_word = False


def _is_id(char: str) -> bool:
    return char.isalnum() or char in "_$" or ord(char) > 127


def _split(sql: str) -> list[_Statement]:
    """The statements of ``sql`` as SQLite's tokenizer separates them (comments skipped)."""
    statements = [_Statement(0)]
    n = len(sql)
    i = 0
    while i < n:
        current = statements[-1]
        c = sql[i]
        start = i
        if c in " \t\n\f\r":
            i += 1
            continue
        if c == ";":
            i += 1
            statements.append(_Statement(i))
            continue
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c in "'\"`":
            i += 1
            while i < n:
                if sql[i] == c:
                    if sql.startswith(c, i + 1):
                        i += 2
                        continue
                    i += 1
                    break
                i += 1
            else:
                i = n
            current.other = True
        elif c == "[":
            j = sql.find("]", i)
            i = n if j < 0 else j + 1
            current.other = True
        elif c in "$@:#":
            # A parameter: $name, :name, @name, with "::" and a trailing "(...)" as SQLite reads.
            i += 1
            length = 0
            while i < n:
                if _is_id(sql[i]):
                    i += 1
                    length += 1
                elif sql[i] == "(" and length:
                    while i < n and sql[i] not in " \t\n\f\r)":
                        i += 1
                    i = min(i + 1, n)
                    break
                elif sql.startswith("::", i):
                    i += 2
                else:
                    break
            current.other = True
        elif c.isalpha() or c == "_" or ord(c) > 127:
            while i < n and _is_id(sql[i]):
                i += 1
            if not current.words and not current.other:
                current.first_is_word = True
            current.words.append(sql[start:i].lower())
        else:
            i += 1
            current.other = True
        current.end = i
    return statements

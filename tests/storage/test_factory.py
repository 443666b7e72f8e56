"""The storage factory: a registry of URL schemes, outside the contract it serves (issue 10)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from charter import App, Field, Table
from charter.storage import Storage, base, open_storage
from charter.storage.factory import BACKENDS
from charter.storage.sqlite import SQLiteStorage


class Item(Table):
    id: str = Field(primary_key=True)


def _imports(module: object) -> set[str]:
    tree = ast.parse(Path(inspect.getfile(module)).read_text())  # type: ignore[arg-type]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_contract_imports_none_of_its_implementations() -> None:
    imported = _imports(base)
    for module, _, _ in BACKENDS.values():
        name = module.rsplit(".", 1)[1]
        assert not any(name in each for each in imported), (name, imported)


def test_every_registered_backend_is_a_storage_with_the_factory_constructor() -> None:
    import importlib

    for scheme, (module, name, _) in BACKENDS.items():
        backend = getattr(importlib.import_module(module), name)
        assert issubclass(backend, Storage), scheme
        parameters = inspect.signature(backend).parameters
        assert {"url", "pool_size", "pool_timeout"} <= set(parameters), scheme


def test_open_storage_picks_sqlite_and_gives_it_the_timeout(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path}/t.db", pool_timeout=2.5)
    assert isinstance(storage, SQLiteStorage) and storage.busy_timeout == 2.5
    assert open_storage("sqlite:///:memory:").busy_timeout == 30.0  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unsupported database URL"):
        open_storage("no-scheme")


def test_the_pool_timeout_setting_reaches_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_POOL_TIMEOUT", "4")
    app = App(tables=[Item], database=f"sqlite:///{tmp_path}/t.db")
    assert isinstance(app.database, SQLiteStorage) and app.database.busy_timeout == 4.0

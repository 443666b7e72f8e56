"""The layers of docs/architecture.md, enforced: every module imports only from its own layer or
the layers below, and no function hides an import of a Charter module to dodge a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "charter"

# Layer of each top-level module or folder of the package, lowest first.
LAYERS: dict[str, int] = {
    "errors": 0,
    "limits": 0,
    "config": 0,
    "redaction": 0,
    "crypto": 0,
    "model": 1,
    "schema": 2,
    "query": 2,
    "clients": 2,
    "storage": 3,
    "http": 3,
    "channel": 3,
    "runtime": 4,
    "sources": 4,
    "auth": 5,
    "realtime": 6,
    "web": 7,
    "app": 8,
    "cli": 8,
    "testing": 8,
    "__init__": 8,
}
# Folders of one layer that must stay independent of each other.
APART = [{"storage", "http"}]
# Function-local imports of Charter modules that are there for a reason other than a cycle.
LOCAL_IMPORTS_ALLOWED = {
    # the uvicorn protocol imports uvicorn; `charter routes` and tests need neither
    ("cli.py", "charter.http.server"),
}


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, path: Path) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        package = _module(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    if node.module is None:  # from . import x: x may be a module
        return [f"{base}.{alias.name}" for alias in node.names]
    return [base]


def _imports(path: Path) -> list[tuple[str, bool, bool]]:
    """(module, under TYPE_CHECKING, inside a function) for every Charter import of a file."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool, bool]] = []

    def visit(node: ast.AST, checking: bool, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for inner in child.body:
                    visit_one(inner, True, local)
                for inner in child.orelse:
                    visit_one(inner, checking, local)
                continue
            visit_one(child, checking, local)

    def visit_one(node: ast.AST, checking: bool, local: bool) -> None:
        if isinstance(node, ast.ImportFrom):
            for name in _absolute(node, path):
                if name.startswith("charter"):
                    found.append((name, checking, local))
        elif isinstance(node, ast.Import):
            found.extend(
                (a.name, checking, local) for a in node.names if a.name.startswith("charter")
            )
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            visit(node, checking, True)
        else:
            visit(node, checking, local)

    visit(tree, False, False)
    return found


def _layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    unit = parts[1] if len(parts) > 1 else "__init__"
    if not (PACKAGE / unit).is_dir() and not (PACKAGE / f"{unit}.py").exists():
        unit = "__init__"  # ``from . import __version__``: a name of the package itself
    if unit not in LAYERS:
        raise AssertionError(f"{module}: its folder is in no layer (add it to LAYERS and docs)")
    return unit, LAYERS[unit]


def test_every_module_imports_only_downward() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        assert unit in LAYERS, f"{path}: not in a layer"
        layer = LAYERS[unit]
        for name, checking, _ in _imports(path):
            if checking or name == "charter":
                continue
            target, target_layer = _layer_of(name)
            if target_layer > layer:
                problems.append(f"{path.relative_to(PACKAGE)} imports {name} (a higher layer)")
            for group in APART:
                if unit in group and target in group and target != unit:
                    problems.append(f"{path.relative_to(PACKAGE)} imports {name} (keep apart)")
    assert problems == []


def test_no_function_hides_an_import_to_dodge_a_cycle() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        for name, checking, local in _imports(path):
            if local and not checking and (rel, name) not in LOCAL_IMPORTS_ALLOWED:
                problems.append(f"{rel} imports {name} inside a function")
    assert problems == []


def test_the_architecture_page_names_every_layer() -> None:
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for unit in LAYERS:
        if unit != "__init__":
            assert f"`{unit}" in text, unit

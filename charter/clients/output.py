"""Writing a generated client to a folder, and the drift check (``charter gen client --check``):
whether a folder still holds what the app would generate now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CharterError
from .describe import describe_app
from .python import generate as generate_python
from .typescript import generate as generate_typescript

__all__ = ["LANGUAGES", "client_drift", "generate_client", "write_client"]

LANGUAGES = ("python", "ts")


def generate_client(app: Any, lang: str) -> dict[str, str]:
    """The files of ``app``'s client in ``lang`` (``python`` or ``ts``): name -> text."""
    if lang == "python":
        return generate_python(describe_app(app))
    if lang == "ts":
        return generate_typescript(describe_app(app))
    raise CharterError(f"no client language {lang!r}; choose one of {', '.join(LANGUAGES)}")


def write_client(files: dict[str, str], folder: Path) -> list[Path]:
    """Write ``files`` into ``folder`` (made when missing); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(files.items()):
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def client_drift(files: dict[str, str], folder: Path) -> list[str]:
    """What differs between ``files`` and ``folder``: one line per file missing or changed
    (none: the folder is up to date). Files the generator does not write are left alone."""
    problems = []
    for name, text in sorted(files.items()):
        path = folder / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what the app generates now")
    return problems

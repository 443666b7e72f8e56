"""docs/permissions.md: its Python blocks form one program that checks what the page says."""

from __future__ import annotations

from pathlib import Path

from tests.docs_program import run_page

DOC = Path(__file__).resolve().parent.parent / "docs" / "permissions.md"


def test_the_examples_run(tmp_path: Path) -> None:
    run_page("permissions.md", tmp_path, min_blocks=6, timeout=300)


def test_the_page_names_what_it_documents() -> None:
    text = DOC.read_text()
    for word in [
        "read_filter",
        "write_filter",
        "attributes=",
        "egroup",
        "unauthenticated-only",
        "WWW-Authenticate",
        "explain(true)",
        "Content-Range",
        "allow_read",
        "app.storage",
    ]:
        assert word in text, word

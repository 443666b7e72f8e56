"""docs/caching.md: its Python blocks form one program that checks what the page says."""

from __future__ import annotations

from pathlib import Path

from tests.docs_program import run_page


def test_the_examples_run(tmp_path: Path) -> None:
    run_page("caching.md", tmp_path, min_blocks=6, timeout=120)

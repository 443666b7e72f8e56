"""docs/transactions.md: its Python blocks form one program that checks what the page says."""

from __future__ import annotations

from pathlib import Path

from tests.docs_program import run_page


def test_the_examples_run(tmp_path: Path) -> None:
    run_page("transactions.md", tmp_path, min_blocks=5, timeout=120)

"""docs/middleware.md: its Python blocks form one program that checks what the page says."""

from __future__ import annotations

from pathlib import Path

from tests.docs_program import run_page

DOC = Path(__file__).resolve().parent.parent / "docs" / "middleware.md"


def test_the_examples_run(tmp_path: Path) -> None:
    run_page("middleware.md", tmp_path, min_blocks=4, timeout=120)


def test_the_page_names_every_setting_and_name_it_documents() -> None:
    text = DOC.read_text()
    for word in [
        "prefixurl",
        "egroup",
        "endpoints",
        "call_next",
        "CHARTER_SHARED",
        "Retry-After",
        "RateLimit-Policy",
        "FORWARDED_ALLOW_IPS",
        "incr_window",
        "UNAVAILABLE",
    ]:
        assert word in text, word

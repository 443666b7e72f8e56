"""docs/clients.md: its Python blocks form one program that generates a client and drives the
app with it, checking what the page says."""

from __future__ import annotations

from pathlib import Path

from tests.docs_program import run_page

DOC = Path(__file__).resolve().parent.parent / "docs" / "clients.md"


def test_the_examples_run(tmp_path: Path) -> None:
    run_page("clients.md", tmp_path, min_blocks=9, timeout=120)


def test_the_page_says_what_is_not_built() -> None:
    """Subscriptions are built, in both clients (tests/test_client_subscribe.py), and the page
    says what their resume cannot do. The TypeScript client is built (its example is
    type-checked by tests/test_client_typescript.py). Both speak the encrypted channel, the
    TypeScript one on Node only: the page says browsers are not built (change this test when
    they are)."""
    text = DOC.read_text()
    assert "**TypeScript** (`--lang ts`): built." in text and "not built yet.**" not in text
    assert "the client has no `subscribe` yet" not in text
    assert "## Subscriptions" in text and "each arrives once, in order" in text
    assert "has no position, so a connection dropped then" in text
    assert "- **The encrypted RPC channel in browsers**" in text.split("## Not built yet")[1]
    assert "`Client(..., encrypted=True)`" in text and "{ encrypted: true }" in text

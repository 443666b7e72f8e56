"""docs/permissions.md: its Python blocks form one program that checks what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "permissions.md"


def test_the_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 6
    script = tmp_path / "permissions_example.py"
    script.write_text("\n".join(blocks))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr


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

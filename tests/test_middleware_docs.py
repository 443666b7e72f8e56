"""docs/middleware.md: its Python blocks form one program that checks what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "middleware.md"


def test_the_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 4
    script = tmp_path / "middleware_example.py"
    script.write_text("\n".join(blocks))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr


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

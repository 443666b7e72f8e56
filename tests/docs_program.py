"""Run a docs page's Python blocks as one program, in a process of its own (a page that ends by
checking what it says fails its test when the page is wrong)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def run_page(page: str, workdir: Path, *, min_blocks: int, timeout: float) -> None:
    """Run the Python blocks of ``docs/<page>`` in order in ``workdir``; fail with its stderr."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.DOTALL)
    assert len(blocks) >= min_blocks
    script = workdir / f"{Path(page).stem}_example.py"
    script.write_text("\n".join(blocks))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, cwd=workdir
    )
    assert done.returncode == 0, done.stderr

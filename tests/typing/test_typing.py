"""The typed public API: mypy's view of tables (``check_table.py``, the shop example), and the
``resource`` decorators that keep it leaving behaviour alone."""

import subprocess
import sys
from pathlib import Path
from typing import Any

from charter import App, Field, Table, resource
from charter.testing import TestClient

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_sees_tables_as_declared() -> None:
    """``assert_type`` and expected-error ignores in check_table.py hold; the shop example
    passes mypy --strict as a user's code."""
    files = [ROOT / "tests" / "typing" / "check_table.py", ROOT / "examples" / "shop" / "app.py"]
    # In a process of its own: mypy tunes the garbage collector of the process it runs in.
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    done = subprocess.run(
        [*command, "--strict", *map(str, files)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


class Loud(Table):
    id: str = Field(primary_key=True)
    name: str = ""

    @resource.post
    async def post(self, data: dict[str, Any]) -> "Loud":
        return await super().post({**data, "name": data.get("name", "").upper()})

    @resource.get
    async def get(self, query: Any = None) -> "Loud | None":
        record = await super().get(query)
        return None if record is None or record.name == "HIDDEN" else record


def test_a_decorated_override_changes_the_endpoint_and_the_static_helper(database: str) -> None:
    app = App(tables=[Loud], database=database)
    with TestClient(app) as client:
        assert client.post("/Loud/", json={"id": "a", "name": "hi"}).json()["name"] == "HI"
        client.post("/Loud/", json={"id": "h", "name": "hidden"})
        assert client.get("/Loud/h").status_code == 404
        assert sorted(Loud.__charter_overrides__) == ["get", "post"]


async def test_a_decorated_override_serves_the_static_helper(database: str) -> None:
    app = App(tables=[Loud], database=database)
    async with TestClient(app):
        created = await Loud.post({"id": "b", "name": "yo"})
        assert isinstance(created, Loud)
        assert created.name == "YO"
        assert await Loud.get("b") == created
        await Loud.post({"id": "h", "name": "hidden"})
        assert await Loud.get("h") is None

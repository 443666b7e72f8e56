"""``app.transaction()`` nested is a savepoint; ``app.transaction(fn, retries=N)`` re-runs
``fn`` on a conflict; what a type checker sees of both forms."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from charter import App, CharterError, Conflict, Field, HttpError, Table
from charter.testing import TestClient

ROOT = Path(__file__).resolve().parent.parent


class Account(Table):
    id: str = Field(primary_key=True)
    balance: int = 0


class Counter(Table):
    id: str = Field(primary_key=True)
    n: int = 0


async def test_a_nested_block_that_raises_undoes_only_its_writes(database: str) -> None:
    app = App(tables=[Account], database=database)
    async with TestClient(app) as client:
        async with app.transaction():
            await Account.put({"id": "outer", "balance": 1})
            with pytest.raises(RuntimeError, match="inner failed"):
                async with app.transaction():
                    await Account.put({"id": "inner", "balance": 2})
                    await Account.patch("outer", {"balance": 99})
                    raise RuntimeError("inner failed")
            assert (await Account.get("outer")).balance == 1
            assert await Account.get("inner") is None
            async with app.transaction():  # a nested block that ends well stays
                await Account.put({"id": "kept", "balance": 3})
        assert (await client.get("/Account/outer")).json()["balance"] == 1
        assert (await client.get("/Account/inner")).status_code == 404
        assert (await client.get("/Account/kept")).json()["balance"] == 3


async def test_a_nested_block_in_a_request_is_a_savepoint(database: str) -> None:
    class Step(Table):
        id: str = Field(primary_key=True)

        async def post(self, data):  # type: ignore[no-untyped-def]
            await Account.put({"id": "before", "balance": 1})
            try:
                async with app.transaction():
                    await Account.put({"id": "failed-step", "balance": 2})
                    raise HttpError(400, "this step fails")
            except HttpError:
                pass
            return await super().post(data)

    app = App(tables=[Account, Step], database=database)
    async with TestClient(app) as client:
        assert (await client.post("/Step/", json={"id": "s"})).status_code == 201
        assert (await client.get("/Account/before")).status_code == 200
        assert (await client.get("/Account/failed-step")).status_code == 404
        assert (await client.get("/Step/s")).status_code == 200


async def test_the_function_form_returns_its_result_and_commits(database: str) -> None:
    app = App(tables=[Account], database=database)
    async with TestClient(app) as client:

        async def open_account() -> str:
            await Account.put({"id": "f", "balance": 7})
            return "opened"

        assert await app.transaction(open_account) == "opened"
        assert (await client.get("/Account/f")).json()["balance"] == 7

        async def fail() -> None:
            await Account.put({"id": "g", "balance": 7})
            raise RuntimeError("no")

        with pytest.raises(RuntimeError):
            await app.transaction(fail, retries=2)
        assert (await client.get("/Account/g")).status_code == 404


async def test_retries_rerun_the_function_until_it_commits(database: str) -> None:
    """Concurrent read-modify-write functions: with retries every one commits and no
    increment is lost; a retried function starts from the start in a fresh transaction."""
    app = App(tables=[Counter], database=database)
    async with TestClient(app) as client:
        await Counter.put({"id": "c", "n": 0})
        runs = 0

        async def bump() -> int:
            nonlocal runs
            runs += 1
            current = await Counter.get("c")
            assert current is not None
            await asyncio.sleep(0)
            await Counter.patch("c", {"n": current.n + 1})
            return current.n + 1

        gate = asyncio.Semaphore(5)

        async def limited() -> int:
            async with gate:
                return await app.transaction(bump, retries=10)

        results = await asyncio.gather(*(limited() for _ in range(20)))
        assert sorted(results) == list(range(1, 21))
        assert runs > 20  # some ran again
        assert (await client.get("/Counter/c")).json()["n"] == 20


async def test_without_retries_a_conflict_is_409(database: str) -> None:
    app = App(tables=[Counter], database=database)
    async with TestClient(app):
        await Counter.put({"id": "c", "n": 0})
        started = asyncio.Event()
        go = asyncio.Event()

        async def slow() -> None:
            current = await Counter.get("c")
            assert current is not None
            started.set()
            await go.wait()
            await Counter.patch("c", {"n": current.n + 1})

        task = asyncio.ensure_future(app.transaction(slow))
        await started.wait()
        await Counter.patch("c", {"n": 10})  # commits in between
        go.set()
        with pytest.raises(Conflict) as caught:
            await task
        assert caught.value.status_code == 409
        assert (await Counter.get("c")).n == 10


async def test_retries_cannot_apply_to_a_nested_transaction(database: str) -> None:
    app = App(tables=[Account], database=database)
    async with TestClient(app):

        async def step() -> None:
            await Account.put({"id": "x", "balance": 1})

        async with app.transaction():
            with pytest.raises(CharterError, match="cannot retry here"):
                await app.transaction(step, retries=3)
            assert await Account.get("x") is None  # nothing ran
            await app.transaction(step)  # retries=0 nested: a savepoint, run once
            assert (await Account.get("x")).balance == 1
        assert (await Account.get("x")).balance == 1


async def test_a_nested_function_that_raises_is_undone(database: str) -> None:
    app = App(tables=[Account], database=database)
    async with TestClient(app) as client:

        async def step() -> None:
            await Account.put({"id": "undone", "balance": 1})
            raise ValueError("step")

        async with app.transaction():
            await Account.put({"id": "kept", "balance": 1})
            with pytest.raises(ValueError):
                await app.transaction(step)
        assert (await client.get("/Account/kept")).status_code == 200
        assert (await client.get("/Account/undone")).status_code == 404


async def test_bad_options_are_refused(database: str) -> None:
    app = App(tables=[Account], database=database)
    async with TestClient(app):
        with pytest.raises(TypeError, match="retries= needs a function"):
            app.transaction(retries=3)  # type: ignore[call-overload]

        async def nothing() -> None:
            return None

        with pytest.raises(ValueError, match="retries"):
            app.transaction(nothing, retries=-1)  # refused at the call, nothing to await
        with pytest.raises(TypeError, match="takes a function"):
            app.transaction(42)  # type: ignore[call-overload]


TYPED = """
from typing import assert_type
from charter import App, Transaction

app = App()


async def total() -> int:
    return 3


async def main() -> None:
    async with app.transaction() as tx:
        assert_type(tx, Transaction)
        with tx.savepoint() as same:
            assert_type(same, Transaction)
    assert_type(await app.transaction(total), int)
    assert_type(await app.transaction(total, retries=3), int)
    app.transaction(retries=3)  # type: ignore[call-overload]
"""


def test_a_type_checker_sees_both_forms(tmp_path: Path) -> None:
    path = tmp_path / "typed_transaction.py"
    path.write_text(TYPED)
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    done = subprocess.run(
        [*command, "--strict", "--warn-unused-ignores", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr

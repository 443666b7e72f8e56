"""Every request runs in one transaction; ``app.transaction()`` is the explicit form."""

import asyncio

import pytest

from charter import App, Conflict, Field, HttpError, Table
from charter.runtime.transaction import run_in_transaction
from charter.testing import TestClient


class Account(Table):
    id: str = Field(primary_key=True)
    balance: int = 0


class Log(Table):
    id: str = Field(primary_key=True)
    text: str = ""


class Transfer(Table):
    """POST /Transfer/ moves money between two accounts and writes a log entry."""

    id: str = Field(primary_key=True)
    source: str
    target: str
    amount: int

    async def post(self, data):
        source = await Account.get(data["source"])
        target = await Account.get(data["target"])
        await Account.patch(source.get_id(), {"balance": source.balance - data["amount"]})
        await Account.patch(target.get_id(), {"balance": target.balance + data["amount"]})
        await Log.put({"id": f"log-{data['id']}", "text": "transfer"})
        if (await Account.get(data["source"])).balance < 0:
            raise HttpError(409, "insufficient funds", code="INSUFFICIENT_FUNDS")
        if data["amount"] == 13:
            raise RuntimeError("unlucky")
        return await super().post(data)


@pytest.fixture
def client(serve):
    client = serve(Account, Log, Transfer)
    client.put("/Account/a", json={"balance": 100})
    client.put("/Account/b", json={"balance": 0})
    return client


def balances(client):
    return {a["id"]: a["balance"] for a in client.get("/Account/").json()}


def test_a_request_commits_every_write_together(client):
    response = client.post(
        "/Transfer/", json={"id": "t1", "source": "a", "target": "b", "amount": 30}
    )
    assert response.status_code == 201
    assert balances(client) == {"a": 70, "b": 30}
    assert client.get("/Log/log-t1").status_code == 200
    assert client.get("/Transfer/t1").json()["amount"] == 30


def test_an_http_error_after_writes_leaves_no_trace(client):
    response = client.post(
        "/Transfer/", json={"id": "t2", "source": "a", "target": "b", "amount": 500}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    assert balances(client) == {"a": 100, "b": 0}
    assert client.get("/Log/").json() == []
    assert client.get("/Transfer/").json() == []


def test_an_unexpected_error_after_writes_leaves_no_trace(client):
    response = client.post(
        "/Transfer/", json={"id": "t3", "source": "a", "target": "b", "amount": 13}
    )
    assert response.status_code == 500
    assert balances(client) == {"a": 100, "b": 0}
    assert client.get("/Log/").json() == []


def test_a_failing_insert_at_commit_rolls_back_the_other_writes(client):
    client.post("/Transfer/", json={"id": "t4", "source": "a", "target": "b", "amount": 1})
    again = client.post("/Transfer/", json={"id": "t4", "source": "a", "target": "b", "amount": 5})
    assert again.status_code == 409
    assert balances(client) == {"a": 99, "b": 1}


def test_two_writes_then_raise_leave_neither(serve):
    class Pair(Table):
        id: str = Field(primary_key=True)

        async def post(self, data):
            await Log.put({"id": "first", "text": "1"})
            await Log.put({"id": "second", "text": "2"})
            raise ValueError("after two writes")

    client = serve(Log, Pair)
    assert client.post("/Pair/", json={"id": "x"}).status_code == 500
    assert client.get("/Log/first").status_code == 404
    assert client.get("/Log/second").status_code == 404


def test_a_handler_reads_its_own_writes(serve):
    class Echo(Table):
        id: str = Field(primary_key=True)

        async def post(self, data):
            await Log.put({"id": "seen", "text": "mine"})
            await Log.patch("seen", {"text": "mine, patched"})
            log = await Log.get("seen")
            assert log is not None
            await Log.delete("seen")
            assert await Log.get("seen") is None
            await Log.put({"id": "kept", "text": log.text})
            return await super().post(data)

    client = serve(Log, Echo)
    assert client.post("/Echo/", json={"id": "e"}).status_code == 201
    assert client.get("/Log/").json() == [{"id": "kept", "text": "mine, patched"}]


async def test_explicit_transaction_commits_at_the_end(database):
    app = App(tables=[Account], database=database)
    async with TestClient(app) as client:
        async with app.transaction():
            await Account.put({"id": "x", "balance": 1})
            await Account.put({"id": "y", "balance": 2})
            assert (await client.get("/Account/x")).status_code == 404  # not yet committed
            assert (await Account.get("x")).balance == 1  # but visible inside
        assert (await client.get("/Account/x")).json()["balance"] == 1
        assert (await client.get("/Account/y")).json()["balance"] == 2


async def test_explicit_transaction_rolls_back_on_error(database):
    app = App(tables=[Account], database=database)
    async with TestClient(app) as client:
        with pytest.raises(RuntimeError):
            async with app.transaction():
                await Account.put({"id": "x", "balance": 1})
                raise RuntimeError("abort")
        assert (await client.get("/Account/x")).status_code == 404
        assert await Account.get("x") is None


async def test_a_savepoint_undoes_only_its_own_writes(database):
    app = App(tables=[Account, Log], database=database)
    async with TestClient(app) as client:
        async with app.transaction() as tx:
            await Account.put({"id": "kept", "balance": 1})
            await Log.put({"id": "l", "text": "before"})
            with pytest.raises(RuntimeError), tx.savepoint():
                await Account.put({"id": "undone", "balance": 2})
                await Account.patch("kept", {"balance": 99})
                await Log.put({"id": "l", "text": "inside"})
                raise RuntimeError("step failed")
            assert (await Account.get("kept")).balance == 1
            assert await Account.get("undone") is None
            with tx.savepoint():
                await Account.patch("kept", {"balance": 3})
        assert (await client.get("/Account/kept")).json()["balance"] == 3
        assert (await client.get("/Account/undone")).status_code == 404
        assert (await client.get("/Log/l")).json()["text"] == "before"


async def test_explicit_transaction_nests_into_the_request(database):
    class Nested(Table):
        id: str = Field(primary_key=True)

        async def post(self, data):
            async with app.transaction():
                await Account.put({"id": "inner", "balance": 5})
            raise HttpError(400, "abort the request")

    app = App(tables=[Account, Nested], database=database)
    async with TestClient(app) as client:
        assert (await client.post("/Nested/", json={"id": "n"})).status_code == 400
        assert (await client.get("/Account/inner")).status_code == 404


async def test_concurrent_read_modify_write_requests_lose_no_update(database):
    class Deposit(Table):
        id: str = Field(primary_key=True)

        async def post(self, data):
            account = await Account.get("a")
            await asyncio.sleep(0)
            await Account.patch("a", {"balance": account.balance + 1})
            return {"id": data["id"]}

    app = App(tables=[Account, Deposit], database=database)
    async with TestClient(app) as client:
        await Account.put({"id": "a", "balance": 0})
        responses = await asyncio.gather(
            *(client.post("/Deposit/", json={"id": f"d{i}"}) for i in range(20))
        )
        assert [r.status_code for r in responses] == [201] * 20
        assert (await Account.get("a")).balance == 20


async def test_add_to_inside_a_transaction_commits_with_it(database):
    app = App(tables=[Account], database=database)
    async with TestClient(app):
        await Account.put({"id": "a", "balance": 0})
        with pytest.raises(RuntimeError):
            async with app.transaction():
                await Account.add_to("a", "balance", 10)
                raise RuntimeError("abort")
        assert (await Account.get("a")).balance == 0
        async with app.transaction():
            await Account.add_to("a", "balance", 10)
            await Account.add_to("a", "balance", 5)
        assert (await Account.get("a")).balance == 15


class Counter(Table):
    id: str = Field(primary_key=True)
    n: int = 0


async def test_explicit_transactions_commit_or_raise_and_lose_nothing(database: str) -> None:
    """Explicit ``app.transaction()`` blocks are not re-run: each one commits or raises
    ``Conflict``, and the counter equals the number that committed (no increment is lost)."""
    app = App(tables=[Counter], database=database)
    async with TestClient(app) as client:
        await client.put("/Counter/c", json={"n": 0})

        async def bump() -> None:
            async with app.transaction():
                current = await Counter.get("c")
                assert current is not None
                await asyncio.sleep(0)
                await Counter.patch("c", {"n": current.n + 1})

        results = await asyncio.gather(*(bump() for _ in range(20)), return_exceptions=True)
        done = sum(1 for r in results if r is None)
        assert done >= 1
        assert all(r is None or isinstance(r, Conflict) for r in results)
        assert (await client.get("/Counter/c")).json()["n"] == done


async def test_read_modify_write_is_retried_until_it_commits(database: str) -> None:
    """Transactions run by ``run_in_transaction`` (as every request is) are re-run on conflict:
    all of them commit, and every increment is there."""
    app = App(tables=[Counter], database=database)
    async with TestClient(app) as client:
        await client.put("/Counter/c", json={"n": 0})

        async def step(txn: object) -> None:
            current = await Counter.get("c")
            assert current is not None
            await asyncio.sleep(0)
            await Counter.patch("c", {"n": current.n + 1})

        gate = asyncio.Semaphore(4)

        async def bump() -> None:
            async with gate:
                await run_in_transaction(app.database, step)

        await asyncio.gather(*(bump() for _ in range(40)))
        assert (await client.get("/Counter/c")).json()["n"] == 40

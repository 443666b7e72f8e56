"""The app of the encrypted channel's tests (tests/test_channel.py), in-process and served."""

from __future__ import annotations

from typing import Any

from charter import App, Field, Grant, HttpResp, HttpResult, Role, Service, Table, perms, rpc


class Tally(Table):
    id: str = Field(primary_key=True)
    count: int = 0


class Ledger(Service):
    @rpc(egroup="ledger", perm=perms.RWX)
    async def bump(self, by: int = 1) -> int:
        """Adds to the tally: a call that ran shows in it."""
        await Tally.add_to("t", "count", by)
        return by

    @rpc(egroup="ledger", perm=perms.R__)
    async def echo(self, value: Any) -> Any:
        return value

    @rpc
    async def nothing(self) -> HttpResult[None]:
        return HttpResp.no_content()

    @rpc
    async def made(self, name: str) -> HttpResult[dict[str, str]]:
        return HttpResp.created({"name": name}, location=f"/things/{name}")


ROLES = [
    Role("reader", tables={"Tally": Grant(read=True)}, egroups={"ledger": perms.R__}),
    Role("writer", tables={"Tally": Grant(read=True)}, egroups={"ledger": perms.RWX}),
]


def build(database: str | None = None, **options: Any) -> App:
    return App(tables=[Tally], services=[Ledger], database=database, **options)

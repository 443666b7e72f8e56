"""The per-record lock between workers on PostgreSQL (``charter.sources.lease``): a lock the
server grants to a waiter that was cancelled meanwhile is given back, not held for good."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from charter import App
from charter.sources.lease import leases_for
from charter.testing import TestClient


def test_a_lock_granted_to_a_cancelled_waiter_is_given_back(postgres_url: str) -> None:
    app = App(database=postgres_url)
    with TestClient(app) as client:
        waiter, other_worker = leases_for(app.database), leases_for(app.database)

        async def scenario() -> tuple[bool, bool]:
            real = waiter._call  # type: ignore[attr-defined]

            async def late(sql: str, number: int) -> Any:  # granted, but the answer is late
                result = await real(sql, number)
                await asyncio.sleep(0.3)
                return result

            waiter._call = late  # type: ignore[attr-defined]
            task = asyncio.create_task(waiter.try_take("Weather", "paris"))
            await asyncio.sleep(0.1)  # the server has granted it; the answer is on its way
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            waiter._call = real  # type: ignore[attr-defined]
            held_meanwhile = not await other_worker.try_take("Weather", "paris")
            await asyncio.sleep(0.6)  # the late answer arrives and the lock is given back
            taken = await other_worker.try_take("Weather", "paris")
            await other_worker.give_back("Weather", "paris")
            await waiter.close()
            await other_worker.close()
            return held_meanwhile, taken

        held_meanwhile, taken = client.run(scenario())
        assert held_meanwhile  # (the scenario did make the server grant it to the waiter)
        assert taken

"""The Python client generated from tests/client_app.py with ``encrypted=True``, against a
live server: RPC calls go sealed (the plaintext never on the wire), answer as plain calls do
(errors included), a replayed call is refused, an expired session is opened again. Type-checked
with ``mypy --strict`` and run by tests/test_client_channel.py.

    python channel_sample.py URL ADMIN_PASSWORD
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
from gadgets import AsyncClient, CharterClientError, Client, GadgetCreate

SEALED = "application/charter-sealed"


def sync_part(url: str, password: str) -> None:
    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]})
    with Client(url, http=http, encrypted=True) as client:
        client.sign_in("admin", password)
        client.Gadget.put("vault", GadgetCreate(name="Vault", price=20.0))
        priced = client.rpc.quote("vault", qty=12)
        assert (priced.total, priced.note) == (240.0, "bulk"), priced
        assert client.rpc.tags(["ab", "c"]) == {"ab": 2, "c": 1}
        try:
            client.rpc.quote("no-such-gadget")  # the call's own error, sealed and opened
        except CharterClientError as error:
            assert (error.status, error.code) == (404, "NOT_FOUND"), error
        else:
            raise AssertionError("no 404")
        paths = [r.url.path for r in sent]
        assert paths.count("/rpc/_handshake") == 1, paths  # one session for every call
        calls = [r for r in sent if r.url.path == "/rpc/quote"]
        assert calls and all(r.headers["content-type"] == SEALED for r in calls)
        assert all(b"vault" not in r.content for r in calls)  # never in the clear
        plain = next(r for r in sent if r.url.path == "/Gadget/vault")
        assert plain.headers["content-type"] == "application/json"  # only RPC calls are sealed

        # a call replayed as it was sent: refused, nothing run
        replayed = http.post(url + "/rpc/quote", content=calls[0].content,
                             headers=dict(calls[0].headers))  # fmt: skip
        assert replayed.status_code == 400 and b"CHANNEL_REPLAY" in replayed.content, replayed

        # a session the server does not know (expired): a new handshake, the call once more
        channel = client._channel
        assert channel is not None
        channel.session = os.urandom(16)
        assert client.rpc.tags(["x"]) == {"x": 1}
        assert [r.url.path for r in sent].count("/rpc/_handshake") == 2
    http.close()


async def async_part(url: str, password: str) -> None:
    async with AsyncClient(url, encrypted=True) as client:
        await client.sign_in("admin", password)
        calls = [client.rpc.tags([str(n)]) for n in range(5)]  # queued on one channel
        assert await asyncio.gather(*calls) == [{str(n): 1} for n in range(5)]
        assert (await client.rpc.quote("vault")).total == 20.0


if __name__ == "__main__":
    url, password = sys.argv[1:3]
    sync_part(url, password)
    asyncio.run(async_part(url, password))
    print("ok")

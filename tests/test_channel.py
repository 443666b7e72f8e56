"""The encrypted RPC channel (issue 14 point 5, docs/crypto.md): handshake, sealed calls through
the plain call's path, and every message that must be refused refused, changing nothing.

``Peer`` speaks the protocol from docs/crypto.md with ``cryptography`` and ``hashlib`` alone
(none of charter.channel), so the wire format the page documents is what the server speaks;
``SyncChannel``/``Channel`` are the client apps use.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import charter.auth
from charter import HttpError
from charter.channel import Channel, SyncChannel
from charter.testing import TestClient
from tests.auth_rules_shop import cheap_passwords
from tests.channel_app import ROLES, build
from tests.servers import Server

ROOT = Path(__file__).resolve().parent.parent
SEALED = "application/charter-sealed"
LABEL = b"charter-channel-v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Peer:
    """A client session made by hand, as docs/crypto.md describes the protocol."""

    def __init__(self, reply: dict[str, Any], c2s: bytes, s2c: bytes) -> None:
        self.session = _unb64(reply["session"])
        self.reply = reply
        self.c2s, self.s2c = c2s, s2c

    @classmethod
    def handshake(cls, client: httpx.Client) -> Peer:
        private = X25519PrivateKey.generate()
        public = private.public_key().public_bytes_raw()
        nonce = os.urandom(32)
        answer = client.post(
            "/rpc/_handshake",
            json={"version": 1, "public_key": _b64(public), "nonce": _b64(nonce)},
        )
        assert answer.status_code == 200, answer.text
        reply = answer.json()
        assert reply["version"] == 1 and set(reply) == {
            "version", "session", "public_key", "nonce", "expires_in",
        }  # fmt: skip
        server_key, server_nonce = _unb64(reply["public_key"]), _unb64(reply["nonce"])
        session = _unb64(reply["session"])
        assert (len(server_key), len(server_nonce), len(session)) == (32, 32, 16)
        transcript = hashlib.sha256(
            LABEL + b"\x01" + public + nonce + server_key + server_nonce + session
        ).digest()
        secret = private.exchange(X25519PublicKey.from_public_bytes(server_key))

        def key(direction: bytes) -> bytes:
            info = LABEL + b" " + direction + b" " + transcript
            return HKDF(hashes.SHA256(), 32, salt=transcript, info=info).derive(secret)

        return cls(reply, key(b"client->server"), key(b"server->client"))

    @staticmethod
    def _nonce(direction: int, counter: int) -> bytes:
        return direction.to_bytes(4, "big") + counter.to_bytes(8, "big")

    def _ad(self, direction: int, counter: int, path: str) -> bytes:
        counted = counter.to_bytes(8, "big")
        return LABEL + bytes([direction]) + self.session + counted + path.encode()

    def seal(self, counter: int, path: str, args: Any) -> bytes:
        payload = b"" if args is None else msgspec.json.encode(args)
        sealed = ChaCha20Poly1305(self.c2s).encrypt(
            self._nonce(1, counter), payload, self._ad(1, counter, path)
        )
        return self.session + counter.to_bytes(8, "big") + sealed

    def open(self, counter: int, path: str, response: httpx.Response) -> tuple[int, Any]:
        """The inner status and value of a sealed answer."""
        assert response.headers["content-type"] == SEALED, response.text
        body = response.content
        assert body[:16] == self.session and int.from_bytes(body[16:24], "big") == counter
        plain = ChaCha20Poly1305(self.s2c).decrypt(
            self._nonce(2, counter), body[24:], self._ad(2, counter, path)
        )
        status, rest = int.from_bytes(plain[:2], "big"), plain[2:]
        return status, msgspec.json.decode(rest) if rest else None


def post(client: httpx.Client, path: str, body: bytes, **options: Any) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": SEALED}, **options)


def tally(client: httpx.Client, **options: Any) -> int:
    answer = client.get("/Tally/t", **options)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["count"])


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code


@pytest.fixture
def client(database: str) -> Any:
    with TestClient(build(database)) as c:
        assert c.put("/Tally/t", json={"count": 0}).status_code in (201, 204)
        yield c


# -- the round trip ----------------------------------------------------------------------------


def test_a_call_through_the_channel_answers_as_the_plain_call(client: TestClient) -> None:
    channel = SyncChannel.open(client)
    assert channel.call("echo", [{"a": [1, "x"]}]) == {"a": [1, "x"]}
    assert channel.call("echo", {"value": "named"}) == "named"
    assert channel.call("bump", [2]) == 2
    assert channel.call("bump") == 1  # no arguments: an empty payload
    assert tally(client) == 3
    assert channel.call("nothing") is None  # a 204 inside
    assert channel.call("made", ["n1"]) == {"name": "n1"}
    with pytest.raises(HttpError) as raised:
        channel.call("bump", ["two"])
    assert raised.value.status_code == 422 and raised.value.code == "INVALID_PROPERTIES"
    plain = client.post("/rpc/bump", json=["two"])
    assert plain.status_code == 422 and plain.json()["error"]["code"] == "INVALID_PROPERTIES"
    with pytest.raises(HttpError) as missing:
        channel.call("no_such_rpc", [])
    assert missing.value.status_code == 404
    assert tally(client) == 3


def test_the_wire_shows_neither_arguments_nor_results(client: TestClient) -> None:
    peer = Peer.handshake(client)
    assert peer.reply["expires_in"] == 3600
    secret = "SENTINEL-4242-card"
    answer = post(client, "/rpc/echo", body := peer.seal(1, "/rpc/echo", [secret]))
    assert secret.encode() not in body and secret.encode() not in answer.content
    assert answer.status_code == 200
    assert peer.open(1, "/rpc/echo", answer) == (200, secret)
    # The inner status of a created answer is in the seal; the headers stay in the clear.
    made = post(client, "/rpc/made", peer.seal(2, "/rpc/made", ["x"]))
    assert made.status_code == 201 and made.headers["location"] == "/things/x"
    assert peer.open(2, "/rpc/made", made) == (201, {"name": "x"})
    nothing = post(client, "/rpc/nothing", peer.seal(3, "/rpc/nothing", None))
    assert nothing.status_code == 200 and peer.open(3, "/rpc/nothing", nothing) == (204, None)


async def test_the_async_channel(database: str) -> None:
    app = build(database)
    async with TestClient(app) as client:
        await client.put("/Tally/t", json={"count": 0})
        channel = await Channel.open(client)
        assert channel.session is not None
        results = [await channel.call("bump", [i]) for i in range(1, 6)]
        assert results == [1, 2, 3, 4, 5]
        # Calls started together on one channel go one at a time, in counter order.
        together = await asyncio.gather(*[channel.call("bump", [1]) for _ in range(10)])
        assert together == [1] * 10
        assert (await client.get("/Tally/t")).json()["count"] == 25


# -- what is refused, changing nothing ---------------------------------------------------------


def test_a_replayed_message_is_refused_and_does_not_run_again(client: TestClient) -> None:
    peer = Peer.handshake(client)
    message = peer.seal(1, "/rpc/bump", [5])
    first = post(client, "/rpc/bump", message)
    assert peer.open(1, "/rpc/bump", first) == (200, 5)
    for _ in range(3):
        refused(post(client, "/rpc/bump", message), 400, "CHANNEL_REPLAY")
    assert tally(client) == 5


def test_an_older_counter_is_refused(client: TestClient) -> None:
    peer = Peer.handshake(client)
    early, late = peer.seal(1, "/rpc/bump", [1]), peer.seal(2, "/rpc/bump", [10])
    assert peer.open(2, "/rpc/bump", post(client, "/rpc/bump", late)) == (200, 10)
    refused(post(client, "/rpc/bump", early), 400, "CHANNEL_REPLAY")
    # Gaps are fine (a message lost on the way): only going back is refused.
    assert peer.open(7, "/rpc/bump", post(client, "/rpc/bump", peer.seal(7, "/rpc/bump", [100])))
    assert tally(client) == 110


def test_concurrent_copies_of_a_message_run_once(database: str) -> None:
    app = build(database)

    async def run() -> list[int]:
        async with TestClient(app) as ac:
            await ac.put("/Tally/t", json={"count": 0})
            peer = await asyncio.to_thread(Peer.handshake, _SyncOver(ac))
            message = peer.seal(1, "/rpc/bump", [1])
            answers = await asyncio.gather(
                *[ac.post("/rpc/bump", content=message, headers={"content-type": SEALED})
                  for _ in range(20)]
            )  # fmt: skip
            assert (await ac.get("/Tally/t")).json()["count"] == 1
            return [a.status_code for a in answers]

    statuses = asyncio.run(run())
    assert sorted(statuses) == [200] + [400] * 19


class _SyncOver:
    """``Peer.handshake`` needs a blocking ``post``: one over an async client, from a thread."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()

    def post(self, path: str, **options: Any) -> httpx.Response:
        future = asyncio.run_coroutine_threadsafe(self.client.post(path, **options), self.loop)
        return future.result(10)


def _flip(message: bytes, index: int) -> bytes:
    changed = bytearray(message)
    changed[index] ^= 0x01
    return bytes(changed)


def test_an_altered_message_is_refused_and_its_counter_stays_usable(client: TestClient) -> None:
    peer = Peer.handshake(client)
    message = peer.seal(1, "/rpc/bump", [3])
    altered = {
        "ciphertext": _flip(message, 25),
        "tag": _flip(message, len(message) - 1),
        "counter (the nonce)": _flip(message, 23),
        "session": _flip(message, 0),
    }
    for what, body in altered.items():
        answer = post(client, "/rpc/bump", body)
        code = "CHANNEL_EXPIRED" if what == "session" else "DECRYPTION_FAILED"
        refused(answer, 400, code)
    refused(post(client, "/rpc/bump", message[:30]), 400, "DECRYPTION_FAILED")
    refused(post(client, "/rpc/bump", b""), 400, "DECRYPTION_FAILED")
    zero = peer.session + bytes(8) + message[24:]
    refused(post(client, "/rpc/bump", zero), 400, "DECRYPTION_FAILED")
    # Another path is other associated data: a message for bump does not run echo.
    refused(post(client, "/rpc/echo", message), 400, "DECRYPTION_FAILED")
    assert tally(client) == 0
    # None of them used up counter 1: the genuine message still runs, once.
    assert peer.open(1, "/rpc/bump", post(client, "/rpc/bump", message)) == (200, 3)
    assert tally(client) == 3


def test_a_message_of_one_session_does_not_open_in_another(client: TestClient) -> None:
    one, other = Peer.handshake(client), Peer.handshake(client)
    message = one.seal(1, "/rpc/bump", [1])
    moved = other.session + message[16:]
    refused(post(client, "/rpc/bump", moved), 400, "DECRYPTION_FAILED")
    assert tally(client) == 0
    assert one.open(1, "/rpc/bump", post(client, "/rpc/bump", message)) == (200, 1)
    assert tally(client) == 1


def test_an_answer_cannot_be_sent_back_as_a_request(client: TestClient) -> None:
    peer = Peer.handshake(client)
    answer = post(client, "/rpc/bump", peer.seal(1, "/rpc/bump", [1]))
    # Sealed under the other direction's key and nonce: it does not open, whatever counter.
    reflected = _with_counter(answer.content, 2)
    refused(post(client, "/rpc/bump", answer.content), 400, "DECRYPTION_FAILED")
    refused(post(client, "/rpc/bump", reflected), 400, "DECRYPTION_FAILED")
    assert tally(client) == 1


def _with_counter(message: bytes, counter: int) -> bytes:
    return message[:16] + counter.to_bytes(8, "big") + message[24:]


def test_an_expired_session_is_refused_and_the_client_opens_a_new_one(database: str) -> None:
    with TestClient(build(database, channel_ttl=0.5)) as client:
        client.put("/Tally/t", json={"count": 0})
        peer = Peer.handshake(client)
        assert peer.reply["expires_in"] == 0
        channel = SyncChannel.open(client)
        first = channel.session
        assert channel.call("bump", [1]) == 1
        time.sleep(0.7)
        refused(post(client, "/rpc/bump", peer.seal(1, "/rpc/bump", [1])), 400, "CHANNEL_EXPIRED")
        assert tally(client) == 1
        assert channel.call("bump", [2]) == 2  # refused unrun, reopened, sent again: once
        assert channel.session != first
        assert tally(client) == 3


def test_a_session_id_nobody_made_is_refused(client: TestClient) -> None:
    channel = SyncChannel.open(client)
    peer = Peer.handshake(client)
    forged = os.urandom(16) + peer.seal(1, "/rpc/bump", [1])[16:]
    refused(post(client, "/rpc/bump", forged), 400, "CHANNEL_EXPIRED")
    assert channel.call("echo", ["still fine"]) == "still fine"
    assert tally(client) == 0


@pytest.mark.parametrize(
    "hello",
    [
        {},
        {"version": 2, "public_key": _b64(bytes(32)), "nonce": _b64(bytes(32))},
        {"version": 1, "public_key": "not base64!", "nonce": _b64(bytes(32))},
        {"version": 1, "public_key": _b64(b"short"), "nonce": _b64(bytes(32))},
        {"version": 1, "public_key": _b64(os.urandom(32)), "nonce": _b64(bytes(8))},
        # A small-order point: the shared secret would be all zeros, known to anyone.
        {"version": 1, "public_key": _b64(bytes(32)), "nonce": _b64(bytes(32))},
        {"version": 1, "public_key": _b64(os.urandom(32)), "nonce": _b64(bytes(32)), "x": 1},
    ],
)
def test_a_malformed_handshake_is_a_400(client: TestClient, hello: dict[str, Any]) -> None:
    refused(client.post("/rpc/_handshake", json=hello), 400, "MALFORMED_INPUT")
    refused(client.post("/rpc/_handshake", content=b"{"), 400, "MALFORMED_INPUT")


def test_a_sealed_body_is_for_rpc_calls_only(client: TestClient) -> None:
    peer = Peer.handshake(client)
    put = client.put("/Tally/t", content=peer.seal(1, "/Tally/t", {"count": 9}),
                     headers={"content-type": SEALED})  # fmt: skip
    refused(put, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert tally(client) == 0


# -- permissions: the same as the plain call ---------------------------------------------------


def test_permissions_are_those_of_the_plain_call(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap_passwords(monkeypatch)
    app = build(database, auth=True, roles=ROLES)
    with TestClient(app) as client:
        client.run(charter.auth.add_user(app, "rita", "rita-password", role="reader"))
        client.run(charter.auth.add_user(app, "will", "will-password", role="writer"))
        client.run(charter.auth.add_user(app, "root", "root-password", super_user=True))
        client.put("/Tally/t", json={"count": 0}, auth=("root", "root-password"))
        rita, will = ("rita", "rita-password"), ("will", "will-password")
        channel = SyncChannel.open(client)  # the handshake itself needs no sign-in
        cases: list[tuple[tuple[str, str] | None, str, list[Any], int]] = [
            (rita, "echo", ["r"], 200),
            (rita, "bump", [1], 403),
            (will, "bump", [1], 200),
            (None, "echo", ["a"], 401),
            (None, "bump", [1], 401),
            (("will", "wrong"), "bump", [1], 401),
        ]
        for auth, name, args, status in cases:
            plain = client.post(f"/rpc/{name}", json=args, auth=auth)
            assert plain.status_code == status, (auth, name, plain.text)
            if status == 200:
                assert channel.call(name, args, auth=auth) == plain.json()
                continue
            with pytest.raises(HttpError) as raised:
                channel.call(name, args, auth=auth)
            assert raised.value.status_code == status, (auth, name)
            assert raised.value.code == plain.json()["error"]["code"]
        assert tally(client, auth=will) == 2  # will's two bumps, plain and sealed


# -- a real server with two workers ------------------------------------------------------------

APP = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.channel_app import build
app = build()
"""


def _served(database: str, tmp_path: Path) -> Server:
    app_file = tmp_path / "channel_served.py"
    app_file.write_text(APP)
    args = ["--workers", "2", "--database", database]
    return Server(f"{app_file}:app", *args)


@pytest.mark.parametrize("store", ["database", "redis"])
def test_two_workers_share_sessions_and_counters(
    database: str, tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store == "redis":
        redis_url = os.environ.get("CHARTER_TEST_REDIS", "redis://127.0.0.1:6379/0")
        try:
            import redis

            redis.Redis.from_url(redis_url, socket_timeout=1).ping()
        except Exception as exc:
            pytest.skip(f"Redis is not reachable: {exc}")
        monkeypatch.setenv("CHARTER_SHARED", redis_url)
    else:
        monkeypatch.delenv("CHARTER_SHARED", raising=False)
    with _served(database, tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=30) as plain:
            assert plain.put("/Tally/t", json={"count": 0}).status_code in (201, 204)

        async def run() -> list[int]:
            # Many connections: handshakes and calls land on both workers.
            limits = httpx.Limits(max_connections=8, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as ac:
                channels = [await Channel.open(ac) for _ in range(4)]

                async def calls(channel: Channel) -> None:
                    for _ in range(10):
                        assert await channel.call("bump", [1]) == 1

                await asyncio.gather(*[calls(channel) for channel in channels])
                peer = await asyncio.to_thread(Peer.handshake, _SyncOver(ac))
                message = peer.seal(1, "/rpc/bump", [100])
                answers = await asyncio.gather(
                    *[ac.post("/rpc/bump", content=message, headers={"content-type": SEALED})
                      for _ in range(16)]
                )  # fmt: skip
                return [a.status_code for a in answers]

        statuses = asyncio.run(run())
        assert sorted(statuses) == [200] + [400] * 15, statuses
        with httpx.Client(base_url=server.url, timeout=30) as plain:
            assert tally(plain) == 4 * 10 + 100

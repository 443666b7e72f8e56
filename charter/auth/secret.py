"""The app's signing secret: ``CHARTER_SECRET``, else made once and kept in ``_charter_secrets``.

Every worker must sign and verify with the same key, and a restart must not sign everyone out,
so a generated secret lives in a system table (created by whichever worker starts first; the
others read it). Keys for each use (access tokens, cookie sessions, the Basic cache, CSRF
tokens) are derived from it with HMAC, so one leaked derived key does not give the others.
The secret is never printed, logged or returned.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets

import msgspec

from ..errors import CharterError
from ..model.fields import Field
from ..model.table import Table
from ..runtime.transaction import Transaction, run_in_transaction
from ..schema import TableSchema, build_schema
from ..storage import Storage
from ..storage.base import DuplicateKey

__all__ = ["SECRETS", "SecretStore", "derive"]

SECRETS = "_charter_secrets"

_SIGNING = "signing"


class _SecretRecord(Table, name=SECRETS):
    name: str = Field(primary_key=True, min_length=1, max_length=64)
    value: str = ""


def derive(secret: bytes, purpose: str) -> bytes:
    """The key for one ``purpose`` (``"access-token"``, ``"basic-cache"``...)."""
    return hmac.new(secret, b"charter/" + purpose.encode(), hashlib.sha256).digest()


class SecretStore:
    """Loads (or creates) the secret at start; ``secret`` is the raw bytes afterwards."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.schema: TableSchema = build_schema(_SecretRecord, _SecretRecord.__charter_options__)
        self._secret: bytes | None = None

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            raise CharterError("the app's secret is read at start; start the app first")
        return self._secret

    async def load(self, configured: str | None) -> None:
        """Use ``configured`` (``CHARTER_SECRET``) or the stored secret, creating it once."""
        if configured is not None:  # its length is checked by Config.build
            self._secret = configured.encode()
            return
        stored = await self._read()
        if stored is None:
            fresh = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()
            body = msgspec.json.encode({"name": _SIGNING, "value": fresh}).decode()

            async def create(txn: Transaction) -> None:
                txn.put(SECRETS, _SIGNING, body, insert=True)

            with contextlib.suppress(DuplicateKey):  # another worker made it first: use it
                await run_in_transaction(self.storage, create, join=False)
            stored = await self._read()
            if stored is None:  # pragma: no cover - written just above
                raise CharterError("the app's secret could not be stored")
        self._secret = stored

    async def _read(self) -> bytes | None:
        row = await self.storage.fetch(SECRETS, _SIGNING)
        if row is None:
            return None
        value = msgspec.json.decode(row.data).get("value")
        return base64.urlsafe_b64decode(value) if value else None

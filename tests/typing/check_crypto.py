"""What a type checker sees of ``charter.crypto``: checked by ``mypy`` (``make check``).
``assert_type`` pins a type; ``# type: ignore[code]`` pins an error."""

from __future__ import annotations

from typing import assert_type

from charter import crypto

key = crypto.new_key()
assert_type(key, bytes)
assert_type(crypto.hkdf(key, b"purpose", 32), bytes)
assert_type(crypto.hkdf(key, b"purpose", 32, salt=b"salt"), bytes)
sealed = crypto.encrypt(b"payload", key, associated_data=b"ad", nonce=bytes(12))
assert_type(sealed, crypto.Sealed)
assert_type(sealed.to_bytes(), bytes)
assert_type(crypto.Sealed.from_bytes(sealed.to_bytes()), crypto.Sealed)
assert_type(crypto.decrypt(sealed, key, associated_data=b"ad"), bytes)
assert_type(sealed.nonce, bytes)

crypto.encrypt("text", key)  # type: ignore[arg-type]
crypto.encrypt(b"payload", key, b"ad")  # type: ignore[call-arg]
crypto.decrypt(sealed.to_bytes(), key)  # type: ignore[arg-type]
sealed.tag = b""  # type: ignore[misc]

"""Encryption primitives (SPEC section 11): HKDF to derive keys, ChaCha20-Poly1305 to seal.

Thin, typed wrappers over the ``cryptography`` package, so that Charter code and apps never
touch a cipher object, a nonce size or a tag split by hand. These are the building blocks of the
encrypted RPC channel (``charter/channel.py``): it derives one key per direction with ``hkdf``
over the handshake transcript, and seals each message with ``encrypt(..., nonce=counter)``.

Errors: a ``Sealed`` that does not open is a ``DecryptionError``, a 400 ``DECRYPTION_FAILED``
(a sealed request body that was altered is the client's input, so the channel can let it reach
the envelope as it is); a key, nonce or length the primitives cannot use is a
``CryptoParameterError``, a programming error, also a ``ValueError``.
"""

from __future__ import annotations

import os

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import CharterError, MalformedInput

__all__ = [
    "HKDF_MAX_LENGTH",
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "CryptoParameterError",
    "DecryptionError",
    "Sealed",
    "decrypt",
    "encrypt",
    "hkdf",
    "new_key",
]

KEY_SIZE = 32
"""Bytes in a ChaCha20-Poly1305 key."""
NONCE_SIZE = 12
"""Bytes in a nonce (RFC 8439's 96-bit nonce)."""
TAG_SIZE = 16
"""Bytes in a Poly1305 tag."""
HKDF_MAX_LENGTH = 255 * 32
"""The most bytes HKDF-SHA256 can derive (RFC 5869: 255 blocks of the hash's size)."""


class CryptoParameterError(CharterError, ValueError):
    """A key, nonce or length the primitives cannot use: a bug in the caller, not bad input."""


class DecryptionError(MalformedInput):
    """400: a sealed message that does not open (altered, cut short, or another key or AAD)."""

    default_code = "DECRYPTION_FAILED"
    default_message = "the message could not be decrypted"


def _check_bytes(name: str, value: object, size: int | None = None, *, exact: bool = False) -> None:
    """Raise unless ``value`` is bytes-like (``bytes`` itself when ``exact``) of ``size``."""
    if not isinstance(value, bytes if exact else bytes | bytearray | memoryview):
        raise CryptoParameterError(f"{name} must be bytes, not {type(value).__name__}")
    if size is not None and len(value) != size:
        raise CryptoParameterError(f"{name} must be {size} bytes, not {len(value)}")


class Sealed(msgspec.Struct, frozen=True):
    """A message sealed by ``encrypt``: what ``decrypt`` needs besides the key (and the AAD).

    Immutable so that a message cannot be half-changed between its checks and its use. It
    travels either as a Struct (msgspec encodes the fields, base64 in JSON) or as the bytes of
    ``to_bytes``, ``nonce || data || tag``, which is what a sealed HTTP body carries.
    """

    nonce: bytes
    """The 12-byte nonce the message was sealed under."""
    data: bytes
    """The ciphertext, as long as the plaintext."""
    tag: bytes
    """The 16-byte Poly1305 tag over ciphertext and associated data."""

    def __post_init__(self) -> None:
        # Also runs when msgspec decodes a Sealed, which turns the ValueError into its own
        # ValidationError: a wire message of the wrong shape is rejected there.
        _check_bytes("nonce", self.nonce, NONCE_SIZE, exact=True)
        _check_bytes("data", self.data, exact=True)
        _check_bytes("tag", self.tag, TAG_SIZE, exact=True)

    def to_bytes(self) -> bytes:
        """``nonce || data || tag``: one byte string for a body or a column."""
        return self.nonce + self.data + self.tag

    @classmethod
    def from_bytes(cls, raw: bytes) -> Sealed:
        """Split what ``to_bytes`` made; too short to hold a nonce and a tag is a 400.

        Nothing is checked here beyond the length: ``decrypt`` tells whether it is genuine.

        Raises:
            DecryptionError: ``raw`` is shorter than a nonce and a tag.
        """
        _check_bytes("raw", raw)
        raw = bytes(raw)
        if len(raw) < NONCE_SIZE + TAG_SIZE:
            raise DecryptionError("a sealed message is at least 28 bytes")
        return cls(raw[:NONCE_SIZE], raw[NONCE_SIZE:-TAG_SIZE], raw[-TAG_SIZE:])


def new_key() -> bytes:
    """A fresh random 32-byte key from the OS's CSPRNG, for ``encrypt`` or as an HKDF secret."""
    return os.urandom(KEY_SIZE)


def hkdf(secret: bytes, info: bytes, length: int, salt: bytes = b"") -> bytes:
    """Derive ``length`` bytes from ``secret`` with HKDF-SHA256 (RFC 5869).

    Why: a shared secret (an X25519 result, a master key) is not itself a good cipher key, and
    one secret must give several independent keys; ``info`` names what each key is for (its
    purpose, direction, session), so two uses never get the same key.

    Args:
        secret: the input keying material (IKM).
        info: the context that binds the output to one use; may be empty.
        length: how many bytes to derive, 1 to ``HKDF_MAX_LENGTH``.
        salt: an optional non-secret random value; empty means RFC 5869's zero salt.

    Raises:
        CryptoParameterError: ``length`` out of range, or an argument that is not bytes.
    """
    _check_bytes("secret", secret)
    _check_bytes("info", info)
    _check_bytes("salt", salt)
    if isinstance(length, bool) or not isinstance(length, int):
        raise CryptoParameterError(f"length must be an int, not {type(length).__name__}")
    if not 1 <= length <= HKDF_MAX_LENGTH:
        raise CryptoParameterError(f"length must be 1 to {HKDF_MAX_LENGTH}, not {length}")
    derive = HKDF(
        algorithm=hashes.SHA256(), length=length, salt=bytes(salt) or None, info=bytes(info)
    )
    return derive.derive(bytes(secret))


def encrypt(
    payload: bytes, key: bytes, *, associated_data: bytes = b"", nonce: bytes | None = None
) -> Sealed:
    """Seal ``payload`` under ``key`` with ChaCha20-Poly1305 (RFC 8439).

    The result hides the payload and lets ``decrypt`` detect any change to it, to its nonce or
    to ``associated_data``. The associated data is authenticated but not encrypted nor carried
    in the result: the receiver must know it (a route, a session id, a direction) and pass the
    same bytes, which binds the message to that context.

    A nonce must never repeat under one key: two messages sealed with the same key and nonce
    give away the XOR of their plaintexts and reveal that nonce's one-time Poly1305 key, with
    which anyone can forge messages that open. The default, 12 random bytes from
    ``os.urandom``, makes a repeat negligible for up to about 2**32 messages per key. Pass
    ``nonce`` only for a counter that is never reset nor reused for the key's whole life (as the
    encrypted channel's per-direction message counters are), never a fixed value.

    Args:
        payload: the plaintext.
        key: 32 bytes (``new_key()``, or ``hkdf(secret, info, 32)``).
        associated_data: bytes to authenticate along with the payload.
        nonce: 12 bytes, unique for this key; random when omitted.

    Raises:
        CryptoParameterError: a key or nonce of the wrong length, or an argument not bytes.
    """
    _check_bytes("payload", payload)
    _check_bytes("key", key, KEY_SIZE)
    _check_bytes("associated_data", associated_data)
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    else:
        _check_bytes("nonce", nonce, NONCE_SIZE)
        nonce = bytes(nonce)
    sealed = ChaCha20Poly1305(bytes(key)).encrypt(nonce, payload, associated_data)
    return Sealed(nonce, sealed[:-TAG_SIZE], sealed[-TAG_SIZE:])


def decrypt(sealed: Sealed, key: bytes, *, associated_data: bytes = b"") -> bytes:
    """Open what ``encrypt`` sealed under ``key`` with the same ``associated_data``.

    All or nothing: a changed byte anywhere (nonce, data, tag, associated data) or another key
    raises, and no part of the plaintext is returned. The error does not say which was wrong,
    so a prober learns nothing from it.

    Raises:
        DecryptionError: the message is not genuine for this key and associated data.
        CryptoParameterError: a key of the wrong length, or an argument not bytes.
    """
    if not isinstance(sealed, Sealed):
        raise CryptoParameterError(f"sealed must be a Sealed, not {type(sealed).__name__}")
    _check_bytes("key", key, KEY_SIZE)
    _check_bytes("associated_data", associated_data)
    try:
        return ChaCha20Poly1305(bytes(key)).decrypt(
            sealed.nonce, sealed.data + sealed.tag, associated_data
        )
    except InvalidTag:
        raise DecryptionError() from None

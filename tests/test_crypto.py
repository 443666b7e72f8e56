"""charter.crypto (SPEC section 11): HKDF against RFC 5869, ChaCha20-Poly1305 against RFC 8439,
and any altered byte rejected."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import charter
from charter import App, HttpError, MalformedInput, Request, route
from charter.crypto import (
    HKDF_MAX_LENGTH,
    CryptoParameterError,
    DecryptionError,
    Sealed,
    decrypt,
    encrypt,
    hkdf,
    new_key,
)
from charter.testing import TestClient

keys = st.binary(min_size=32, max_size=32)


def unhex(text: str) -> bytes:
    """Bytes from hex as the RFCs print it (spaces, colons and line breaks ignored)."""
    return bytes.fromhex(text.replace(":", "").replace(" ", "").replace("\n", ""))


# -- HKDF: RFC 5869 appendix A, the three SHA-256 cases ----------------------------------------

RFC5869 = [
    pytest.param(
        unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
        unhex("000102030405060708090a0b0c"),
        unhex("f0f1f2f3f4f5f6f7f8f9"),
        42,
        unhex(
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        ),
        id="A.1 basic",
    ),
    pytest.param(
        unhex(
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
            "404142434445464748494a4b4c4d4e4f"
        ),
        unhex(
            "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
            "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
        ),
        unhex(
            "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
            "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
            "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
        ),
        82,
        unhex(
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
            "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
            "cc30c58179ec3e87c14c01d5c1f3434f1d87"
        ),
        id="A.2 longer inputs and outputs",
    ),
    pytest.param(
        unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
        b"",
        b"",
        42,
        unhex(
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        ),
        id="A.3 zero-length salt and info",
    ),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "okm"), RFC5869)
def test_hkdf_gives_the_rfc_5869_output(
    ikm: bytes, salt: bytes, info: bytes, length: int, okm: bytes
) -> None:
    assert len(okm) == length
    assert hkdf(ikm, info, length, salt=salt) == okm
    assert _reference_hkdf(ikm, info, length, salt) == okm  # the vectors were typed right


def _reference_hkdf(secret: bytes, info: bytes, length: int, salt: bytes) -> bytes:
    """RFC 5869 section 2 on the standard library's HMAC: a second, independent implementation."""
    prk = hmac.new(salt or bytes(32), secret, hashlib.sha256).digest()
    block, out = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:length]


@given(
    secret=st.binary(max_size=100),
    info=st.binary(max_size=100),
    salt=st.binary(max_size=100),
    length=st.integers(1, 300),
)
def test_hkdf_agrees_with_the_rfc_on_any_input(
    secret: bytes, info: bytes, salt: bytes, length: int
) -> None:
    assert hkdf(secret, info, length, salt=salt) == _reference_hkdf(secret, info, length, salt)


def test_hkdf_separates_keys_by_info_and_salt() -> None:
    secret = b"shared secret"
    assert hkdf(secret, b"client to server", 32) != hkdf(secret, b"server to client", 32)
    assert hkdf(secret, b"x", 32, salt=b"a") != hkdf(secret, b"x", 32, salt=b"b")
    # An empty salt is RFC 5869's default: a hash length of zeros.
    assert hkdf(secret, b"x", 32) == hkdf(secret, b"x", 32, salt=bytes(32))
    # A shorter output is a prefix of a longer one (the expand step), as the RFC defines it.
    assert hkdf(secret, b"x", 64)[:32] == hkdf(secret, b"x", 32)


@pytest.mark.parametrize("length", [0, -1, HKDF_MAX_LENGTH + 1, True, 32.0])
def test_hkdf_rejects_a_length_out_of_range(length: int) -> None:
    with pytest.raises(CryptoParameterError, match="length"):
        hkdf(b"secret", b"info", length)


def test_hkdf_derives_up_to_its_maximum_and_wants_bytes() -> None:
    assert len(hkdf(b"secret", b"info", HKDF_MAX_LENGTH)) == HKDF_MAX_LENGTH
    with pytest.raises(CryptoParameterError, match="secret must be bytes, not str"):
        hkdf("secret", b"info", 32)  # type: ignore[arg-type]
    with pytest.raises(CryptoParameterError, match="info must be bytes"):
        hkdf(b"secret", "info", 32)  # type: ignore[arg-type]


# -- ChaCha20-Poly1305: RFC 8439 section 2.8.2 -------------------------------------------------

RFC8439_KEY = unhex("""
    80 81 82 83 84 85 86 87 88 89 8a 8b 8c 8d 8e 8f
    90 91 92 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f
""")
RFC8439_NONCE = unhex("07 00 00 00 40 41 42 43 44 45 46 47")  # constant || IV
RFC8439_AAD = unhex("50 51 52 53 c0 c1 c2 c3 c4 c5 c6 c7")
RFC8439_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    b"future, sunscreen would be it."
)
RFC8439_CIPHERTEXT = unhex("""
    d3 1a 8d 34 64 8e 60 db 7b 86 af bc 53 ef 7e c2
    a4 ad ed 51 29 6e 08 fe a9 e2 b5 a7 36 ee 62 d6
    3d be a4 5e 8c a9 67 12 82 fa fb 69 da 92 72 8b
    1a 71 de 0a 9e 06 0b 29 05 d6 a5 b6 7e cd 3b 36
    92 dd bd 7f 2d 77 8b 8c 98 03 ae e3 28 09 1b 58
    fa b3 24 e4 fa d6 75 94 55 85 80 8b 48 31 d7 bc
    3f f4 de f0 8e 4b 7a 9d e5 76 d2 65 86 ce c6 4b
    61 16
""")
RFC8439_TAG = unhex("1a:e1:0b:59:4f:09:e2:6a:7e:90:2e:cb:d0:60:06:91")


def test_encrypt_gives_the_rfc_8439_ciphertext_and_tag() -> None:
    sealed = encrypt(
        RFC8439_PLAINTEXT, RFC8439_KEY, associated_data=RFC8439_AAD, nonce=RFC8439_NONCE
    )
    assert sealed == Sealed(RFC8439_NONCE, RFC8439_CIPHERTEXT, RFC8439_TAG)
    assert sealed.to_bytes() == RFC8439_NONCE + RFC8439_CIPHERTEXT + RFC8439_TAG


def test_decrypt_opens_the_rfc_8439_message() -> None:
    sealed = Sealed.from_bytes(RFC8439_NONCE + RFC8439_CIPHERTEXT + RFC8439_TAG)
    assert sealed.data == RFC8439_CIPHERTEXT
    opened = decrypt(sealed, RFC8439_KEY, associated_data=RFC8439_AAD)
    assert opened == RFC8439_PLAINTEXT


# -- round trips ---------------------------------------------------------------------------------


@given(payload=st.binary(max_size=2048), key=keys, aad=st.binary(max_size=64))
def test_what_is_sealed_opens_to_the_same_bytes(payload: bytes, key: bytes, aad: bytes) -> None:
    sealed = encrypt(payload, key, associated_data=aad)
    assert (len(sealed.nonce), len(sealed.data), len(sealed.tag)) == (12, len(payload), 16)
    assert decrypt(sealed, key, associated_data=aad) == payload
    wire = sealed.to_bytes()
    assert len(wire) == 12 + len(payload) + 16
    assert decrypt(Sealed.from_bytes(wire), key, associated_data=aad) == payload


def test_a_random_nonce_each_time() -> None:
    key = new_key()
    first, second = encrypt(b"same", key), encrypt(b"same", key)
    assert first.nonce != second.nonce and first.data != second.data
    assert len(key) == 32 and key != new_key()


def test_a_counter_nonce_is_used_as_given() -> None:
    """What the encrypted channel will do: its message counter as the nonce."""
    key = new_key()
    nonce = (7).to_bytes(12, "big")
    sealed = encrypt(b"call", key, nonce=nonce)
    assert sealed.nonce == nonce
    assert encrypt(b"call", key, nonce=nonce) == sealed  # deterministic: so never repeat one
    assert decrypt(sealed, key) == b"call"


def test_bytes_like_inputs_are_accepted() -> None:
    key = bytearray(new_key())
    sealed = encrypt(memoryview(b"payload"), key, associated_data=bytearray(b"ad"))
    assert decrypt(sealed, bytes(key), associated_data=b"ad") == b"payload"
    derived = hkdf(bytearray(b"s"), memoryview(b"i"), 32, salt=bytearray(b"x"))
    assert derived == hkdf(b"s", b"i", 32, salt=b"x")


def test_sealed_travels_in_json_and_msgpack_and_is_immutable() -> None:
    sealed = encrypt(b"payload", new_key())
    assert msgspec.json.decode(msgspec.json.encode(sealed), type=Sealed) == sealed
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(sealed), type=Sealed) == sealed
    with pytest.raises(AttributeError):
        sealed.tag = bytes(16)  # type: ignore[misc]
    assert hash(sealed) == hash(Sealed(sealed.nonce, sealed.data, sealed.tag))


# -- tampering -------------------------------------------------------------------------------------

PARTS = ["nonce", "data", "tag", "associated_data"]


def _flip(value: bytes, index: int, mask: int) -> bytes:
    changed = bytearray(value)
    changed[index] ^= mask
    return bytes(changed)


@given(
    payload=st.binary(min_size=1, max_size=512),
    key=keys,
    aad=st.binary(min_size=1, max_size=64),
    part=st.sampled_from(PARTS),
    single_bit=st.booleans(),
    data=st.data(),
)
def test_any_altered_byte_is_rejected(
    payload: bytes, key: bytes, aad: bytes, part: str, single_bit: bool, data: st.DataObject
) -> None:
    sealed = encrypt(payload, key, associated_data=aad)
    parts = {"nonce": sealed.nonce, "data": sealed.data, "tag": sealed.tag, "associated_data": aad}
    index = data.draw(st.integers(0, len(parts[part]) - 1), label="index")
    if single_bit:
        mask = 1 << data.draw(st.integers(0, 7), label="bit")
    else:
        mask = data.draw(st.integers(1, 255), label="mask")
    parts[part] = _flip(parts[part], index, mask)
    altered = Sealed(parts["nonce"], parts["data"], parts["tag"])
    with pytest.raises(DecryptionError):
        decrypt(altered, key, associated_data=parts["associated_data"])


@given(payload=st.binary(max_size=256), key=keys, data=st.data())
def test_any_altered_byte_of_the_wire_form_is_rejected(
    payload: bytes, key: bytes, data: st.DataObject
) -> None:
    wire = encrypt(payload, key).to_bytes()
    index = data.draw(st.integers(0, len(wire) - 1), label="index")
    altered = _flip(wire, index, data.draw(st.integers(1, 255), label="mask"))
    with pytest.raises(DecryptionError):
        decrypt(Sealed.from_bytes(altered), key)


@given(payload=st.binary(min_size=1, max_size=256), key=keys, data=st.data())
def test_cut_or_lengthened_messages_are_rejected(
    payload: bytes, key: bytes, data: st.DataObject
) -> None:
    sealed = encrypt(payload, key, associated_data=b"ad")
    cut = data.draw(st.integers(0, len(sealed.data) - 1), label="cut")
    extra = data.draw(st.binary(min_size=1, max_size=8), label="extra")
    for altered, aad in [
        (Sealed(sealed.nonce, sealed.data[:cut], sealed.tag), b"ad"),
        (Sealed(sealed.nonce, sealed.data + extra, sealed.tag), b"ad"),
        (sealed, b"ad" + extra),
        (sealed, b"a"),
        (sealed, b""),
    ]:
        with pytest.raises(DecryptionError):
            decrypt(altered, key, associated_data=aad)


def test_another_key_is_rejected_and_the_error_tells_nothing() -> None:
    key = new_key()
    sealed = encrypt(b"secret", key, associated_data=b"ad")
    with pytest.raises(DecryptionError) as wrong_key:
        decrypt(sealed, new_key(), associated_data=b"ad")
    with pytest.raises(DecryptionError) as wrong_tag:
        decrypt(Sealed(sealed.nonce, sealed.data, bytes(16)), key, associated_data=b"ad")
    assert str(wrong_key.value) == str(wrong_tag.value) == "the message could not be decrypted"
    assert wrong_key.value.__cause__ is None and wrong_key.value.__suppress_context__
    assert decrypt(sealed, key, associated_data=b"ad") == b"secret"


def test_the_decryption_error_is_a_400_with_its_own_code() -> None:
    error = DecryptionError()
    assert isinstance(error, MalformedInput) and isinstance(error, HttpError)
    assert (error.status_code, error.code) == (400, "DECRYPTION_FAILED")
    with pytest.raises(DecryptionError, match="at least 28 bytes"):
        Sealed.from_bytes(bytes(27))
    assert Sealed.from_bytes(bytes(28)).data == b""


def test_a_sealed_body_that_does_not_open_is_answered_400(tmp_path: Path) -> None:
    """The channel to come lets a ``DecryptionError`` reach the envelope as it is."""
    key = new_key()

    @route("POST", "/sealed")
    async def sealed_echo(request: Request) -> str:
        return decrypt(Sealed.from_bytes(await request.body()), key).decode()

    app = App(routes=[sealed_echo], database=f"sqlite:///{tmp_path / 'db.sqlite'}")
    with TestClient(app) as client:
        body = encrypt(b"hello", key).to_bytes()
        assert client.post("/sealed", content=body).json() == "hello"
        for bad in [_flip(body, 3, 1), body[:20]]:
            response = client.post("/sealed", content=bad)
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "DECRYPTION_FAILED"


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_key_of_the_wrong_length_is_rejected(size: int) -> None:
    sealed = encrypt(b"x", new_key())
    with pytest.raises(CryptoParameterError, match=f"key must be 32 bytes, not {size}"):
        encrypt(b"x", bytes(size))
    with pytest.raises(CryptoParameterError, match=f"key must be 32 bytes, not {size}"):
        decrypt(sealed, bytes(size))


@pytest.mark.parametrize("size", [0, 8, 11, 13, 24])
def test_a_nonce_of_the_wrong_length_is_rejected(size: int) -> None:
    with pytest.raises(CryptoParameterError, match=f"nonce must be 12 bytes, not {size}"):
        encrypt(b"x", new_key(), nonce=bytes(size))
    with pytest.raises(CryptoParameterError, match=f"nonce must be 12 bytes, not {size}"):
        Sealed(bytes(size), b"", bytes(16))


def test_a_sealed_of_the_wrong_shape_is_rejected() -> None:
    with pytest.raises(CryptoParameterError, match="tag must be 16 bytes, not 15"):
        Sealed(bytes(12), b"", bytes(15))
    with pytest.raises(CryptoParameterError, match="data must be bytes, not bytearray"):
        Sealed(bytes(12), bytearray(), bytes(16))  # type: ignore[arg-type]
    with pytest.raises(CryptoParameterError, match="sealed must be a Sealed, not bytes"):
        decrypt(bytes(40), new_key())  # type: ignore[arg-type]
    with pytest.raises(CryptoParameterError, match="key must be bytes, not str"):
        encrypt(b"x", "k" * 32)  # type: ignore[arg-type]
    # Decoded from the wire, a wrong shape is msgspec's ValidationError (a 422 in a body).
    wire = msgspec.json.encode({"nonce": "AAAA", "data": "", "tag": "AAAA"})
    with pytest.raises(msgspec.ValidationError, match="nonce must be 12 bytes"):
        msgspec.json.decode(wire, type=Sealed)
    assert issubclass(CryptoParameterError, ValueError)
    assert not issubclass(CryptoParameterError, HttpError)


def test_it_is_public_as_charter_crypto() -> None:
    assert charter.crypto.encrypt is encrypt and charter.crypto.Sealed is Sealed

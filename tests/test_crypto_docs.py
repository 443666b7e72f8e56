"""docs/crypto.md: its Python blocks form one program that checks what the page says."""

from __future__ import annotations

from pathlib import Path

from charter.channel import LABEL, MEDIA_TYPE, ChannelError
from charter.crypto import HKDF_MAX_LENGTH, KEY_SIZE, NONCE_SIZE, TAG_SIZE
from tests.docs_program import run_page

DOC = Path(__file__).resolve().parent.parent / "docs" / "crypto.md"


def test_the_examples_run(tmp_path: Path) -> None:
    run_page("crypto.md", tmp_path, min_blocks=5, timeout=120)


def test_the_page_states_the_sizes_and_names_the_code() -> None:
    text = DOC.read_text()
    assert (KEY_SIZE, NONCE_SIZE, TAG_SIZE, HKDF_MAX_LENGTH) == (32, 12, 16, 8160)
    for words in ["32 random bytes", "12-byte nonce", "16-byte tag", "1 to 8,160 bytes"]:
        assert words in text, words
    assert f"{NONCE_SIZE + TAG_SIZE} bytes more than the payload" in text
    for name in ["DECRYPTION_FAILED", "DecryptionError", "CryptoParameterError", "hkdf"]:
        assert name in text, name


def test_the_page_documents_the_channel_as_built() -> None:
    """Issue 14 point 5 is built: the page says how it works and what it does not protect."""
    text = DOC.read_text()
    assert "does not exist yet" not in text and "not built yet" not in text
    for words in [
        "POST /rpc/_handshake",
        MEDIA_TYPE,
        "DECRYPTION_FAILED",
        "CHANNEL_EXPIRED",
        "CHANNEL_REPLAY",
        "channel_ttl",
        "_charter_channels",
        "### Threat model",
        "**Authenticate the server.**",
        "**Hide metadata.**",
        LABEL.decode(),
        f"{len(LABEL)} ASCII bytes",
    ]:
        assert words in text, words
    assert ChannelError.status_code == 400 and ChannelError.default_code == "CHANNEL_EXPIRED"

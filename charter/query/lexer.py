"""Tokenizer for the URL query language.

It works on the raw, still percent-encoded query string so that every token knows its character
offset there (error messages quote it) and so that an encoded ``%26`` is part of a word while a
literal ``&`` joins terms. Words are decoded here; everything else is punctuation.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from ..errors import InvalidQuery

__all__ = ["Token", "tokenize"]

# Token kinds: WORD, CMP (a comparator as written), and the punctuation characters themselves.
_PUNCT = frozenset("&|()[]{},")
_STOP = _PUNCT | frozenset("=!")


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its decoded text, the raw text and its offset in the query string."""

    kind: str
    text: str
    raw: str
    pos: int


def _decode(raw: str, pos: int) -> str:
    if "%" in raw:
        bad = _bad_escape(raw)
        if bad >= 0:
            raise InvalidQuery(f"invalid percent-encoding at position {pos + bad}")
        try:
            return unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise InvalidQuery(f"percent-encoding is not UTF-8 at position {pos}") from None
    return raw


def _bad_escape(raw: str) -> int:
    index = raw.find("%")
    while index >= 0:
        pair = raw[index + 1 : index + 3]
        if len(pair) < 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            return index
        index = raw.find("%", index + 3)
    return -1


def tokenize(qs: str) -> list[Token]:
    """The tokens of ``qs``, ending with an ``END`` token at ``len(qs)``."""
    tokens: list[Token] = []
    i, n = 0, len(qs)
    while i < n:
        c = qs[i]
        if c in _PUNCT:
            tokens.append(Token(c, c, c, i))
            i += 1
        elif c == "=":
            # ``=xx=`` (letters), ``==`` or ``=``.
            j = i + 1
            while j < n and qs[j].isascii() and qs[j].isalpha():
                j += 1
            if j > i + 1 and j < n and qs[j] == "=":
                tokens.append(Token("CMP", qs[i : j + 1], qs[i : j + 1], i))
                i = j + 1
            elif i + 1 < n and qs[i + 1] == "=":
                tokens.append(Token("CMP", "==", "==", i))
                i += 2
            else:
                tokens.append(Token("CMP", "=", "=", i))
                i += 1
        elif c == "!":
            if i + 1 < n and qs[i + 1] == "=":
                tokens.append(Token("CMP", "!=", "!=", i))
                i += 2
            else:
                raise InvalidQuery(f"unexpected '!' at position {i} (did you mean '!='?)")
        else:
            j = i
            while j < n and qs[j] not in _STOP:
                j += 1
            raw = qs[i:j]
            tokens.append(Token("WORD", _decode(raw, i), raw, i))
            i = j
    tokens.append(Token("END", "", "", n))
    return tokens

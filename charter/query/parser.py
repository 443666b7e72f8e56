"""Parse the URL query language (HarperDB's) into a ``Query``: a recursive-descent parser.

Grammar (tokens from ``lexer``; ``&`` and ``|`` may not be mixed at one level)::

    query     := term? (("&" | "|") term?)* END          empty terms only around "&"
    term      := "(" group ")" | "[" group "]" | call | condition
    group     := term (("&" | "|") term)*
    condition := WORD CMP value ("&" SHORTCMP "=" value)*   chained range: price=gt=1&lt=9
    value     := WORD? | WORD "," WORD                     (the second form for =bt= only)
    call      := "sort(" [+-]path ("," [+-]path)* ")" | "limit(" INT ["," INT] ")"
               | "offset(" INT ")" | "explain(" ["true" | "false"] ")" | "select(" items? ")"
    items     := "[" names? "]" | names ;  names := name ("," name)* ;  name := WORD ["{" names "}"]

Values are typed later by the attribute's declared type (``RawValue``) unless written with a
prefix: ``number:`` ``boolean:`` ``string:`` ``date:``; the bare word ``null`` is None. Every
error is an ``InvalidQuery`` naming the character offset in the (encoded) query string.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, Literal, NoReturn

from ..errors import HttpError, InvalidQuery
from ..limits import MAX_GROUP_DEPTH, MAX_QUERY_LENGTH, MAX_SELECT_DEPTH
from .lexer import Token, tokenize
from .model import COMPARATOR_ALIASES, Condition, Group, Query, Select, SelectItem, Sort
from .operators import URL_COMPARATORS

__all__ = ["RawValue", "parse_query_string", "parse_value"]

_FUNCTIONS = frozenset({"sort", "limit", "offset", "select", "explain"})


class RawValue(str):
    """A value as written in the URL, to be typed by its attribute's declared type."""

    __slots__ = ()


def parse_value(raw: str, text: str, pos: int) -> Any:
    """A URL value: prefixed values are typed here, others stay ``RawValue`` for the compiler."""
    if raw == "null":
        return None
    prefix, colon, _ = raw.partition(":")
    if not colon or prefix not in ("number", "boolean", "string", "date"):
        return RawValue(text)
    rest = text[len(prefix) + 1 :]
    if prefix == "string":
        return rest
    if prefix == "number":
        try:
            number = float(rest)
        except ValueError:
            raise InvalidQuery(f"{rest!r} is not a number at position {pos}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise InvalidQuery(f"{rest!r} is not a finite number at position {pos}")
        return int(number) if number.is_integer() and abs(number) < 2**63 else number
    if prefix == "boolean":
        if rest not in ("true", "false"):
            raise InvalidQuery(f"boolean: takes true or false at position {pos}")
        return rest == "true"
    try:
        return dt.datetime.fromisoformat(rest)
    except ValueError:
        raise InvalidQuery(f"{rest!r} is not an ISO 8601 date at position {pos}") from None


class _Parser:
    def __init__(self, qs: str) -> None:
        self.tokens = tokenize(qs)
        self.i = 0
        self.query = Query()
        self.call_token: Token | None = None  # the function being parsed, for error messages
        self.depth = 0  # groups (or nested selects) open around the current token

    # -- token helpers -------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            self.fail(f"expected {what}")
        return self.take()

    def fail(self, message: str, token: Token | None = None) -> NoReturn:
        token = token or self.tok
        found = "the end of the query" if token.kind == "END" else repr(token.raw)
        where = ""
        if self.call_token is not None:
            where = f" (in {self.call_token.text}() at position {self.call_token.pos})"
        raise InvalidQuery(f"{message} at position {token.pos}{where}, found {found}")

    # -- levels ----------------------------------------------------------------------------------

    def parse(self) -> Query:
        terms, operator = self.level(top=True)
        if self.tok.kind != "END":
            self.fail("unexpected (a value holding punctuation must be percent-encoded)")
        self.query.conditions = terms
        self.query.operator = operator
        return self.query

    def level(self, top: bool) -> tuple[list[Condition | Group], Literal["and", "or"]]:
        """Terms joined by one operator, up to a closing bracket (or the end at the top)."""
        terms: list[Condition | Group] = []
        operator: Literal["and", "or"] | None = None
        first_joiner: Token | None = None
        joiner: Token | None = None  # the joiner before the next term
        previous_call = False
        while True:
            if top and self.tok.kind == "&" and (joiner is None or joiner.kind == "&"):
                self.take()  # an empty term: ``a=1&&b=2`` or a trailing ``&``
                continue
            if self.tok.kind in ("END", ")", "]"):
                if joiner is not None and (joiner.kind == "|" or not top):
                    self.fail(f"expected a condition after {joiner.raw!r}")
                if not top and not terms:
                    self.fail("expected a condition")
                break
            is_call = self._is_call()
            if joiner is not None:
                if joiner.kind == "|" and (is_call or previous_call):
                    self.fail("a function is joined with '&', not", joiner)
                if not is_call and not previous_call:
                    op: Literal["and", "or"] = "and" if joiner.kind == "&" else "or"
                    if operator is None:
                        operator, first_joiner = op, joiner
                    elif op != operator:
                        assert first_joiner is not None
                        self.fail(
                            f"'&' and '|' are mixed without a group (the first was"
                            f" {first_joiner.raw!r} at position {first_joiner.pos}); use ( ) or [ ]"
                            ", here",
                            joiner,
                        )
            term = self.term(top)
            if term is not None:
                terms.append(term)
            previous_call = is_call
            if self.tok.kind not in ("&", "|"):
                break
            joiner = self.take()
        return terms, operator or "and"

    def _is_call(self) -> bool:
        return self.tok.kind == "WORD" and self.tok.text in _FUNCTIONS and self.peek().kind == "("

    def term(self, top: bool) -> Condition | Group | None:
        token = self.tok
        if token.kind in ("(", "["):
            if self.depth >= MAX_GROUP_DEPTH:
                self.fail(f"groups nest at most {MAX_GROUP_DEPTH} levels deep")
            self.take()
            closing = ")" if token.kind == "(" else "]"
            self.depth += 1
            terms, operator = self.level(top=False)
            self.depth -= 1
            if self.tok.kind != closing:
                self.fail(f"expected {closing!r} to close the group opened at {token.pos}")
            self.take()
            return terms[0] if len(terms) == 1 else Group(operator, terms)
        if token.kind != "WORD":
            return self.fail("expected a condition")
        if self._is_call():
            if not top:
                self.fail(f"{token.text}() cannot be inside a group")
            self.call()
            return None
        return self.condition()

    # -- conditions ------------------------------------------------------------------------------

    def condition(self) -> Condition | Group:
        attr = self.take()
        if not attr.text or attr.text != attr.text.strip():
            self.fail("an attribute name is expected", attr)
        if self.tok.kind != "CMP":
            if self.tok.kind == "(":
                self.fail(f"unknown function {attr.text}()", attr)
            self.fail(f"expected a comparator after {attr.text!r}")
        path: str | list[str] = attr.text.split(".") if "." in attr.text else attr.text
        if isinstance(path, list) and not all(path):
            self.fail("an attribute path has an empty part", attr)
        first = self.one(path, self.take())
        chain = [first]
        # A chained range: ``price=gt=1&lt=9`` (the second term names a comparator).
        while (
            self.tok.kind == "&"
            and self.peek().kind == "WORD"
            and self.peek().text in COMPARATOR_ALIASES
            and len(self.peek().text) == 2
            and self.peek(2).kind == "CMP"
            and self.peek(2).text == "="
        ):
            self.take()
            name = self.take()
            self.take()
            chain.append(self.one(path, name, COMPARATOR_ALIASES[name.text]))
        return chain[0] if len(chain) == 1 else Group("and", list(chain))

    def one(self, path: str | list[str], cmp: Token, comparator: str | None = None) -> Condition:
        if comparator is None:
            comparator = URL_COMPARATORS.get(cmp.text)
            if comparator is None:
                self.fail(f"unknown comparator {cmp.text!r}", cmp)
        value = self.value(cmp)
        if comparator == "between":
            if self.tok.kind != ",":
                self.fail("=bt= takes two values separated by ','")
            self.take()
            value = [value, self.value(cmp)]
        return Condition(path, comparator, value)

    def value(self, after: Token) -> Any:
        if self.tok.kind == "WORD":
            token = self.take()
            return parse_value(token.raw, token.text, token.pos)
        if self.tok.kind in ("&", "|", ")", "]", "END", ","):
            return RawValue("")
        return self.fail("expected a value (encode it as %XX if it contains punctuation)")

    # -- functions -------------------------------------------------------------------------------

    def call(self) -> None:
        name = self.take()
        self.take()  # "("
        self.call_token = name
        handler = getattr(self, "call_" + name.text)
        handler(name)
        self.expect(")", f"')' to close {name.text}()")
        self.call_token = None

    def args(self) -> list[Token]:
        """Comma-separated words up to ``)``."""
        out: list[Token] = []
        while self.tok.kind == "WORD":
            out.append(self.take())
            if self.tok.kind != ",":
                break
            self.take()
        return out

    def integer(self, token: Token, what: str) -> int:
        text = token.text.strip()
        if not text.isdigit() or not text.isascii():
            self.fail(f"{what} expects a non-negative integer", token)
        if len(text) > 18:
            self.fail(f"{what} is too large", token)
        return int(text)

    def call_sort(self, name: Token) -> None:
        nodes: list[Sort] = []
        for token in self.args():
            text = token.text.strip()
            descending = text.startswith("-")
            attr = text[1:] if text[:1] in "+-" else text
            parts = attr.split(".")
            if not attr or not all(parts):
                self.fail("sort() expects an attribute", token)
            nodes.append(Sort(parts if len(parts) > 1 else attr, descending))
        if not nodes:
            self.fail("sort() expects an attribute")
        for node, nxt in itertools.pairwise(nodes):
            node.next = nxt
        self.query.sort = nodes[0]

    def call_limit(self, name: Token) -> None:
        args = self.args()
        if len(args) == 1:
            self.query.limit = self.integer(args[0], "limit()")
        elif len(args) == 2:
            start, end = self.integer(args[0], "limit()"), self.integer(args[1], "limit()")
            # End before start is an empty page, as in HarperDB (not an error).
            self.query.offset, self.query.limit = start, max(end - start, 0)
        else:
            self.fail("limit() takes one or two integers", args[2] if args else None)

    def call_offset(self, name: Token) -> None:
        args = self.args()
        if len(args) != 1:
            self.fail("offset() takes one integer")
        self.query.offset = self.integer(args[0], "offset()")

    def call_explain(self, name: Token) -> None:
        args = self.args()
        if len(args) > 1 or (args and args[0].text not in ("true", "false")):
            self.fail("explain() takes true or false", args[-1] if args else None)
        self.query.explain = not args or args[0].text == "true"

    def call_select(self, name: Token) -> None:
        # ``select()`` and ``select([])`` select nothing: empty objects (arrays), as in HarperDB.
        if self.tok.kind == ")":
            self.query.select = Select([], "object")
            return
        if self.tok.kind == "[":
            self.take()
            items = self.names("]") if self.tok.kind != "]" else []
            self.expect("]", "']' to close the array select")
            self.query.select = Select(items, "array")
            return
        items = self.names(")")
        mode: Literal["value", "object"] = "value" if len(items) == 1 else "object"
        self.query.select = Select(items, mode)

    def names(self, closing: str) -> list[SelectItem]:
        items: list[SelectItem] = []
        while True:
            token = self.tok
            if token.kind != "WORD" or not token.text.strip():
                self.fail("select() expects an attribute name")
            self.take()
            item = SelectItem(token.text.strip())
            if self.tok.kind == "{":
                if self.depth >= MAX_SELECT_DEPTH:
                    self.fail(f"selects nest at most {MAX_SELECT_DEPTH} levels deep")
                self.take()
                self.depth += 1
                item.select = Select(self.names("}"), "object")
                self.depth -= 1
                self.expect("}", "'}' to close the nested select")
            items.append(item)
            if self.tok.kind != ",":
                return items
            self.take()


def parse_query_string(qs: str) -> Query:
    """A ``Query`` from a raw (percent-encoded) query string.

    414 when it is longer than ``MAX_QUERY_LENGTH``; ``InvalidQuery`` when groups or nested
    selects are deeper than the limits (before anything recurses that deep).
    """
    if len(qs) > MAX_QUERY_LENGTH:
        raise HttpError(
            414,
            f"the query string is {len(qs)} characters; at most {MAX_QUERY_LENGTH} are read",
            code="URI_TOO_LONG",
        )
    return _Parser(qs).parse()

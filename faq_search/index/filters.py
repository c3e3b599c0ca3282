"""Metadata filters: a small grammar, parsed by hand into a typed tree, never evaluated as code.

The grammar (whitespace between tokens is free; keywords are case-insensitive)::

    filter      := or
    or          := and ("or" and)*
    and         := term ("and" term)*
    term        := "(" filter ")" | "not" term | comparison
    comparison  := FIELD ("=" | "!=" | "<" | "<=" | ">" | ">=") VALUE
                 | FIELD ["not"] "in" "(" VALUE ("," VALUE)* ")"
    FIELD, VALUE:= a bare word (letters, digits and ``_ - . : / @ +``) or a quoted text,
                   'single' or "double", where a backslash escapes the quote or a backslash

``plan=enterprise and country in (DE, AT)``, ``not (tags = beta)``,
``"product name" = 'Pro 2'``, ``price <= 20``. ``and`` binds tighter than
``or``. Equality on a list column means "holds this item". ``!=`` and
``not in`` are the negations of ``=`` and ``in``, so an entry without the
field passes them.

What it is not: an expression language. There are no function calls, no
arithmetic and nothing that reaches Python's ``eval``; the tokenizer accepts
only the characters above, and the parser is bounded (:data:`MAX_CHARS`,
:data:`MAX_DEPTH`, :data:`MAX_TERMS`) without recursion on the input's
nesting, so a hostile filter costs microseconds and gets one line of error.
Meaning (which fields exist, their types, known values) is checked against an
index's columns by :mod:`faq_search.index.columns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from faq_search.errors import InputError

MAX_CHARS = 4000
"""Longest filter text accepted."""
MAX_DEPTH = 32
"""Deepest nesting of parentheses and ``not``."""
MAX_TERMS = 256
"""Most comparisons, and most values in one ``in (...)`` list."""

OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
KEYWORDS = frozenset({"and", "or", "not", "in"})
_BARE = frozenset("_-.:/@+")


class FilterError(InputError):
    """A filter that cannot be parsed or does not fit the index's columns: one line naming the fix."""


@dataclass(frozen=True)
class Comparison:
    """``field op value``; for ``in``, ``values`` holds the list (``op`` is ``in``)."""

    field: str
    op: str  # one of OPERATORS, or "in"
    values: tuple[str, ...]


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Comparison | Not | And | Or


@dataclass(frozen=True)
class Token:
    kind: str  # "word" (bare), "text" (quoted), "op", "(", ")", ",", "end"
    text: str
    at: int  # character position, for messages


def tokenize(source: str) -> list[Token]:
    """The tokens of a filter: ``plan = "a b"`` -> word ``plan``, op ``=``, text ``a b``, end."""
    if not isinstance(source, str):
        raise FilterError(f"a filter must be text, not {type(source).__name__}")
    if len(source) > MAX_CHARS:
        raise FilterError(f"the filter is {len(source)} characters long, at most {MAX_CHARS}; shorten it")
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        char = source[position]
        if char.isspace():
            position += 1
        elif char in "(),":
            tokens.append(Token(char, char, position))
            position += 1
        elif char in "=!<>":
            two = source[position : position + 2]
            op = two if two in OPERATORS else char
            if op not in OPERATORS:
                raise FilterError(f"'{char}' at character {position + 1} is not an operator; use =, !=, <, <=, >, >=")
            tokens.append(Token("op", op, position))
            position += len(op)
        elif char in "'\"":
            text, position = _quoted(source, position)
            tokens.append(Token("text", text, position))
        elif char.isalnum() or char in _BARE:
            start = position
            while position < len(source) and (source[position].isalnum() or source[position] in _BARE):
                position += 1
            tokens.append(Token("word", source[start:position], start))
        else:
            raise FilterError(
                f"character {char!r} at position {position + 1} is not allowed in a filter; quote values that hold it"
            )
    tokens.append(Token("end", "", len(source)))
    return tokens


def _quoted(source: str, start: int) -> tuple[str, int]:
    """The text of the quoted string opening at ``start`` and the position after it."""
    quote = source[start]
    out: list[str] = []
    position = start + 1
    while position < len(source):
        char = source[position]
        if char == "\\" and position + 1 < len(source) and source[position + 1] in (quote, "\\"):
            out.append(source[position + 1])
            position += 2
        elif char == quote:
            return "".join(out), position + 1
        else:
            out.append(char)
            position += 1
    raise FilterError(f"the quote opened at character {start + 1} is never closed; close it with {quote}")


class _Parser:
    """Recursive descent over :func:`tokenize`'s tokens, bounded by :data:`MAX_DEPTH` and :data:`MAX_TERMS`."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0
        self.terms = 0

    def peek(self) -> Token:
        return self.tokens[self.position]

    def next(self) -> Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() == word

    def expect(self, kind: str, what: str) -> Token:
        token = self.next()
        if token.kind != kind:
            raise FilterError(f"expected {what} at character {token.at + 1}, found {_shown(token)}")
        return token

    def parse(self) -> Node:
        node = self.disjunction(0)
        token = self.peek()
        if token.kind != "end":
            raise FilterError(
                f"unexpected {_shown(token)} at character {token.at + 1}; join conditions with 'and' or 'or'"
            )
        return node

    def disjunction(self, depth: int) -> Node:
        operands = [self.conjunction(depth)]
        while self.keyword("or"):
            self.next()
            operands.append(self.conjunction(depth))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self, depth: int) -> Node:
        operands = [self.term(depth)]
        while self.keyword("and"):
            self.next()
            operands.append(self.term(depth))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def term(self, depth: int) -> Node:
        if depth >= MAX_DEPTH:
            raise FilterError(f"the filter nests deeper than {MAX_DEPTH} levels; simplify it")
        token = self.peek()
        if token.kind == "(":
            self.next()
            node = self.disjunction(depth + 1)
            self.expect(")", "')'")
            return node
        if self.keyword("not"):
            self.next()
            return Not(self.term(depth + 1))
        return self.comparison()

    def comparison(self) -> Node:
        field = self.value("a field name")
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise FilterError(f"the filter has more than {MAX_TERMS} conditions; use 'in (...)' or fewer conditions")
        token = self.next()
        if token.kind == "op":
            return Comparison(field, token.text, (self.value("a value"),))
        negated = token.kind == "word" and token.text.lower() == "not"
        if negated:
            token = self.next()
        if token.kind == "word" and token.text.lower() == "in":
            values = self.value_list()
            node = Comparison(field, "in", values)
            return Not(node) if negated else node
        raise FilterError(
            f"expected an operator (=, !=, <, <=, >, >=, in) after {field!r} at character {token.at + 1}, "
            f"found {_shown(token)}"
        )

    def value_list(self) -> tuple[str, ...]:
        self.expect("(", "'(' after 'in'")
        values = [self.value("a value")]
        while self.peek().kind == ",":
            self.next()
            values.append(self.value("a value"))
            if len(values) > MAX_TERMS:
                raise FilterError(f"an 'in' list holds more than {MAX_TERMS} values; shorten it")
        self.expect(")", "')' or ',' in the 'in' list")
        return tuple(values)

    def value(self, what: str) -> str:
        token = self.next()
        if token.kind == "text" or (token.kind == "word" and token.text.lower() not in KEYWORDS):
            return token.text
        hint = " (quote it to use it as a value)" if token.kind == "word" else ""
        raise FilterError(f"expected {what} at character {token.at + 1}, found {_shown(token)}{hint}")


def _shown(token: Token) -> str:
    if token.kind == "end":
        return "the end of the filter"
    return repr(token.text[:40])


def parse(source: str) -> Node:
    """The tree of one filter text; :class:`FilterError` with the position and the fix when it is not one.

    ``parse("plan=pro and country in (DE, AT)")`` ->
    ``And((Comparison("plan", "=", ("pro",)), Comparison("country", "in", ("DE", "AT"))))``
    """
    tokens = tokenize(source)
    if tokens[0].kind == "end":
        raise FilterError("the filter is empty; write a condition such as plan=enterprise")
    return _Parser(tokens).parse()


def parse_all(sources: str | Sequence[str]) -> Node:
    """Several filters (``--where`` given more than once) joined with ``and``; one text is parsed as is."""
    if isinstance(sources, str):
        return parse(sources)
    if not sources:
        raise FilterError("no filter given; write a condition such as plan=enterprise")
    nodes = tuple(parse(source) for source in sources)
    return nodes[0] if len(nodes) == 1 else And(nodes)


def fields_of(node: Node) -> list[str]:
    """Every field a filter names, in order of appearance (iterative: no recursion on the tree's depth)."""
    out: list[str] = []
    stack: list[Node] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Comparison):
            out.append(item.field)
        elif isinstance(item, Not):
            stack.append(item.operand)
        else:
            stack.extend(reversed(item.operands))
    return out

"""A small, safe boolean expression language for ``where:`` conditions, compiled to polars expressions.

Admins write SQL-like conditions in YAML (``abc = 'A' AND revenue_365d >= 1000000``). They are parsed by
a recursive-descent parser into a tiny AST and compiled to a vectorized :class:`polars.Expr` — no Python
``eval``, no attribute access, no function calls, so a rules file cannot run code.

Grammar (keywords case-insensitive)::

    expr       := or
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | predicate
    predicate  := operand [ cmp_op operand
                          | ["NOT"] "IN" "(" literal ("," literal)* ")"
                          | "IS" ["NOT"] "NULL" ]
    operand    := literal | column | "(" expr ")"
    cmp_op     := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal    := number | 'string' | TRUE | FALSE | NULL

Numbers may use ``_`` separators (``1_000_000``) and a leading minus. Strings use single quotes; a quote
inside is doubled (``'O''Brien'``). Date columns compare with ``'YYYY-MM-DD'`` strings. Comparisons with a
missing value are unknown, and unknown counts as false (SQL semantics): ``NOT (x > 1)`` does not select rows
where ``x`` is NULL — use ``IS NULL`` for those.

Every error names the offending token and its 1-based position in the text.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import polars as pl

from segsync.errors import ExpressionError

ColumnType = Literal["num", "str", "bool", "date", "any"]

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>-?(?:\d[\d_]*(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<badstring>'[^']*$)
  | (?P<op><=|>=|<>|!=|==|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Token:
    kind: str  # number | string | op | lparen | rparen | comma | ident | keyword | end
    text: str
    position: int  # 1-based
    value: Any = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(
                f"unexpected character {text[pos]!r} at position {pos + 1}", token=text[pos], position=pos + 1
            )
        kind = match.lastgroup or ""
        lexeme = match.group()
        if kind == "badstring":
            raise ExpressionError(f"unterminated string at position {pos + 1}", token=lexeme, position=pos + 1)
        if kind == "number":
            clean = lexeme.replace("_", "")
            value: Any = float(clean) if any(c in clean for c in ".eE") else int(clean)
            tokens.append(Token("number", lexeme, pos + 1, value))
        elif kind == "string":
            tokens.append(Token("string", lexeme, pos + 1, lexeme[1:-1].replace("''", "'")))
        elif kind == "ident":
            upper = lexeme.upper()
            if upper in _KEYWORDS:
                tokens.append(Token("keyword", upper, pos + 1, lexeme))
            else:
                tokens.append(Token("ident", lexeme, pos + 1, lexeme))
        elif kind != "ws":
            tokens.append(Token(kind, lexeme, pos + 1))
        pos = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


# -------------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Column:
    name: str
    position: int


@dataclass(frozen=True)
class Literal_:
    value: Any  # int | float | str | bool | None
    position: int


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node
    position: int


@dataclass(frozen=True)
class InList:
    operand: Node
    values: tuple[Literal_, ...]
    negated: bool
    position: int


@dataclass(frozen=True)
class IsNull:
    operand: Node
    negated: bool
    position: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Column | Literal_ | Compare | InList | IsNull | BoolOp | Not


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _is_kw(self, word: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.text == word

    def _error(self, expected: str, token: Token | None = None) -> ExpressionError:
        token = token or self.tok
        if token.kind == "end":
            return ExpressionError(
                f"expected {expected} but the condition ends at position {token.position}",
                token="",
                position=token.position,
            )
        return ExpressionError(
            f"expected {expected}, got {token.text!r} at position {token.position}",
            token=token.text,
            position=token.position,
        )

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExpressionError("the condition is empty", token="", position=1)
        node = self._or()
        if self.tok.kind != "end":
            raise self._error("AND, OR or the end of the condition")
        return node

    def _or(self) -> Node:
        items = [self._and()]
        while self._is_kw("OR"):
            self._advance()
            items.append(self._and())
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def _and(self) -> Node:
        items = [self._not()]
        while self._is_kw("AND"):
            self._advance()
            items.append(self._not())
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def _not(self) -> Node:
        if self._is_kw("NOT"):
            self._advance()
            return Not(self._not())
        return self._predicate()

    def _predicate(self) -> Node:
        left = self._operand()
        tok = self.tok
        if tok.kind == "op":
            self._advance()
            right = self._operand()
            return Compare({"==": "=", "<>": "!="}.get(tok.text, tok.text), left, right, tok.position)
        if self._is_kw("IS"):
            self._advance()
            negated = False
            if self._is_kw("NOT"):
                self._advance()
                negated = True
            if not self._is_kw("NULL"):
                raise self._error("NULL after IS")
            self._advance()
            return IsNull(left, negated, tok.position)
        negated = False
        if self._is_kw("NOT"):
            self._advance()
            negated = True
            if not self._is_kw("IN"):
                raise self._error("IN after NOT")
        if self._is_kw("IN"):
            in_tok = self._advance()
            if self.tok.kind != "lparen":
                raise self._error("'(' after IN")
            self._advance()
            values = [self._literal()]
            while self.tok.kind == "comma":
                self._advance()
                values.append(self._literal())
            if self.tok.kind != "rparen":
                raise self._error("',' or ')' in the IN list")
            self._advance()
            return InList(left, tuple(values), negated, in_tok.position)
        return left

    def _operand(self) -> Node:
        tok = self.tok
        if tok.kind == "lparen":
            self._advance()
            node = self._or()
            if self.tok.kind != "rparen":
                raise self._error("')'")
            self._advance()
            return node
        if tok.kind == "ident":
            self._advance()
            return Column(tok.text, tok.position)
        if tok.kind in ("number", "string") or (tok.kind == "keyword" and tok.text in ("TRUE", "FALSE", "NULL")):
            return self._literal()
        raise self._error("a column name, a value or '('")

    def _literal(self) -> Literal_:
        tok = self.tok
        if tok.kind in ("number", "string"):
            self._advance()
            return Literal_(tok.value, tok.position)
        if tok.kind == "keyword" and tok.text in ("TRUE", "FALSE", "NULL"):
            self._advance()
            return Literal_({"TRUE": True, "FALSE": False, "NULL": None}[tok.text], tok.position)
        raise self._error("a value (number, 'text', TRUE, FALSE or NULL)")


# -------------------------------------------------------------------------------------------------- typing


def _literal_type(value: Any) -> ColumnType | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    return "str"


class _Checker:
    """Resolves columns and checks operand types, so that mistakes surface at ``check-config`` time."""

    def __init__(self, text: str, columns: Mapping[str, ColumnType] | None):
        self.text = text
        self.columns = columns
        self.used: list[str] = []

    def column_type(self, node: Column) -> ColumnType:
        if node.name not in self.used:
            self.used.append(node.name)
        if self.columns is None:
            return "any"
        if node.name in self.columns:
            return self.columns[node.name]
        close = difflib.get_close_matches(node.name, list(self.columns), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ExpressionError(
            f"unknown column {node.name!r} at position {node.position}{hint}", token=node.name, position=node.position
        )

    def type_of(self, node: Node) -> ColumnType | None:
        if isinstance(node, Column):
            return self.column_type(node)
        if isinstance(node, Literal_):
            return _literal_type(node.value)
        self.boolean(node)
        return "bool"

    def boolean(self, node: Node) -> None:
        """``node`` is used where a true/false value is needed."""
        if isinstance(node, BoolOp):
            for item in node.items:
                self.boolean(item)
        elif isinstance(node, Not):
            self.boolean(node.item)
        elif isinstance(node, Column):
            kind = self.column_type(node)
            if kind not in ("bool", "any"):
                raise ExpressionError(
                    f"column {node.name!r} at position {node.position} is {_WORDS[kind]}, not true/false; "
                    f"compare it with something (e.g. {node.name} = ...)",
                    token=node.name,
                    position=node.position,
                )
        elif isinstance(node, Literal_):
            if not isinstance(node.value, bool):
                raise ExpressionError(
                    f"value {_show(node.value)} at position {node.position} is not a condition",
                    token=_show(node.value),
                    position=node.position,
                )
        elif isinstance(node, Compare):
            left, right = self.type_of(node.left), self.type_of(node.right)
            if (isinstance(node.left, Literal_) and node.left.value is None) or (
                isinstance(node.right, Literal_) and node.right.value is None
            ):
                raise ExpressionError(
                    f"comparison with NULL at position {node.position} is never true; use IS NULL / IS NOT NULL",
                    token=node.op,
                    position=node.position,
                )
            self._compatible(left, right, node.right if isinstance(node.right, Literal_) else node.left, node)
            if node.op not in ("=", "!=") and "bool" in (left, right):
                raise ExpressionError(
                    f"operator {node.op!r} at position {node.position} does not apply to true/false values",
                    token=node.op,
                    position=node.position,
                )
        elif isinstance(node, InList):
            kind = self.type_of(node.operand)
            for value in node.values:
                if value.value is None:
                    raise ExpressionError(
                        f"NULL in an IN list at position {value.position} never matches; use IS NULL",
                        token="NULL",
                        position=value.position,
                    )
                self._compatible(kind, _literal_type(value.value), value, node)
        elif isinstance(node, IsNull):
            self.type_of(node.operand)

    def _compatible(self, left: ColumnType | None, right: ColumnType | None, culprit: Node, node: Node) -> None:
        if left is None or right is None or "any" in (left, right) or left == right:
            return
        if {left, right} == {"date", "str"} and isinstance(culprit, Literal_):
            if not _DATE.match(str(culprit.value)):
                raise ExpressionError(
                    f"date value {_show(culprit.value)} at position {culprit.position} must look like 'YYYY-MM-DD'",
                    token=_show(culprit.value),
                    position=culprit.position,
                )
            try:
                date.fromisoformat(str(culprit.value))
            except ValueError:
                raise ExpressionError(
                    f"{_show(culprit.value)} at position {culprit.position} is not a real date",
                    token=_show(culprit.value),
                    position=culprit.position,
                ) from None
            return
        position = getattr(culprit, "position", getattr(node, "position", 1))
        token = _show(culprit.value) if isinstance(culprit, Literal_) else getattr(culprit, "name", "")
        raise ExpressionError(
            f"cannot compare {_WORDS[left]} with {_WORDS[right]}: {token} at position {position}",
            token=token,
            position=position,
        )


_WORDS: dict[str, str] = {"num": "a number", "str": "text", "bool": "true/false", "date": "a date", "any": "a value"}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return "NULL" if value is None else str(value)


# -------------------------------------------------------------------------------------------------- compile


@dataclass(frozen=True)
class Expression:
    """A parsed, checked condition; :meth:`to_polars` gives a boolean expression (NULL → false)."""

    text: str
    root: Node
    columns: tuple[str, ...]
    types: Mapping[str, ColumnType] | None = None

    def to_polars(self) -> pl.Expr:
        return _compile(self.root, self.types).fill_null(False)

    def evaluate(self, frame: pl.DataFrame) -> pl.Series:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ExpressionError(f"column {missing[0]!r} is not available in this data", token=missing[0])
        return frame.with_columns(self.to_polars().alias("__match__"))["__match__"].alias("match")


def parse(text: str, columns: Mapping[str, ColumnType] | None = None) -> Expression:
    """Parse and check ``text``; ``columns`` (name → type) makes unknown names and type mismatches errors."""
    if not isinstance(text, str):
        raise ExpressionError("the condition must be text", token=str(text), position=1)
    root = _Parser(text).parse()
    checker = _Checker(text, columns)
    checker.boolean(root)
    return Expression(text=text, root=root, columns=tuple(checker.used), types=columns)


def _lit(value: Any, kind: ColumnType | None) -> pl.Expr:
    if kind == "date" and isinstance(value, str):
        return pl.lit(datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC))
    return pl.lit(value)


def _operand(node: Node, other_kind: ColumnType | None, types: Mapping[str, ColumnType] | None) -> pl.Expr:
    if isinstance(node, Column):
        expr = pl.col(node.name)
        kind = types.get(node.name) if types else None
        if kind == "any" and other_kind in ("num", "str"):
            return expr.cast(pl.Float64 if other_kind == "num" else pl.String, strict=False)
        return expr
    if isinstance(node, Literal_):
        return _lit(node.value, other_kind)
    return _compile(node, types)


def _kind(node: Node, types: Mapping[str, ColumnType] | None) -> ColumnType | None:
    if isinstance(node, Column):
        return types.get(node.name) if types else None
    if isinstance(node, Literal_):
        return _literal_type(node.value)
    return "bool"


def _compile(node: Node, types: Mapping[str, ColumnType] | None) -> pl.Expr:
    if isinstance(node, BoolOp):
        parts = [_compile(item, types) for item in node.items]
        out = parts[0]
        for part in parts[1:]:
            out = (out & part) if node.op == "AND" else (out | part)
        return out
    if isinstance(node, Not):
        return ~_compile(node.item, types)
    if isinstance(node, Column):
        if types is not None and types.get(node.name) == "any":  # a mapped CRM field used as a flag
            text = pl.col(node.name).cast(pl.String, strict=False).str.to_lowercase()
            return text.is_in(["true", "1", "yes", "y", "да"])
        return pl.col(node.name)
    if isinstance(node, Literal_):
        return pl.lit(bool(node.value))
    if isinstance(node, Compare):
        left_kind, right_kind = _kind(node.left, types), _kind(node.right, types)
        left = _operand(node.left, right_kind, types)
        right = _operand(node.right, left_kind, types)
        return {
            "=": left.eq(right),
            "!=": left.ne(right),
            "<": left.lt(right),
            "<=": left.le(right),
            ">": left.gt(right),
            ">=": left.ge(right),
        }[node.op]
    if isinstance(node, InList):
        sample = node.values[0].value
        operand = _operand(node.operand, _literal_type(sample), types)
        values = [v.value for v in node.values]
        if _kind(node.operand, types) == "date":
            values = [datetime.combine(date.fromisoformat(v), datetime.min.time(), tzinfo=UTC) for v in values]
        elif _literal_type(sample) == "num":  # one numeric type on both sides: is_in is strict about dtypes
            operand = operand.cast(pl.Float64, strict=False)
            values = [float(v) for v in values]
        matched = operand.is_in(pl.lit(pl.Series(values)).implode())
        # SQL: NULL IN (...) is unknown, not false
        matched = pl.when(operand.is_null()).then(None).otherwise(matched)
        return ~matched if node.negated else matched
    if isinstance(node, IsNull):
        operand = _operand(node.operand, None, types)
        return operand.is_not_null() if node.negated else operand.is_null()
    raise TypeError(f"unknown node {node!r}")  # pragma: no cover

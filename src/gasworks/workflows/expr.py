"""The router language: small, safe boolean conditions over the run state.

``state.intent === 'greeting'``, ``state.slots.email != null && state.turn < 3``,
``state.score >= 0.7 || state.vip``, ``!state.done``, ``state.plan in ['pro', 'team']``.

A lark LALR grammar parses an expression once (at publish/load time) into a tree of whitelisted
operations, which is then turned into nested Python closures: evaluation never uses ``eval``,
never touches an attribute (paths are dictionary/list lookups inside ``state`` only), never calls
anything, and never raises (comparisons between unrelated types are simply false). Size is
bounded (characters and operations). Every failure is an :class:`ExpressionInvalid` with the
1-based column of the problem.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from gasworks.errors import ExpressionInvalid

MAX_LENGTH = 1000
MAX_OPERATIONS = 200

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> not_
         | comparison
?comparison: operand (COMP_OP operand)?
           | operand _IN operand -> in_
           | operand _NOT_IN operand -> not_in
?operand: path
        | literal
        | list
        | "(" or_expr ")"
path: _STATE ("." SEGMENT)*
list: "[" [literal ("," literal)*] "]"
literal: STRING -> string
       | NUMBER -> number
       | _TRUE -> true
       | _FALSE -> false
       | _NULL -> null

_OR: "||"
_AND: "&&"
_NOT: "!"
COMP_OP: "===" | "!==" | "==" | "!=" | ">=" | "<=" | ">" | "<"
_NOT_IN.2: /not\s+in\b/
_IN.2: /in\b/
_STATE.2: /state\b/
_TRUE.2: /true\b/
_FALSE.2: /false\b/
_NULL.2: /null\b/
SEGMENT: /[A-Za-z_][A-Za-z0-9_]*|[0-9]+/
STRING: /'(?:[^'\\\n]|\\.)*'/ | /"(?:[^"\\\n]|\\.)*"/
NUMBER: /-?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?/

%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)

Evaluator = Callable[[Mapping[str, Any]], Any]


class Expression:
    """A parsed, compiled condition. ``evaluate(state)`` returns its value; ``test`` a bool."""

    __slots__ = ("_fn", "paths", "source")

    def __init__(self, source: str, fn: Evaluator, paths: list[tuple[str, ...]]) -> None:
        self.source = source
        self._fn = fn
        #: every ``state.…`` path the expression reads (for docs and validation)
        self.paths = paths

    def evaluate(self, state: Mapping[str, Any]) -> Any:
        return self._fn(state)

    def test(self, state: Mapping[str, Any]) -> bool:
        return _truthy(self._fn(state))

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expression(source: str) -> Expression:
    """Parse and compile ``source``; raise :class:`ExpressionInvalid` (with column) on error."""
    if not isinstance(source, str):
        raise ExpressionInvalid("A condition must be a string.", details={"column": 1})
    if len(source) > MAX_LENGTH:
        raise _error(f"The condition is longer than {MAX_LENGTH} characters.", MAX_LENGTH + 1)
    if not source.strip():
        raise _error("The condition is empty.", 1)
    try:
        tree = _PARSER.parse(source)
    except UnexpectedEOF:
        raise _error("The condition ends too early.", len(source) + 1) from None
    except UnexpectedCharacters as exc:
        pos = exc.pos_in_stream if isinstance(exc.pos_in_stream, int) else 0
        raise _error(f"Unexpected character {source[pos]!r}.", exc.column) from None
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        column = getattr(exc, "column", None)
        at_end = token is None or getattr(token, "type", "") == "$END" or not str(token)
        text = "end of input" if at_end else str(token)
        if at_end or not isinstance(column, int) or column < 1:
            column = len(source) + 1
        raise _error(f"Unexpected {text!r}.", column) from None
    except (LarkError, RecursionError):
        raise _error("The condition could not be parsed.", 1) from None
    builder = _Builder(source)
    try:
        fn = builder.build(tree)
    except RecursionError:
        raise _error("The condition is nested too deeply.", 1) from None
    return Expression(source, fn, builder.paths)


def _error(message: str, column: int) -> ExpressionInvalid:
    return ExpressionInvalid(f"{message} (column {column})", details={"column": column})


# --- evaluation semantics (total: never raise) ----------------------------------------------


def _truthy(v: Any) -> bool:
    return v is not None and v is not False and v != 0 and v != "" and v != [] and v != {}


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _eq(a: Any, b: Any) -> bool:
    """Strict equality: no coercion between numbers, booleans and strings."""
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover - exotic values cannot come from JSON state
        return False


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def cmp(a: Any, b: Any) -> bool:
        if (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)):
            return bool(op(a, b))
        return False

    return cmp


def _contains(item: Any, container: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple):
        return any(_eq(item, x) for x in container)
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    return False


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "===": _eq,
    "==": _eq,
    "!==": lambda a, b: not _eq(a, b),
    "!=": lambda a, b: not _eq(a, b),
    ">": _ordered(operator.gt),
    ">=": _ordered(operator.ge),
    "<": _ordered(operator.lt),
    "<=": _ordered(operator.le),
}


def _lookup(state: Mapping[str, Any], segments: Sequence[str]) -> Any:
    cur: Any = state
    for seg in segments:
        if isinstance(cur, Mapping):
            cur = cur.get(seg)
        elif isinstance(cur, list) and seg.isdigit():
            i = int(seg)
            cur = cur[i] if i < len(cur) else None
        else:
            return None
        if cur is None:
            return None
    return cur


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    it = iter(body)
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
    for ch in it:
        if ch == "\\":
            nxt = next(it, "")
            out.append(escapes.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


class _Builder:
    """Turns the parse tree into closures; only the node kinds below exist."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.paths: list[tuple[str, ...]] = []
        self.ops = 0

    def build(self, node: Tree[Token] | Token) -> Evaluator:
        self.ops += 1
        if self.ops > MAX_OPERATIONS:
            raise _error(f"The condition has more than {MAX_OPERATIONS} operations.", 1)
        if isinstance(node, Token):  # pragma: no cover - the grammar wraps every token
            raise _error("Unexpected token.", node.column or 1)
        kind = node.data
        ch = node.children
        if kind == "or_expr":
            parts = [self.build(c) for c in ch]
            return lambda s: next((v for p in parts if _truthy(v := p(s))), parts[-1](s))
        if kind == "and_expr":
            parts = [self.build(c) for c in ch]
            return lambda s: all(_truthy(p(s)) for p in parts)
        if kind == "not_":
            inner = self.build(ch[0])
            return lambda s: not _truthy(inner(s))
        if kind == "comparison":
            left, op, right = self.build(ch[0]), _COMPARE[str(ch[1])], self.build(ch[2])
            return lambda s: op(left(s), right(s))
        if kind == "in_":
            item, box = self.build(ch[0]), self.build(ch[1])
            return lambda s: _contains(item(s), box(s))
        if kind == "not_in":
            item, box = self.build(ch[0]), self.build(ch[1])
            return lambda s: not _contains(item(s), box(s))
        if kind == "path":
            segments = tuple(str(t) for t in ch)
            self.paths.append(segments)
            if len(segments) == 1:
                key = segments[0]
                return lambda s: s.get(key)
            return lambda s: _lookup(s, segments)
        if kind == "list":
            values = [self._literal(c) for c in ch if c is not None]
            return lambda s: values
        value = self._literal(node)
        return lambda s: value

    def _literal(self, node: Tree[Token] | Token) -> Any:
        if isinstance(node, Token):  # pragma: no cover
            raise _error("Unexpected token.", node.column or 1)
        kind = node.data
        if kind == "string":
            return _unquote(str(node.children[0]))
        if kind == "number":
            tok = node.children[0]
            col = tok.column if isinstance(tok, Token) and tok.column else 1
            raw = str(tok)
            try:
                f = float(raw)
            except ValueError:  # pragma: no cover - the regex only admits valid numbers
                raise _error(f"Invalid number {raw!r}.", col) from None
            if f != f or f in (float("inf"), float("-inf")):
                raise _error(f"Number {raw!r} is out of range.", col)
            return int(raw) if raw.lstrip("-").isdigit() else f
        if kind == "true":
            return True
        if kind == "false":
            return False
        if kind == "null":
            return None
        raise _error(f"Unsupported element {kind!r}.", 1)  # pragma: no cover

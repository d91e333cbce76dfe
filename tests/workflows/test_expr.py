"""The router language: semantics, safety, errors with columns, property tests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gasworks.errors import ExpressionInvalid
from gasworks.workflows.expr import MAX_LENGTH, MAX_OPERATIONS, compile_expression

STATE: dict[str, Any] = {
    "intent": "greeting",
    "slots": {"email": "a@b.co", "name": None},
    "turn": 2,
    "score": 0.8,
    "vip": False,
    "plan": "pro",
    "tags": ["x", "y"],
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("state.intent === 'greeting'", True),
        ('state.intent == "other"', False),
        ("state.slots.email != null && state.turn < 3", True),
        ("state.slots.name != null", False),
        ("state.score >= 0.7 || state.vip", True),
        ("!state.vip", True),
        ("!(state.turn > 1)", False),
        ("state.plan in ['pro', 'team']", True),
        ("'x' in state.tags", True),
        ("state.plan not in ['pro']", False),
        ("state.missing.deep.path === null", True),
        ("state.turn === 2 && state.score < 1 && state.intent !== 'bye'", True),
        ("state.tags.1 === 'y'", True),
        ("state.turn == '2'", False),  # no coercion
        ("state.intent > 3", False),  # unrelated types compare false, never raise
        ("true && !false && null == null", True),
        ("-1.5e2 < state.turn", True),
    ],
)
def test_semantics(source: str, expected: bool) -> None:
    assert compile_expression(source).test(STATE) is expected


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("state.intent === ", 18),
        ("state.a == 1 == 2", 14),
        ("foo.bar", 1),
        ("state.a && #", 12),
        ("state.f()", 8),
        ("state['x']", 6),
    ],
)
def test_errors_point_at_the_column(source: str, column: int) -> None:
    with pytest.raises(ExpressionInvalid) as e:
        compile_expression(source)
    assert e.value.details["column"] == column
    assert f"column {column}" in e.value.message


def test_no_access_outside_state() -> None:
    # paths are dictionary lookups: attribute names of Python objects are simply missing keys
    assert compile_expression("state.__class__ === null").test(STATE)
    assert compile_expression("state.slots.__dict__ === null").test(STATE)
    with pytest.raises(ExpressionInvalid):
        compile_expression("__import__('os')")


def test_size_is_bounded() -> None:
    with pytest.raises(ExpressionInvalid):
        compile_expression("state.a || " * (MAX_LENGTH // 11 + 1) + "state.b")
    with pytest.raises(ExpressionInvalid, match="operations"):
        compile_expression("||".join(["1"] * (MAX_OPERATIONS + 1)))
    with pytest.raises(ExpressionInvalid):  # deep nesting: the language's error, no RecursionError
        compile_expression("!" * 990 + "state.a")
    assert compile_expression("(" * 400 + "state.a" + ")" * 400).test({"a": 1})


def test_paths_are_reported() -> None:
    assert compile_expression("state.a.b == state.c").paths == [("a", "b"), ("c",)]


TOKENS = st.sampled_from(
    [
        "state",
        ".",
        "a",
        "slots",
        "0",
        "===",
        "!==",
        "==",
        "!=",
        ">=",
        "<",
        "&&",
        "||",
        "!",
        "in",
        "not in",
        "(",
        ")",
        "[",
        "]",
        ",",
        "'s'",
        '"d"',
        "1",
        "-2.5",
        "true",
        "null",
        " ",
        "'",
        "\\",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_the_language_error(source: str) -> None:
    try:
        compile_expression(source)
    except ExpressionInvalid as e:
        assert isinstance(e.details["column"], int)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "slots", "0"]), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(TOKENS, max_size=25).map(" ".join),
    st.dictionaries(st.sampled_from(["a", "slots", "turn"]), JSON),
)
def test_token_soup_parses_or_fails_cleanly_and_evaluation_never_raises(
    source: str, state: dict[str, Any]
) -> None:
    try:
        expr = compile_expression(source)
    except ExpressionInvalid:
        return
    assert isinstance(expr.test(state), bool)

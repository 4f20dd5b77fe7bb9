"""The where-expression language: grammar, SQL null semantics, typed errors with token and position."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync.errors import ExpressionError
from segsync.segments.columns import FEATURE_COLUMNS, where_columns
from segsync.segments.expr import parse

COLUMNS = where_columns(fields=["tariff"], segments=["big"])
FRAME = pl.DataFrame(
    {
        "abc": ["A", "B", None, "A", "C"],
        "revenue_365d": [2_000_000.0, 500_000.0, None, 1_000_000.0, 0.0],
        "churn_flag": [True, False, None, False, True],
        "purchases": [1, 2, 3, None, 0],
        "tariff": ["gold", "5", None, "x", "GOLD"],
        "big": [True, False, False, True, None],
        "first_purchase": [
            datetime(2024, 1, 1, tzinfo=UTC),
            datetime(2025, 1, 1, tzinfo=UTC),
            None,
            datetime(2023, 6, 1, tzinfo=UTC),
            None,
        ],
        "rfm": ["champions", "lost", "none", "o'brien", None],
    }
)


def run(text: str) -> list[bool]:
    return parse(text, COLUMNS).evaluate(FRAME).to_list()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc = 'A' AND revenue_365d >= 1_000_000", [True, False, False, True, False]),
        ("abc == 'A' and revenue_365d > 1e6", [True, False, False, False, False]),
        ("churn_flag AND abc IN ('A', 'B')", [True, False, False, False, False]),
        ("churn_flag OR abc = 'B'", [True, True, False, False, True]),
        ("NOT churn_flag", [False, True, False, True, False]),
        ("NOT (abc NOT IN ('A'))", [True, False, False, True, False]),
        ("abc <> 'A'", [False, True, False, False, True]),
        ("abc IS NULL OR purchases IN (1, 2.5)", [True, False, True, False, False]),
        ("purchases IS NOT NULL AND purchases < 2", [True, False, False, False, True]),
        ("tariff = 'gold'", [True, False, False, False, False]),
        ("tariff = 5", [False, True, False, False, False]),
        ("big AND NOT churn_flag", [False, False, False, True, False]),
        ("first_purchase >= '2024-01-01'", [True, True, False, False, False]),
        ("first_purchase IN ('2023-06-01')", [False, False, False, True, False]),
        ("rfm = 'o''brien'", [False, False, False, True, False]),
        ("TRUE", [True] * 5),
        ("(abc = 'A' OR abc = 'B') AND (purchases >= 2 OR churn_flag = TRUE)", [True, True, False, False, False]),
        ("revenue_365d > -1", [True, True, False, True, True]),
    ],
)
def test_evaluates_like_sql(text, expected):
    assert run(text) == expected


@pytest.mark.parametrize(
    ("text", "token", "position", "words"),
    [
        ("abc = 'A' AND revnue_365d > 1", "revnue_365d", 15, "did you mean 'revenue_365d'"),
        ("abc = 1", "1", 7, "cannot compare text with a number"),
        ("abc = 'A' AND", "", 14, "ends at position 14"),
        ("revenue_365d", "revenue_365d", 1, "not true/false"),
        ("abc = 'A' OR (purchases > 1", "", 28, "expected ')'"),
        ("abc = 'x", "'x", 7, "unterminated string"),
        ("abc ; 1", ";", 5, "unexpected character"),
        ("churn_flag > TRUE", ">", 12, "does not apply to true/false"),
        ("first_purchase > '2024-13-01'", "'2024-13-01'", 18, "not a real date"),
        ("first_purchase > 'soon'", "'soon'", 18, "YYYY-MM-DD"),
        ("abc = NULL", "=", 5, "IS NULL"),
        ("abc IN ('A', NULL)", "NULL", 14, "never matches"),
        ("abc IN 'A'", "'A'", 8, "'(' after IN"),
        ("abc IS 'A'", "'A'", 8, "NULL after IS"),
        ("abc NOT 'A'", "'A'", 9, "IN after NOT"),
        ("abc = 'A' 'B'", "'B'", 11, "AND, OR or the end"),
        ("", "", 1, "empty"),
        ("42", "42", 1, "not a condition"),
        ("__import__('os')", "(", 11, "AND, OR"),
    ],
)
def test_errors_name_the_token_and_position(text, token, position, words):
    with pytest.raises(ExpressionError) as info:
        parse(text, COLUMNS)
    assert info.value.token == token
    assert info.value.position == position
    assert words in str(info.value)


def test_columns_are_reported_and_unknown_types_are_loose():
    expr = parse("abc = 'A' AND (purchases > 1 OR tariff IS NULL)", COLUMNS)
    assert expr.columns == ("abc", "purchases", "tariff")
    # without a column list anything parses (for tools that only need the syntax)
    assert parse("whatever = 1").columns == ("whatever",)


def test_evaluate_on_a_frame_without_the_column_is_an_error():
    with pytest.raises(ExpressionError, match="not available"):
        parse("vip", COLUMNS).evaluate(FRAME)


def test_every_feature_column_is_usable():
    for name, kind in FEATURE_COLUMNS.items():
        text = {"num": f"{name} > 0", "str": f"{name} = 'x'", "bool": name, "date": f"{name} < '2024-01-01'"}[kind]
        parse(text, COLUMNS)


@given(st.text(max_size=40))
@settings(max_examples=400, deadline=None)
def test_arbitrary_text_either_parses_or_raises_expression_error(text):
    try:
        parse(text, COLUMNS)
    except ExpressionError as exc:
        assert exc.position is None or 1 <= exc.position <= len(text) + 1

"""The one place that touches the analytics package: label display names and `where:` conditions.

The analytics engine (``segsync.segments``) owns both, and the labels contract (codes such as
``rfm=at_risk``, flags stored as ``"yes"``) is documented in ``segsync.segments.names``. Until those
modules are on the branch this falls back to plain forms that are correct but less friendly: label
display "Title: code", and conditions compiled by polars' own SQL expression parser (safe: it builds
expressions, never evaluates Python). When ``segsync.segments.names`` / ``.expr`` exist they win.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

DisplayFn = Callable[[str, Any, str], str | None]
WhereFn = Callable[[pl.DataFrame], pl.Series]

_TITLES = {
    "ru": {"abc": "ABC", "xyz": "XYZ", "abc_xyz": "ABC-XYZ", "rfm": "RFM", "rfm_score": "RFM", "lifecycle": "Этап",
           "readiness": "Готовность", "vip": "VIP", "churn_flag": "Риск оттока", "churn_risk": "Риск оттока"},
    "en": {"abc": "ABC", "xyz": "XYZ", "abc_xyz": "ABC-XYZ", "rfm": "RFM", "rfm_score": "RFM", "lifecycle": "Stage",
           "readiness": "Readiness", "vip": "VIP", "churn_flag": "Churn risk", "churn_risk": "Churn risk"},
}  # fmt: skip
_FALSE = {"", "0", "false", "no"}


def label_title(label: str, language: str) -> str:
    if label.startswith("custom:"):
        return label.removeprefix("custom:")
    return _TITLES.get(language, _TITLES["en"]).get(label, label)


def _plain_display(label: str, value: Any, language: str) -> str | None:
    """None = nothing to show (absent, false, empty); flags show their title; others "Title: code"."""
    if value is None or value is False or str(value).strip().lower() in _FALSE:
        return None
    if value is True or str(value).lower() in ("1", "true", "yes") or label.startswith("custom:"):
        return label_title(label, language)
    return f"{label_title(label, language)}: {value}"


def display_function() -> DisplayFn:
    try:
        from segsync.segments.names import display  # type: ignore[import-not-found]
    except ImportError:
        return _plain_display
    return display


#: Labels stored as "yes"/absent (segsync.segments.names); conditions see them as true/false columns.
FLAG_LABELS = ("churn_flag", "vip")
#: Feature columns holding dates (ISO text in segment_state.features): conditions compare them as dates.
DATE_FEATURES = ("first_purchase", "last_purchase", "created_at", "last_touch")


def condition_frame(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> pl.DataFrame:
    """One row per customer (features, labels) as the analytics engine shapes it for ``where:``.

    Flag labels become booleans, ``custom:NAME`` becomes a boolean column NAME, date features become
    UTC datetimes; everything else is taken as stored.
    """
    out = []
    for features, labels in rows:
        row = dict(features)
        for key, value in labels.items():
            if key in FLAG_LABELS or key.startswith("custom:"):
                row[key.removeprefix("custom:")] = value is True or str(value).lower() in ("yes", "true", "1")
            else:
                row[key] = value
        for flag in FLAG_LABELS:
            row.setdefault(flag, False)
        out.append(row)
    if not out:
        return pl.DataFrame()
    frame = pl.DataFrame(out, infer_schema_length=None, strict=False)
    dates = [c for c in DATE_FEATURES if c in frame.columns and frame[c].dtype == pl.String]
    if dates:
        frame = frame.with_columns(pl.col(c).str.to_datetime(time_zone="UTC", strict=False).alias(c) for c in dates)
    return frame


def compile_where(text: str) -> WhereFn:
    """A vectorised boolean condition over :func:`condition_frame` columns (nulls count as false)."""
    try:
        from segsync.segments.columns import where_columns  # type: ignore[import-not-found]
        from segsync.segments.expr import parse  # type: ignore[import-not-found]
    except ImportError:
        expression = pl.sql_expr(text)

        def evaluate(frame: pl.DataFrame) -> pl.Series:
            return frame.select(expression.fill_null(False).cast(pl.Boolean).alias("m")).to_series()

        return evaluate

    def evaluate_checked(frame: pl.DataFrame) -> pl.Series:
        flags = [c for c in frame.columns if frame[c].dtype == pl.Boolean]
        return parse(text, where_columns(fields=frame.columns, segments=flags)).evaluate(frame)

    return evaluate_checked


#: Feature names as the analytics engine writes them, with older/alternative spellings after.
FEATURE_ALIASES = {
    "days_silent": ("recency_days", "days_silent"),
    "usual_cycle": ("cycle_days", "median_gap_days", "usual_cycle"),
    "last_purchase_at": ("last_purchase", "last_purchase_at"),
    "last_purchase_amount": ("last_purchase_amount",),  # added by the loader from the deals table
    "revenue_total": ("revenue_total",),
    "revenue_365d": ("revenue_365d",),
    "n_purchases": ("purchases", "n_purchases"),
    "p_alive": ("p_alive",),
    "clv": ("clv",),
    "days_since_touch": ("days_since_touch",),
}


def feature(features: dict[str, Any], name: str) -> Any:
    for alias in FEATURE_ALIASES.get(name, (name,)):
        value = features.get(alias)
        if value is not None:
            return value
    return None

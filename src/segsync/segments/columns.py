"""The vocabulary of ``where:`` conditions: every per-customer column the engine produces, with its type.

This is a public contract (docs/rules.md lists it): admins write these names in YAML, and the config check
rejects any other name. Keep it in step with :mod:`segsync.segments.features` and :mod:`.engine`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from segsync.segments.expr import ColumnType

#: CRM attributes read from ``customers.attrs`` (the connectors' normalized keys) — all text.
ATTRIBUTE_COLUMNS: tuple[str, ...] = (
    "channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "city",
    "region",
    "industry",
    "company_type",
)

FEATURE_COLUMNS: dict[str, ColumnType] = {
    # who
    "kind": "str",  # contact | company
    "remote_id": "str",
    "name": "str",
    "responsible_id": "str",
    "customer_type": "str",  # b2b | b2c
    "b2b": "bool",
    **dict.fromkeys(ATTRIBUTE_COLUMNS, "str"),
    "created_at": "date",
    # purchases (won deals in the base currency, up to as_of)
    "first_purchase": "date",
    "last_purchase": "date",
    "purchases": "num",  # won deals, all time
    "repeat_purchases": "num",  # purchases − 1 (0 for leads)
    "purchase_days": "num",  # distinct purchase days
    "recency_days": "num",  # days since the last purchase
    "age_days": "num",  # days since the first purchase (T)
    "revenue_total": "num",
    "revenue_365d": "num",
    "revenue_90d": "num",
    "purchases_365d": "num",
    "purchases_90d": "num",
    "avg_order_value": "num",
    "median_gap_days": "num",  # median days between consecutive purchase days
    "cycle_days": "num",  # the usual cycle used by lifecycle/churn (own, segment's or global median gap)
    "cohort": "str",  # YYYY-MM of the first purchase
    # pipeline and contact
    "open_deals": "num",
    "open_amount": "num",
    "last_touch": "date",
    "days_since_touch": "num",
    # method internals worth filtering on
    "revenue_window": "num",  # revenue in the ABC window
    "abc_share": "num",  # share of the window's total revenue
    "abc_cum_share": "num",  # cumulative share before this customer (decides the class)
    "xyz_cv": "num",
    "xyz_active_share": "num",
    "xyz_periods": "num",
    "rfm_r": "num",
    "rfm_f": "num",
    "rfm_m": "num",
    # churn model (NULL when the model is not fitted)
    "p_alive": "num",
    "expected_purchases": "num",  # in the churn horizon
    "p_no_purchase": "num",  # in the churn horizon
    "expected_spend": "num",
    "clv": "num",
    # labels
    "abc": "str",
    "xyz": "str",
    "abc_xyz": "str",
    "rfm": "str",
    "rfm_score": "str",
    "lifecycle": "str",
    "readiness": "str",
    "churn_risk": "str",
    "churn_flag": "bool",
    "vip": "bool",
}


def where_columns(fields: Iterable[str] = (), segments: Iterable[str] = ()) -> Mapping[str, ColumnType]:
    """Columns a condition may name: the features, each source's ``fields:`` keys (CRM values, typed loosely)
    and, for actions, the admin's rule segments (true/false)."""
    out: dict[str, ColumnType] = dict(FEATURE_COLUMNS)
    for name in fields:
        out.setdefault(name, "any")
    for name in segments:
        out.setdefault(name, "bool")
    return out

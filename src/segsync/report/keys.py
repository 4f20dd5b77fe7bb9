"""Every label key, feature key and ledger convention the report depends on, in one place.

The analytics engine (``segsync.segments``) defines ``segment_state.labels`` / ``.features`` and the
write-back (``segsync.actions``) defines the ledger; when either renames something, only this module changes.
"""

from __future__ import annotations

# --- segment_state.labels ------------------------------------------------------------------------------
ABC = "abc"
XYZ = "xyz"
ABC_XYZ = "abc_xyz"
RFM = "rfm"
LIFECYCLE = "lifecycle"
CHURN_FLAG = "churn_flag"  # "yes" or absent
CHURN_RISK = "churn_risk"  # low | medium | high
VIP = "vip"  # "yes" or absent
CUSTOM_PREFIX = "custom:"  # custom:<name> = "yes" or absent
YES = "yes"

#: Labels read from every customer's state (custom ones are added from the rules).
LABELS: tuple[str, ...] = (ABC, XYZ, RFM, LIFECYCLE, CHURN_FLAG, CHURN_RISK, VIP)
#: Labels whose transitions the report shows, in display order.
TRANSITION_LABELS: tuple[str, ...] = (LIFECYCLE, RFM, ABC, CHURN_RISK)

ABC_ROWS: tuple[str, ...] = ("A", "B", "C")
ABC_NO_REVENUE = "N"
XYZ_COLUMNS: tuple[str, ...] = ("X", "Y", "Z", "new", "once", "none")
RFM_ORDER: tuple[str, ...] = (
    "champions",
    "loyal_customers",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "cant_lose",
    "at_risk",
    "hibernating",
    "lost",
    "other",
    "none",
)
LIFECYCLE_ORDER: tuple[str, ...] = ("lead", "new", "active", "returned", "lapsed", "lost")
CHURN_RISK_ORDER: tuple[str, ...] = ("low", "medium", "high")
ORDERS: dict[str, tuple[str, ...]] = {
    ABC: (*ABC_ROWS, ABC_NO_REVENUE),
    XYZ: XYZ_COLUMNS,
    RFM: RFM_ORDER,
    LIFECYCLE: LIFECYCLE_ORDER,
    CHURN_RISK: CHURN_RISK_ORDER,
}

# --- segment_state.features ----------------------------------------------------------------------------
NAME = "name"
RESPONSIBLE = "responsible_id"
REVENUE_WINDOW = "revenue_window"  # revenue in the ABC window (decides the ABC class)
REVENUE_365D = "revenue_365d"
REVENUE_TOTAL = "revenue_total"
P_ALIVE = "p_alive"  # null when the churn model is not fitted
CLV = "clv"
RECENCY_DAYS = "recency_days"  # days since the last purchase
DAYS_SINCE_TOUCH = "days_since_touch"
LAST_PURCHASE = "last_purchase"
#: Numeric features read from every customer's state.
NUMERIC_FEATURES: tuple[str, ...] = (
    REVENUE_WINDOW,
    REVENUE_365D,
    REVENUE_TOTAL,
    P_ALIVE,
    CLV,
    RECENCY_DAYS,
    DAYS_SINCE_TOUCH,
)
TEXT_FEATURES: tuple[str, ...] = (NAME, RESPONSIBLE, LAST_PURCHASE)

# --- ledger --------------------------------------------------------------------------------------------
TASK_OP = "task"
TASK_CREATED = "done"  # the CRM confirmed the task
TASK_OPEN_STATES: tuple[str, ...] = ("planned", "pending")
TASK_FAILED_STATES: tuple[str, ...] = ("failed", "parked")
TASK_ASSIGNEE = "responsible_id"  # payload key: the manager the task went to

# --- runs ----------------------------------------------------------------------------------------------
HEALTH_STEPS: tuple[str, ...] = ("pull", "reconcile", "compute", "plan", "push")

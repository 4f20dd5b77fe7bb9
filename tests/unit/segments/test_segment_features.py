"""Features, lifecycle, churn flag, cohorts and data quality on hand-made frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from segsync.segments.churn import churn_flag, usual_cycle
from segsync.segments.cohorts import cohort_table, month_index
from segsync.segments.features import features, local_days, purchases, revenue_series
from segsync.segments.lifecycle import lead_readiness, lifecycle_stages, stage_readiness
from segsync.segments.quality import data_quality, duplicate_groups
from segsync.segments.xyz import coefficient_of_variation

AS_OF = datetime(2025, 6, 30, 21, 0, tzinfo=UTC)  # 2025-07-01 00:00 in Moscow
DT = pl.Datetime("us", "UTC")


def deals(rows) -> pl.DataFrame:
    """rows: (customer, status, amount, closed_at, created_at, pipeline, stage)."""
    return pl.DataFrame(
        rows,
        schema={
            "customer": pl.String,
            "status": pl.String,
            "amount": pl.Float64,
            "closed_at": DT,
            "created_at": DT,
            "pipeline_id": pl.String,
            "stage_id": pl.String,
        },
        orient="row",
    )


def at(days_ago: float) -> datetime:
    return AS_OF - timedelta(days=days_ago)


def test_purchase_features_with_windows_and_calendar_days():
    frame = deals(
        [
            ("contact:1", "won", 100.0, at(400), None, "0", "WON"),
            ("contact:1", "won", 50.0, at(99.9), None, "0", "WON"),
            ("contact:1", "won", 25.0, at(99.95), None, "0", "WON"),  # same local day → one purchase day
            ("contact:1", "won", None, at(10), None, "0", "WON"),  # unknown amount counts, adds 0
            ("contact:1", "won", 999.0, AS_OF + timedelta(hours=1), None, "0", "WON"),  # after as_of
            ("contact:1", "lost", 500.0, at(5), None, "0", "LOSE"),
            ("contact:1", "open", 70.0, None, at(3), "0", "NEW"),
            ("contact:2", "open", 30.0, None, at(1), "0", "NEW"),
            ("contact:2", "open", 30.0, None, AS_OF + timedelta(days=1), "0", "NEW"),  # created later
        ]
    )
    f = features(frame, AS_OF, tz="Europe/Moscow").to_dicts()
    one, two = f[0], f[1]
    assert one["purchases"] == 4 and one["purchase_days"] == 3 and one["repeat_purchases"] == 3
    assert one["revenue_total"] == 175.0 and one["revenue_365d"] == 75.0 and one["revenue_90d"] == 0.0
    assert one["purchases_365d"] == 3 and one["purchases_90d"] == 1
    assert one["revenue_window"] == 75.0  # default ABC window 365 days
    assert one["avg_order_value"] == pytest.approx(175.0 / 4)
    assert one["recency_days"] == 10 and one["age_days"] == 400
    assert one["median_gap_days"] == 195.0  # gaps 300 and 90 days between purchase days → median 195
    assert one["open_deals"] == 1 and one["open_amount"] == 70.0
    assert one["_x"] == 2 and one["_t_x"] == 390 and one["_T"] == 400
    assert one["_m_x"] == pytest.approx((75.0 + 0.0) / 2)  # mean of the repeat purchase days
    assert one["cohort"] == "2024-05"
    assert two["purchases"] == 0 and two["open_deals"] == 1 and two["recency_days"] is None
    assert two["kind"] == "contact" and two["remote_id"] == "2"


def test_purchase_days_follow_the_rules_time_zone():
    late = deals([("contact:1", "won", 1.0, datetime(2025, 6, 29, 22, 30, tzinfo=UTC), None, None, None)])
    moscow = features(late, AS_OF, tz="Europe/Moscow")["recency_days"][0]
    utc = features(late, AS_OF, tz="UTC")["recency_days"][0]
    assert (moscow, utc) == (1.0, 1.0)
    # 22:30 UTC on the 29th is already the 30th in Moscow; as_of is the 1st there, the 30th in UTC
    assert purchases(late, AS_OF, "Europe/Moscow")["day"][0].isoformat() == "2025-06-30"


def test_pipeline_filter_keeps_only_purchase_pipelines():
    frame = deals([("contact:1", "won", 10.0, at(5), None, "0", "W"), ("contact:1", "won", 7.0, at(4), None, "9", "W")])
    assert features(frame, AS_OF, pipelines=["9"])["revenue_total"][0] == 7.0


def test_xyz_inputs_match_a_zero_filled_series():
    rows = [("contact:1", "won", v, at(d), None, None, None) for v, d in ((100.0, 20), (300.0, 50), (100.0, 200))]
    rows.append(("contact:1", "won", 50.0, at(19), None, None, None))
    frame = deals(rows)
    f = features(frame, AS_OF, tz="UTC", xyz_periods=6).to_dicts()[0]
    series = revenue_series(purchases(frame, AS_OF, "UTC"), AS_OF, "UTC", "month", 6)
    values = series["revenue"].to_numpy()
    assert len(values) == 6 == f["xyz_periods"]
    assert f["xyz_cv"] == pytest.approx(coefficient_of_variation(values))
    assert f["xyz_active_share"] == pytest.approx((values > 0).sum() / 6)


def test_touches_and_customers_frames_are_joined():
    frame = deals([("company:7", "won", 10.0, at(5), None, None, None)])
    touches = pl.DataFrame(
        {
            "customer": ["company:7", "company:7", "contact:3"],
            "at": [at(2), at(1) + timedelta(days=5), at(9)],
            "completed": [True, True, False],
        },
        schema_overrides={"at": DT},
    )
    customers = pl.DataFrame(
        {"customer": ["company:7", "contact:3"], "kind": ["company", "contact"], "city": ["Казань", None]}
    )
    f = features(frame, AS_OF, customers=customers, touches=touches)
    rows = {r["customer"]: r for r in f.to_dicts()}
    assert rows["company:7"]["days_since_touch"] == 2.0  # the future touch is ignored
    assert rows["company:7"]["city"] == "Казань" and rows["company:7"]["b2b"] is True
    assert rows["contact:3"]["last_touch"] is None  # planned, not completed
    assert rows["contact:3"]["customer_type"] == "b2c"


def test_lifecycle_stages_in_order():
    got = lifecycle_stages(
        purchases=np.array([0, 1, 5, 5, 5, 5]),
        age_days=np.array([np.nan, 30, 900, 900, 900, 900]),
        recency_days=np.array([np.nan, 30, 400, 200, 20, 20]),
        last_gap_days=np.array([np.nan, np.nan, 50, 50, 300, 50]),
        cycle_days=np.array([np.nan, 90, 100, 100, 100, 100]),
        new_within_days=90,
        lapsed_factor=1.5,
        lost_factor=3.0,
    )
    assert list(got) == ["lead", "new", "lost", "lapsed", "returned", "active"]


def test_usual_cycle_falls_back_from_own_to_segment_to_global_to_default():
    own = np.array([10.0, 30.0, 50.0, np.nan, 7.0, np.nan])
    gaps = np.array([2, 2, 2, 0, 1, 0])
    segment = np.array(["A", "A", "B", "A", "C", None], dtype=object)
    cycle, source = usual_cycle(own, gaps, segment, min_gaps=2, default_days=90)
    assert list(source) == ["own", "own", "own", "segment", "global", "global"]
    assert list(cycle) == [10.0, 30.0, 50.0, 20.0, 30.0, 30.0]
    cycle, source = usual_cycle(own, gaps, segment, min_gaps=2, default_days=90, start="global")
    assert set(source) == {"global"}
    cycle, source = usual_cycle(np.full(2, np.nan), np.zeros(2), np.array([None, None]), min_gaps=2, default_days=90)
    assert list(cycle) == [90.0, 90.0] and list(source) == ["default", "default"]


def test_churn_flag_is_strictly_longer_than_k_cycles():
    flags = churn_flag(np.array([200.0, 201.0, np.nan]), np.array([100.0, 100.0, 100.0]), 2.0)
    assert list(flags) == [False, True, False]


def test_readiness_from_the_stage_map_and_by_position():
    stages = pl.DataFrame(
        {
            "pipeline_id": ["0"] * 5 + ["1"] * 2,
            "stage_id": ["A", "B", "C", "WON", "LOSE", "X", "Y"],
            "semantic": ["open", "open", "open", "won", "lost", "open", "open"],
            "sort": [1, 2, 3, 4, 5, 1, 2],
        }
    )
    ranks = stage_readiness(stages, {"1": {"X": "hot"}}, "by_position")
    table = {(r["pipeline_id"], r["stage_id"]): r["readiness_rank"] for r in ranks.to_dicts()}
    assert table == {("0", "A"): 0, ("0", "B"): 1, ("0", "C"): 2, ("1", "X"): 2}
    open_deals = pl.DataFrame(
        {
            "customer": ["c:1", "c:1", "c:2", "c:3"],
            "pipeline_id": ["0", "0", "1", "7"],
            "stage_id": ["A", "B", "Y", "Q"],
        }
    )
    warmest = dict(lead_readiness(open_deals, ranks).iter_rows())
    assert warmest == {"c:1": 1, "c:2": 0, "c:3": 0}  # unmapped stage in a mapped pipeline, unknown → cold
    assert stage_readiness(stages, {}, "cold").is_empty()


def test_cohort_retention_table():
    bought = pl.DataFrame(
        {
            "customer": ["a", "a", "b", "b", "c"],
            "day": [
                datetime(2025, 1, 5),
                datetime(2025, 3, 1),
                datetime(2025, 1, 20),
                datetime(2025, 2, 2),
                datetime(2025, 2, 10),
            ],
            "amount": [1.0, 2, 3, 4, 5],
        }
    ).select("customer", month_index(pl.col("day")).alias("month"), "amount")
    table = cohort_table(bought, 2025 * 12 + 2, months=12)  # as of March 2025
    rows = {(r["cohort"], r["period"]): (r["size"], r["active"], r["retention"]) for r in table.to_dicts()}
    assert rows[("2025-01", 0)] == (2, 2, 1.0)
    assert rows[("2025-01", 1)] == (2, 1, 0.5)
    assert rows[("2025-01", 2)] == (2, 1, 0.5)
    assert rows[("2025-02", 0)] == (1, 1, 1.0)
    assert rows[("2025-02", 1)] == (1, 0, 0.0)
    assert ("2025-02", 2) not in rows  # after the as-of month: no cell, not 0


def test_duplicates_unreachable_and_inactive():
    customers = pl.DataFrame(
        {
            "customer": ["contact:1", "contact:2", "contact:3", "contact:4", "company:1", "company:2"],
            "kind": ["contact", "contact", "contact", "contact", "company", "company"],
            "name": ["Ёлкин  Пётр", "елкин пётр", "Анна", "Анна", "ООО «Ромашка»", "ооо ромашка"],
            "company_id": ["1", "1", None, None, None, None],
            "phones": [["+7 (916) 123-45-67"], ["89161234567"], [], ["12"], ["+74950000000"], []],
            "emails": [["A@X.RU"], [], [" a@x.ru "], [], [], []],
            "created_at": [at(10), at(10), at(10), at(800), at(10), at(10)],
        },
        schema_overrides={"created_at": DT},
    )
    groups = duplicate_groups(customers)
    by_match = {m: sorted(g["customer"].to_list()) for (m,), g in groups.group_by("match")}
    assert by_match["phone"] == ["contact:1", "contact:2"]
    assert by_match["email"] == ["contact:1", "contact:3"]
    assert sorted(by_match["name_company"]) == ["company:1", "company:2", "contact:1", "contact:2"]
    activity = pl.DataFrame(
        {"customer": ["contact:1"], "last_purchase": [at(500)], "last_touch": [None]},
        schema_overrides={"last_purchase": DT, "last_touch": DT},
    )
    q = data_quality(customers, activity, AS_OF, 365)
    assert q.unreachable["customer"].to_list() == ["company:2", "contact:4"]  # "12" is no phone
    assert q.inactive["customer"].to_list() == ["contact:1", "contact:4"]
    assert q.counts["duplicate_groups"] == 4


@pytest.mark.parametrize(
    "tz", ["Europe/Moscow", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"]
)
def test_local_days_match_row_by_row_conversion(tz):
    """The quarter-hour lookup gives the same dates as converting every timestamp, across DST transitions,
    odd offsets (+05:45, a 30-minute DST shift) and the Moscow 2011/2014 offset changes."""
    rng = np.random.default_rng(7)
    start = int(datetime(2009, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    stop = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    randoms = rng.integers(start, stop, 20_000)
    # every five minutes around local midnights and transitions of a few years, to the microsecond edge
    dense = np.arange(start, start + 3 * 366 * 86_400_000_000, 300_000_000)
    edges = np.concatenate([dense - 1, dense, dense + 1])
    at = pl.Series("at", np.concatenate([randoms, edges])).cast(DT)
    expected = at.dt.convert_time_zone(tz).dt.date()
    assert (local_days(at, tz) == expected).all()

"""The report model on hand-made inputs: every figure checked against a hand count (no database)."""

from __future__ import annotations

import polars as pl
import pytest

from segsync.report import calc
from segsync.report.model import build_report, health, quality, source_report

from .fixtures import NOW, SETTINGS, at, sample_source


@pytest.fixture
def src():
    return source_report(sample_source(), SETTINGS, NOW)


def test_management_view_counts_gained_returned_lost_and_keeps_the_balance(src):
    rows = {m.month: m for m in src.monthly}
    assert next(m.month for m in src.monthly) == "2024-07" and src.monthly[-1].month == "2025-06"
    assert src.monthly[-1].partial and not src.monthly[-2].partial
    assert (rows["2024-09"].lost, rows["2024-09"].active) == (1, 0)
    assert (rows["2024-11"].gained, rows["2024-11"].active) == (1, 1)
    assert (rows["2025-01"].gained, rows["2025-01"].active) == (1, 2)
    assert (rows["2025-02"].returned, rows["2025-02"].lost, rows["2025-02"].active) == (1, 1, 2)
    assert (rows["2025-05"].lost, rows["2025-05"].active) == (1, 1)
    assert (rows["2025-06"].gained, rows["2025-06"].active) == (1, 2)
    # a gap of exactly lost_after months is not a loss: company:1 bought in March and June
    assert sum(m.returned for m in src.monthly) == 1
    previous = 1  # company:2 was active in June 2024
    for m in src.monthly:
        assert m.active == previous + m.gained + m.returned - m.lost, m.month
        previous = m.active
    assert (rows["2025-06"].revenue_new, rows["2025-06"].revenue_existing) == (50.0, 200.0)
    assert (rows["2025-02"].revenue_new, rows["2025-02"].revenue_existing) == (0.0, 300.0)
    assert rows["2024-11"].revenue_new == 150.0


def test_management_view_with_no_purchases_is_all_zero():
    empty = pl.DataFrame(schema={"customer": pl.String, "month": pl.Int32, "amount": pl.Float64})
    view = calc.management_view(empty, 2025 * 12 + 5, 6, 3)
    assert view.height == 6 and view.drop("month").sum().row(0) == (0, 0, 0, 0, 0.0, 0.0)


def test_months_follow_the_rules_time_zone():
    late = pl.DataFrame(
        {"customer": ["a"], "at": [at(2025, 1, 31).replace(hour=22)], "amount": [1.0]},
        schema={"customer": pl.String, "at": pl.Datetime("us", "UTC"), "amount": pl.Float64},
    )
    assert calc.purchase_months(late, NOW, "Europe/Moscow")["month"][0] == 2025 * 12 + 1  # 1 Feb in Moscow
    assert calc.purchase_months(late, NOW, "UTC")["month"][0] == 2025 * 12 + 0


def test_cohorts(src):
    by = {r.cohort: r for r in src.cohorts}
    assert list(by) == ["2024-11", "2025-01", "2025-06"]  # June 2024 is older than the 12 cohort months
    assert src.cohort_periods == 12
    jan = by["2025-01"].retention
    assert jan[:6] == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0] and jan[6] is None  # not reached yet
    assert by["2025-06"].retention[0] == 1.0 and by["2025-06"].retention[1] is None


def test_abc_xyz_matrix(src):
    m = src.matrix
    assert m.columns == ["X", "Y", "Z", "once"]
    assert (m.cell("A", "X").customers, m.cell("A", "X").revenue) == (1, 500.0)
    assert (m.cell("A", "Y").customers, m.cell("B", "Z").customers, m.cell("C", "once").customers) == (1, 1, 1)
    assert m.cell("C", "X").customers == 0
    assert (m.total.customers, m.total.revenue, m.no_revenue) == (4, 1000.0, 0)


def test_rfm_and_rule_segments(src):
    assert [(s.value, s.customers, s.revenue) for s in src.rfm] == [
        ("champions", 1, 500.0),
        ("new_customers", 1, 50.0),
        ("at_risk", 1, 300.0),
        ("hibernating", 1, 150.0),
    ]
    assert [(s.label, s.customers, s.revenue) for s in src.rule_segments] == [
        ("vip", 1, 500.0),
        ("churn_flag", 2, 450.0),
        ("custom:key_b2b", 1, 500.0),
    ]


def test_churn_list_ranks_by_value_at_risk_and_caps(src):
    assert [(r.customer, round(r.value_at_risk, 6)) for r in src.churn] == [
        ("company:2", 240.0),
        ("contact:3", 135.0),
        ("company:1", 25.0),
    ]
    assert src.churn[0].manager == "Михаил Орлов" and src.churn[0].days_silent == 120
    assert src.churn_model == "fitted"
    assert src.kpis.value_at_risk == pytest.approx(400.0)


def test_churn_list_without_a_model_uses_the_silence_rule():
    data = sample_source()
    data.customers = data.customers.with_columns(pl.lit(None, dtype=pl.Float64).alias("p_alive"))
    data.fits = []
    src = source_report(data, SETTINGS, NOW)
    assert [r.customer for r in src.churn] == ["company:2", "contact:3"]  # flagged, by revenue
    assert src.churn_model is None


def test_tasks_per_manager(src):
    rows = [(m.manager, m.created, m.created_week, m.open, m.failed) for m in src.tasks]
    assert rows == [("Екатерина Белова", 2, 1, 1, 0), ("Михаил Орлов", 1, 1, 0, 1), (None, 0, 0, 0, 1)]
    assert src.kpis.tasks_week == 2


def test_transitions_and_net_change(src):
    assert [(t.label, t.from_value, t.to_value) for t in src.transitions][:3] == [
        ("lifecycle", "active", "lapsed"),
        ("lifecycle", None, "new"),
        ("lifecycle", "lapsed", "lost"),
    ]
    net = {(c.label, c.value): c.net for c in src.net_changes}
    assert net == {
        ("lifecycle", "new"): 1,
        ("lifecycle", "active"): -2,
        ("lifecycle", "lapsed"): 1,
        ("lifecycle", "lost"): 1,
        ("rfm", "loyal_customers"): -1,
        ("rfm", "at_risk"): 1,
    }
    assert not src.first_run


def test_data_quality_finds_duplicates_of_the_same_kind_and_unreachable_customers():
    q = quality(sample_source(), SETTINGS)
    assert (q.duplicate_groups, q.duplicate_customers) == (2, 2)  # contacts 3 and 7: phone, e-mail
    assert q.by_match == {"phone": 1, "email": 1}
    assert {tuple(sorted(c for c, _ in g.customers)) for g in q.groups} == {("contact:3", "contact:7")}
    # company:1 has no phone itself but its contact has one; contact:4's e-mail is not an address
    assert (q.unreachable, q.analysed) == (1, 5)
    assert q.unreachable_by_manager == [(None, 1)]


def test_health_reports_the_last_run_of_each_step():
    h = health(sample_source(), NOW)
    assert {s.step: s.status for s in h.steps} == {"pull": "ok", "compute": "ok", "push": "failed"}
    assert (h.runs_ok_week, h.runs_failed_week, h.quarantined) == (2, 2, 3)
    assert not h.ok
    assert h.step("push").error == "RateLimited: 429"


def test_an_unsynced_source_only_appears_in_health():
    from segsync.report.inputs import SourceData

    report = build_report([sample_source(), SourceData(name="amo", kind="amocrm", currency=None, in_store=False)],
                          SETTINGS, NOW)  # fmt: skip
    assert [s.name for s in report.sources] == ["shop"]
    assert [(h.source, h.in_store, h.ok) for h in report.health][1] == ("amo", False, False)


def test_an_empty_source_builds():
    from segsync.report.inputs import SourceData

    src = source_report(SourceData(name="new", kind="amocrm", currency="RUB"), SETTINGS, NOW)
    assert not src.has_state and src.churn == [] and src.tasks == [] and src.cohorts == []
    assert len(src.monthly) == 12 and all(m.gained == 0 for m in src.monthly)

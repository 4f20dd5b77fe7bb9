"""The pure planner: no database, no HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from segsync.actions.bridge import compile_where
from segsync.actions.calendar import BusinessCalendar
from segsync.actions.labels import desired_labels
from segsync.actions.model import CustomerState, HistoryRow, LedgerRow, PlanInput
from segsync.actions.planner import make_plan
from segsync.actions.render import render
from segsync.config.actions import WorkingHours
from segsync.config.models import Rules
from segsync.contract import CustomerRef

from .helpers import MON, make_rules

DAY = timedelta(days=1)


def state(cid: str, labels: dict, features: dict | None = None, *, responsible: str = "7", as_of=MON):
    return CustomerState(CustomerRef("contact", cid), labels, features or {}, as_of, f"Клиент {cid}", responsible)


def ru_display(label, value, language):
    names = {"at_risk": "Под угрозой", "champions": "Чемпионы"}
    if value in (None, False):
        return None
    return "VIP" if value == "yes" else names.get(value, str(value))


def test_business_days_skip_weekends_and_holidays_in_the_configured_zone():
    hours = WorkingHours(holidays=["2026-03-09"], workdays=["2026-03-14"])
    cal = BusinessCalendar.from_config(hours, "Europe/Moscow")
    friday = date(2026, 3, 6)
    assert cal.add_business_days(friday, 1) == date(2026, 3, 10)  # weekend + Monday holiday
    assert cal.add_business_days(date(2026, 3, 13), 1) == date(2026, 3, 14)  # transferred working Saturday
    assert cal.due(friday, 2).isoformat() == "2026-03-11T18:00:00+03:00"
    assert cal.local_date(datetime(2026, 3, 6, 22, 30, tzinfo=UTC)) == date(2026, 3, 7)  # already Saturday in Moscow


def test_templates_render_russian_money_dates_and_plurals():
    ctx = {"n": 21, "m": 3, "k": 11, "amount": "1234567.4", "when": "2026-03-12T10:00:00+00:00", "p": 0.42}
    text = "{{ n | days }}, {{ m | days }}, {{ k | days }}; {{ amount | money }}; {{ when | date }}; {{ p | percent }}"
    assert render(text, {**ctx, "currency": "RUB"}, "ru") == (
        "21 день, 3 дня, 11 дней; 1\xa0234\xa0567\xa0₽; 12 марта 2026; 42\xa0%"
    )
    assert render("{{ n | days }}; {{ amount | money }}", {**ctx, "currency": "USD"}, "en") == "21 days; $1,234,567"
    assert render("{{ 5 | plural('звонок', 'звонка', 'звонков') }}", {}, "ru") == "звонков"
    assert render("Последняя покупка: {{ missing_value }}", {"missing_value": None}, "ru") == "Последняя покупка: —"


def test_dates_are_shown_as_the_calendar_day_in_the_rules_time_zone():
    late = {"when": "2026-05-30T21:07:33+00:00", "naive": datetime(2026, 5, 30, 22, 0)}  # 00:07 / 01:00 in Moscow
    assert render("{{ when | date }}, {{ naive | date }}", late, "ru", "Europe/Moscow") == "31 мая 2026, 31 мая 2026"
    assert render("{{ when | date }}", late, "ru", "America/New_York") == "30 мая 2026"


def test_templates_are_sandboxed():
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        render("{{ customer.__class__.__mro__ }}", {"customer": {"name": "x"}}, "ru")


def test_bad_templates_are_config_errors_with_the_reason():
    base = {"name": "x", "where": "churn_flag", "task": {"title": "{{ customer.name }"}}
    with pytest.raises(ValueError, match="template error"):
        Rules.model_validate({"actions": [base]})
    base["task"]["title"] = "{{ custmer.name }}"
    with pytest.raises(ValueError, match=r"unknown name.*custmer"):
        Rules.model_validate({"actions": [base]})
    with pytest.raises(ValueError, match="not a segment label"):
        Rules.model_validate({"writeback": {"publish": ["abc", "colour"]}})


def test_label_display_uses_templates_and_drops_false_flags():
    rules = make_rules(writeback={"publish": ["rfm", "vip", "churn_flag"], "templates": {"rfm": "RFM {{ title }}"}})
    got = desired_labels(state("1", {"rfm": "at_risk", "vip": "yes", "churn_flag": None}), rules.writeback, "ru",
                         ru_display)  # fmt: skip
    assert got == {"rfm": "RFM Под угрозой", "vip": "VIP"}


def test_label_plan_diffs_against_what_segsync_wrote_only():
    rules = make_rules(actions=[])
    written = {CustomerRef("contact", "1"): {"rfm": "Чемпионы", "vip": "VIP"},
               CustomerRef("contact", "2"): {"rfm": "Чемпионы"}}  # fmt: skip
    inp = PlanInput(
        "shop",
        [state("1", {"rfm": "at_risk", "vip": "yes"}), state("2", {"rfm": "champions"}), state("3", {})],
        written=written,
    )
    plan = make_plan(inp, rules, MON, display=ru_display)
    assert [(o.customer.remote_id, o.payload) for o in plan.ops] == [
        ("1", {"before": {"rfm": "Чемпионы", "vip": "VIP"}, "after": {"rfm": "Под угрозой", "vip": "VIP"}})
    ]
    assert plan.ops[0].reason == "rfm: 'Чемпионы' → 'Под угрозой'"


def test_an_unsent_label_op_is_updated_not_duplicated():
    ref = CustomerRef("contact", "1")
    row = LedgerRow("labels:shop:contact:1:x", "labels", ref, None, "planned",
                    {"before": {}, "after": {"rfm": "Чемпионы"}}, MON, id=5)  # fmt: skip
    inp = PlanInput("shop", [state("1", {"rfm": "at_risk"})], ledger=[row])
    (op,) = make_plan(inp, make_rules(actions=[]), MON + DAY, display=ru_display).ops
    assert (op.change, op.row_id, op.payload["after"]) == ("update", 5, {"rfm": "Под угрозой"})
    inp = PlanInput("shop", [state("1", {})], ledger=[row])
    (op,) = make_plan(inp, make_rules(actions=[]), MON + DAY, display=ru_display).ops
    assert op.change == "cancel"


def test_where_conditions_are_vectorised_and_null_safe():
    import polars as pl

    frame = pl.DataFrame({"abc": ["A", "B", None], "churn_flag": [True, None, True], "revenue_365d": [1.0, 2.0, 3.0]})
    assert compile_where("churn_flag AND abc IN ('A', 'B')")(frame).to_list() == [True, False, False]
    assert compile_where("revenue_365d >= 2")(frame).to_list() == [False, True, True]


def test_cadence_fires_only_after_the_silence_and_keeps_one_episode():
    rules = make_rules(
        actions=[{"name": "touch", "where": "abc_xyz IN ('AX', 'AY')", "cadence": {"no_touch": "30d"},
                  "task": {"title": "Связаться: {{ customer.name }}", "type": "todo"}}]
    )  # fmt: skip
    states = [
        state("1", {"abc_xyz": "AX"}, {"days_since_touch": 45}),
        state("2", {"abc_xyz": "AY"}, {"days_since_touch": 3}),
        state("3", {"abc_xyz": "CZ"}, {"days_since_touch": 90}),
        state("4", {"abc_xyz": "AX"}),  # never touched
    ]
    plan = make_plan(PlanInput("shop", states), rules, MON, display=ru_display)
    assert sorted(o.customer.remote_id for o in plan.ops if o.op == "task") == ["1", "4"]
    assert set(plan.episodes_started) == {
        ("touch", CustomerRef("contact", "1")),
        ("touch", CustomerRef("contact", "4")),
    }
    # next day, episode known: same key
    episodes = dict(plan.episodes_started)
    again = make_plan(PlanInput("shop", states, episodes=episodes), rules, MON + DAY, display=ru_display)
    assert {o.key for o in again.ops if o.op == "task"} == {o.key for o in plan.ops if o.op == "task"}
    assert not again.episodes_started


def test_transition_respects_from_delay_and_within():
    rules = make_rules(
        actions=[{"name": "winback", "transition": {"segment": "rfm", "from": ["loyal", "champions"], "to": ["at_risk"],
                  "delay": "2d", "within": "7d"}, "task": {"title": "Вернуть {{ customer.name }}: {{ segment }}"}}]
    )  # fmt: skip
    history = [
        HistoryRow(CustomerRef("contact", "1"), "rfm", "loyal", "at_risk", MON - 3 * DAY),
        HistoryRow(CustomerRef("contact", "2"), "rfm", "new", "at_risk", MON - 3 * DAY),  # wrong from
        HistoryRow(CustomerRef("contact", "3"), "rfm", "loyal", "at_risk", MON - 30 * DAY),  # too old
        HistoryRow(CustomerRef("contact", "4"), "rfm", "loyal", "at_risk", MON - 1 * DAY),  # delay not over
    ]
    states = [state(str(i), {"rfm": "at_risk"}) for i in range(1, 5)]
    plan = make_plan(PlanInput("shop", states, history=history), rules, MON, display=ru_display)
    (op,) = [o for o in plan.ops if o.op == "task"]
    assert op.customer.remote_id == "1"
    assert op.payload["title"] == "Вернуть Клиент 1: Под угрозой"
    assert op.reason.startswith("action winback: rfm changed loyal → at_risk on 2026-02-27")


def test_priority_order_puts_high_priority_and_valuable_customers_first():
    rules = make_rules(
        limits={"daily_cap_per_manager": 1},
        actions=[
            {"name": "low", "where": "churn_flag", "task": {"title": "a", "priority": "low"}},
            {"name": "high", "where": "vip", "task": {"title": "b", "priority": "high"}},
        ],
    )
    states = [
        state("1", {"churn_flag": "yes"}, {"clv": 900000}),
        state("2", {"vip": "yes"}, {"revenue_365d": 10}),
        state("3", {"vip": "yes"}, {"revenue_365d": 500}),
    ]
    plan = make_plan(PlanInput("shop", states), rules, MON, display=ru_display)
    order = sorted((o.payload["slot"], o.rule, o.customer.remote_id) for o in plan.ops if o.op == "task")
    assert order == [("2026-03-02", "high", "3"), ("2026-03-03", "high", "2"), ("2026-03-04", "low", "1")]


def test_inactive_users_are_skipped_for_the_fallback():
    rules = make_rules()
    states = [state("1", {"abc": "A", "churn_flag": "yes"}, responsible="8")]
    plan = make_plan(PlanInput("shop", states, active_users={"7": True, "8": False, "99": True}), rules, MON,
                     display=ru_display)  # fmt: skip
    (op,) = [o for o in plan.ops if o.op == "task"]
    assert op.payload["responsible_id"] == "99"
    assert "assigned to fallback user 99 (user 8 is inactive)" in op.reason

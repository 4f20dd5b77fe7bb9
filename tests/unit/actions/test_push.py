"""push_source / plan_source on a real store (SQLite or PostgreSQL) with an in-memory CRM."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from segsync.actions import explain_writeback, plan_source, push_source
from segsync.actions import ledger as lg
from segsync.actions.bridge import display_function
from segsync.contract import CustomerRef, WriteResult
from segsync.status import collect_status
from segsync.store import tables as t

from .fake_crm import Crash, FakeCrm
from .helpers import MON, add_source, make_rules, put_history, put_state, put_users, put_won_deal

DAY = timedelta(days=1)
SHOW = display_function()  # the analytics engine's names once installed, the plain fallback before


def tag(label: str, code: str) -> str:
    return "seg:" + SHOW(label, code, "ru")


def shown(**labels: str) -> dict[str, str]:
    return {label: SHOW(label, code, "ru") for label, code in labels.items()}


A_CHURNED = {"abc": "A", "abc_xyz": "AX", "rfm": "at_risk", "vip": "yes", "churn_flag": "yes"}


def churned(n: int, responsible: str = "7") -> list[dict]:
    return [
        {"id": str(i), "labels": dict(A_CHURNED), "responsible": responsible,
         "features": {"revenue_365d": 1000 * i, "recency_days": 100 + i, "cycle_days": 30}}
        for i in range(1, n + 1)
    ]  # fmt: skip


@pytest.fixture
def sid(engine):
    source_id = add_source(engine)
    put_users(engine, source_id, {"7": True, "8": False, "99": True})
    return source_id


def ledger_states(engine, sid) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(t.ledger.c.key, t.ledger.c.state).where(t.ledger.c.source_id == sid)).all())


async def test_first_push_writes_exactly_the_plan_and_second_push_writes_nothing(engine, sid):
    put_state(
        engine,
        sid,
        [
            {
                "id": "1",
                "labels": A_CHURNED,
                "features": {
                    "recency_days": 121,
                    "revenue_total": "1250000.50",
                    "last_purchase": "2025-11-01T00:00:00+00:00",
                },
            },
            {"id": "2", "labels": {"abc": "C", "abc_xyz": "CZ", "rfm": "lost", "churn_flag": "yes"}},
            {"id": "3", "labels": {"abc": "B", "abc_xyz": "BY", "rfm": "loyal", "churn_flag": None}},
        ],
        MON,
    )
    put_won_deal(engine, sid, "d1", "1", "30000", MON - 200 * DAY)
    put_won_deal(engine, sid, "d2", "1", "45000.00", MON - 121 * DAY)
    rules = make_rules()
    crm = FakeCrm()
    result = await push_source(engine, sid, rules, crm, as_of=MON)

    assert crm.tags[CustomerRef("contact", "1")] == {tag("abc_xyz", "AX"), tag("rfm", "at_risk"), tag("vip", "yes")}
    assert crm.tags[CustomerRef("contact", "3")] == {tag("abc_xyz", "BY"), tag("rfm", "loyal")}
    assert [t_.customer.remote_id for t_ in crm.tasks.values()] == ["1"]  # C and not-churned get none
    task = next(iter(crm.tasks.values()))
    assert task.title == "Реактивация: Клиент 1"
    assert "Последняя покупка 1 ноября 2025 на 45\xa0000\xa0₽." in task.text
    assert "Не покупает 121 день" in task.text and "Выручка: 1\xa0250\xa0000\xa0₽" in task.text
    assert task.due.isoformat() == "2026-03-04T18:00:00+03:00"  # Monday + 2 business days, end of day, Moscow
    assert crm.requests == {"set_labels": 1, "find_tasks": 1, "create_tasks": 1}
    assert result.counts["labels_done"] == 3 and result.counts["task_done"] == 1
    assert set(ledger_states(engine, sid).values()) == {"done"}

    crm.requests.clear()
    again = await push_source(engine, sid, rules, crm, as_of=MON + timedelta(hours=3))
    assert crm.requests == {}  # no write and no read either
    assert again.plan.counts() == {}


async def test_leaving_a_segment_removes_only_segsyncs_tag(engine, sid):
    put_state(engine, sid, [{"id": "1", "labels": {"abc_xyz": "AX", "rfm": "champions", "vip": "yes"}}], MON)
    rules = make_rules(actions=[])
    ref = CustomerRef("contact", "1")
    crm = FakeCrm(tags={ref: {"оптовик", "VIP"}})  # the manager's own tags, one of them looks like ours
    await push_source(engine, sid, rules, crm, as_of=MON)
    assert crm.tags[ref] == {"оптовик", "VIP", tag("abc_xyz", "AX"), tag("rfm", "champions"), tag("vip", "yes")}

    put_state(engine, sid, [{"id": "1", "labels": {"abc_xyz": "BX", "rfm": "champions", "vip": None}}], MON + DAY)
    plan = plan_source(engine, sid, rules, as_of=MON + DAY)
    assert plan.counts() == {"customers_relabelled": 1, "labels_cleared": 1, "labels_set": 1}
    assert f"vip: clear {SHOW('vip', 'yes', 'ru')!r} (customer left the segment)" in plan.ops[0].reason
    await push_source(engine, sid, rules, crm, as_of=MON + DAY)
    assert crm.tags[ref] == {"оптовик", "VIP", tag("abc_xyz", "BX"), tag("rfm", "champions")}


async def test_crash_between_the_call_and_the_ledger_commit_creates_no_duplicate(engine, sid):
    put_state(engine, sid, churned(3), MON)
    rules = make_rules()
    crm = FakeCrm(crash_after="create_tasks")
    with pytest.raises(Crash):
        await push_source(engine, sid, rules, crm, as_of=MON)
    assert len(crm.tasks) == 3
    states = ledger_states(engine, sid)
    assert sorted(v for k, v in states.items() if k.startswith("task:")) == ["pending"] * 3

    assert plan_source(engine, sid, rules, as_of=MON).counts()["pending_to_reconcile"] == 3
    crm.requests.clear()
    result = await push_source(engine, sid, rules, crm, as_of=MON + timedelta(minutes=5))
    assert len(crm.tasks) == 3  # found by marker, not created again
    assert "create_tasks" not in crm.requests
    assert result.counts["reconciled_done"] == 3
    with engine.connect() as conn:
        ids = {r.remote_id for r in conn.execute(select(t.ledger).where(t.ledger.c.op == "task"))}
    assert ids == set(crm.tasks)


async def test_crash_while_committing_done_is_reconciled(engine, sid, monkeypatch):
    put_state(engine, sid, churned(2), MON)
    rules = make_rules()
    crm = FakeCrm()
    real = lg.mark_done

    def dying(engine_, source_id, done, now):
        done = list(done)
        if any(row.op == "task" for row, _ in done):
            raise Crash("power cut during commit")
        return real(engine_, source_id, done, now)

    monkeypatch.setattr(lg, "mark_done", dying)
    with pytest.raises(Crash):
        await push_source(engine, sid, rules, crm, as_of=MON)
    monkeypatch.setattr(lg, "mark_done", real)
    await push_source(engine, sid, rules, crm, as_of=MON + DAY)
    assert sorted(t_.customer.remote_id for t_ in crm.tasks.values()) == ["1", "2"]


async def test_ambiguous_write_is_looked_up_not_resent(engine, sid):
    put_state(engine, sid, churned(2), MON)
    crm = FakeCrm(ambiguous_after="create_tasks")
    result = await push_source(engine, sid, make_rules(), crm, as_of=MON)
    assert len(crm.tasks) == 2 and crm.requests["create_tasks"] == 1
    assert result.counts["reconciled_done"] == 2
    assert {v for k, v in ledger_states(engine, sid).items() if k.startswith("task:")} == {"done"}


async def test_an_open_task_of_the_same_action_is_never_duplicated_even_without_the_ledger(engine, sid):
    put_state(engine, sid, churned(1), MON)
    rules = make_rules()
    crm = FakeCrm()
    await push_source(engine, sid, rules, crm, as_of=MON)
    with engine.begin() as conn:  # the store is lost
        conn.execute(delete(t.ledger))
        conn.execute(delete(t.action_episodes))
    put_state(engine, sid, churned(1), MON + DAY)  # so the new episode gets a new key
    result = await push_source(engine, sid, rules, crm, as_of=MON + DAY)
    assert len(crm.tasks) == 1
    assert result.counts["task_skipped_open"] == 1


async def test_daily_cap_queues_the_rest_by_customer_value_across_days(engine, sid):
    put_state(engine, sid, churned(5), MON)
    rules = make_rules(limits={"daily_cap_per_manager": 2})
    crm = FakeCrm()
    plan = plan_source(engine, sid, rules, as_of=MON)
    assert plan.counts()["tasks_create"] == 2 and plan.counts()["tasks_queued"] == 3
    slots = {o.customer.remote_id: o.payload["slot"] for o in plan.ops if o.op == "task"}
    assert slots == {"5": "2026-03-02", "4": "2026-03-02", "3": "2026-03-03", "2": "2026-03-03", "1": "2026-03-04"}

    await push_source(engine, sid, rules, crm, as_of=MON)
    assert sorted(t_.customer.remote_id for t_ in crm.tasks.values()) == ["4", "5"]
    await push_source(engine, sid, rules, crm, as_of=MON + timedelta(hours=5))  # same day: nothing more
    assert len(crm.tasks) == 2
    await push_source(engine, sid, rules, crm, as_of=MON + DAY)
    assert sorted(t_.customer.remote_id for t_ in crm.tasks.values()) == ["2", "3", "4", "5"]
    tue = next(t_ for t_ in crm.tasks.values() if t_.customer.remote_id == "2")
    assert tue.due.isoformat() == "2026-03-05T18:00:00+03:00"  # due counts from the day it is created
    await push_source(engine, sid, rules, crm, as_of=MON + 2 * DAY)
    assert len(crm.tasks) == 5
    status = collect_status(engine, {"shop": sid})["sources"]["shop"]
    assert status["queued_ops"] == 0


async def test_cooldown_defers_a_new_episode(engine, sid):
    rules = make_rules()
    crm = FakeCrm()
    put_state(engine, sid, churned(1), MON)
    await push_source(engine, sid, rules, crm, as_of=MON)
    calm = [{"id": "1", "labels": {**A_CHURNED, "churn_flag": None}}]
    put_state(engine, sid, calm, MON + 3 * DAY)
    await push_source(engine, sid, rules, crm, as_of=MON + 3 * DAY)  # episode ends
    put_state(engine, sid, churned(1), MON + 7 * DAY)
    plan = plan_source(engine, sid, rules, as_of=MON + 7 * DAY)
    (op,) = [o for o in plan.ops if o.op == "task"]
    assert op.not_before is not None and op.not_before >= MON + 30 * DAY
    assert "cooldown: previous task 2026-03-02" in op.reason
    await push_source(engine, sid, rules, crm, as_of=MON + 7 * DAY)
    assert len(crm.tasks) == 1
    put_state(engine, sid, churned(1), MON + 31 * DAY)
    await push_source(engine, sid, rules, crm, as_of=MON + 31 * DAY)
    assert len(crm.tasks) == 1  # cooldown over, but the first task is still open in the CRM
    assert "still open" in explain_writeback(engine, sid, "1")["ops"][-1]["reason"]
    put_state(engine, sid, calm, MON + 32 * DAY)
    await push_source(engine, sid, rules, crm, as_of=MON + 32 * DAY)
    for task in crm.tasks.values():
        task.completed = True  # the manager closed it
    put_state(engine, sid, churned(1), MON + 33 * DAY)  # a Saturday: queued for Monday
    (op,) = [o for o in plan_source(engine, sid, rules, as_of=MON + 33 * DAY).ops if o.op == "task"]
    assert op.reason.endswith("queued for 2026-04-06 (next business day)")
    await push_source(engine, sid, rules, crm, as_of=MON + 35 * DAY)
    assert len(crm.tasks) == 2


async def test_failures_back_off_then_park_with_the_error_in_status(engine, sid):
    put_state(engine, sid, churned(1), MON)
    rules = make_rules(limits={"max_attempts": 2})
    crm = FakeCrm(reject={"1": WriteResult("", False, error="503 Service Unavailable", retriable=True)})
    await push_source(engine, sid, rules, crm, as_of=MON)
    assert crm.requests["set_labels"] == 1
    crm.requests.clear()
    await push_source(engine, sid, rules, crm, as_of=MON + timedelta(minutes=1))  # within backoff: nothing
    assert crm.writes == 0
    await push_source(engine, sid, rules, crm, as_of=MON + timedelta(hours=1))
    assert crm.writes == 2  # labels and the task, retried once each
    assert set(ledger_states(engine, sid).values()) == {"parked"}
    status = collect_status(engine, {"shop": sid})["sources"]["shop"]
    assert status["parked_ops"] == 2
    assert {p["error"] for p in status["parked_recent"]} == {"503 Service Unavailable"}
    crm.requests.clear()
    await push_source(engine, sid, rules, crm, as_of=MON + 2 * DAY)
    assert crm.writes == 0  # parked stays parked


async def test_permanent_rejection_parks_at_once(engine, sid):
    put_state(engine, sid, churned(1), MON)
    crm = FakeCrm(reject={"1": WriteResult("", False, error="Contact is not found", retriable=False)})
    await push_source(engine, sid, make_rules(), crm, as_of=MON)
    assert set(ledger_states(engine, sid).values()) == {"parked"}


async def test_inactive_responsible_falls_back_and_no_assignee_is_reported(engine, sid):
    put_state(engine, sid, churned(1, responsible="8"), MON)
    crm = FakeCrm()
    await push_source(engine, sid, make_rules(), crm, as_of=MON)
    assert next(iter(crm.tasks.values())).responsible_id == "99"

    rules = make_rules(actions=[{**make_rules().actions[0].model_dump(by_alias=True), "name": "other"}])
    rules = rules.model_copy(
        update={"actions": [rules.actions[0].model_copy(update={"task": rules.actions[0].task.model_copy(
            update={"fallback_user": None})})]}
    )  # fmt: skip
    plan = plan_source(engine, sid, rules, as_of=MON)
    assert plan.notes == ["1 task(s) not planned: no active assignee (set task.fallback_user)"]


async def test_transition_fires_after_its_delay_while_still_in_the_segment(engine, sid):
    rules = make_rules(
        actions=[
            {"name": "cross-sell", "transition": {"segment": "lifecycle", "to": ["new"], "delay": "14d"},
             "task": {"title": "Допродажа: {{ customer.name }}", "type": "todo"}}
        ]
    )  # fmt: skip
    put_history(engine, sid, [("1", "lifecycle", None, "new", MON), ("2", "lifecycle", None, "new", MON)])
    put_state(
        engine, sid, [{"id": "1", "labels": {"lifecycle": "new"}}, {"id": "2", "labels": {"lifecycle": "new"}}], MON
    )
    crm = FakeCrm()
    await push_source(engine, sid, rules, crm, as_of=MON + 13 * DAY)
    assert crm.tasks == {}
    put_state(
        engine, sid, [{"id": "1", "labels": {"lifecycle": "new"}}, {"id": "2", "labels": {"lifecycle": "active"}}],
        MON + 14 * DAY,
    )  # fmt: skip
    await push_source(engine, sid, rules, crm, as_of=MON + 14 * DAY)
    assert [(t_.customer.remote_id, t_.type) for t_ in crm.tasks.values()] == [("1", "todo")]
    await push_source(engine, sid, rules, crm, as_of=MON + 15 * DAY)
    assert len(crm.tasks) == 1
    assert "task:shop:cross-sell:contact:1:20260302T070000Z" in ledger_states(engine, sid)


async def test_completes_its_task_when_the_customer_buys_again(engine, sid):
    base = make_rules()
    action = base.actions[0].model_copy(update={"complete_on_purchase": True})
    rules = base.model_copy(update={"actions": [action]})
    put_state(engine, sid, churned(1), MON)
    crm = FakeCrm()
    await push_source(engine, sid, rules, crm, as_of=MON)
    bought = [{"id": "1", "labels": {**A_CHURNED, "churn_flag": None},
               "features": {"last_purchase": (MON + 2 * DAY).isoformat()}}]  # fmt: skip
    put_state(engine, sid, bought, MON + 3 * DAY)
    plan = plan_source(engine, sid, rules, as_of=MON + 3 * DAY)
    assert plan.counts()["tasks_complete"] == 1
    await push_source(engine, sid, rules, crm, as_of=MON + 3 * DAY)
    assert all(t_.completed for t_ in crm.tasks.values())
    crm.requests.clear()
    await push_source(engine, sid, rules, crm, as_of=MON + 4 * DAY)
    assert crm.requests == {}


async def test_a_queued_task_is_cancelled_when_its_trigger_stops(engine, sid):
    put_state(engine, sid, churned(3), MON)
    rules = make_rules(limits={"daily_cap_per_manager": 1})
    crm = FakeCrm()
    await push_source(engine, sid, rules, crm, as_of=MON)
    put_state(engine, sid, [{"id": "1", "labels": {**A_CHURNED, "churn_flag": None}}], MON + DAY)
    plan = plan_source(engine, sid, rules, as_of=MON + DAY)
    cancelled = [o for o in plan.ops if o.change == "cancel"]
    assert [o.customer.remote_id for o in cancelled] == ["1"]
    assert cancelled[0].reason == "not created: the trigger no longer holds"


async def test_dry_run_and_plan_write_nothing(engine, sid):
    put_state(engine, sid, churned(2), MON)
    crm = FakeCrm()
    result = await push_source(engine, sid, make_rules(), crm, as_of=MON, dry_run=True)
    assert result.plan.counts()["tasks_create"] == 2
    assert crm.requests == {} and ledger_states(engine, sid) == {}
    with engine.connect() as conn:
        assert conn.execute(select(t.runs)).all() == []


async def test_explain_shows_what_was_written_and_why(engine, sid):
    put_state(engine, sid, churned(1), MON)
    await push_source(engine, sid, make_rules(), FakeCrm(), as_of=MON)
    info = explain_writeback(engine, sid, "contact:1")
    assert info["labels_written"][0]["labels"] == shown(abc_xyz="AX", rfm="at_risk", vip="yes")
    assert [(o["op"], o["state"]) for o in info["ops"]] == [("labels", "done"), ("task", "done")]
    assert info["ops"][1]["reason"].startswith("action reactivation: where")
    assert info["ops"][1]["remote_id"] is not None
    assert info["episodes"][0]["action"] == "reactivation"
    assert explain_writeback(engine, sid, "1") == info


async def test_deleted_customers_are_not_written(engine, sid):
    put_state(engine, sid, [{**churned(1)[0], "deleted": MON}], MON)
    crm = FakeCrm()
    await push_source(engine, sid, make_rules(), crm, as_of=MON)
    assert crm.requests == {}


async def test_empty_segment_table_clears_nothing(engine, sid):
    put_state(engine, sid, [{"id": "1", "labels": {"abc_xyz": "AX"}}], MON)
    crm = FakeCrm()
    await push_source(engine, sid, make_rules(actions=[]), crm, as_of=MON)
    with engine.begin() as conn:
        conn.execute(delete(t.segment_state))
    plan = plan_source(engine, sid, make_rules(actions=[]), as_of=MON + DAY)
    assert plan.ops == [] and plan.notes

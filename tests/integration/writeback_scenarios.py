"""Scenarios both CRMs must pass; ``test_writeback_<crm>.py`` run them with that CRM's sandbox and view."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from segsync.actions.calendar import BusinessCalendar
from segsync.actions.model import Plan
from segsync.config.actions import WorkingHours

from . import russian
from .writeback_flow import AS_OF, Crm, Flow, RemoteTask, cli_time, crash_a_push, per_customer, run_cli

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def check_russian_text(flow: Flow, task: RemoteTask) -> None:
    """The stored text reads as the template says, formatted by hand here (not by the renderer)."""
    name, _ = flow.customers()[task.customer]
    features = flow.features()[task.customer]
    assert task.title == f"Реактивация: {name}"
    assert f"Не покупает {russian.days(int(features['recency_days']))}." in task.text
    expected = f"Последняя покупка {russian.long_date(features['last_purchase'])} на "
    assert expected in task.text, (features["last_purchase"], task.text)
    assert "None" not in task.text and "{{" not in task.text


async def first_push(flow: Flow, crm: Crm) -> tuple[dict, Plan, Counter[str]]:
    """Compute, plan and push once: (expected labels, the plan, requests the push made). Checks that every
    labelled customer was planned and written."""
    flow.compute(AS_OF)
    expected = flow.expected_labels()
    labelled = [ref for ref, labels in expected.items() if labels]
    plan = flow.plan(AS_OF)
    assert plan.counts()["customers_relabelled"] == len(labelled)
    before = crm.requests()
    result = await flow.push(AS_OF)
    used = crm.requests() - before
    assert result.counts["labels_done"] == len(labelled)
    return expected, plan, used


def check_first_tasks(flow: Flow, crm: Crm, plan: Plan) -> list[RemoteTask]:
    """One task per churned A/B customer, to the customer's manager (else the fallback), in Russian."""
    planned = {op.customer: op for op in plan.ops if op.op == "task"}
    states = flow.states()
    should = {ref for ref, labels in states.items() if labels.get("churn_flag") == "yes" and labels.get("abc") in "AB"}
    tasks = crm.segsync_tasks()
    assert should and set(per_customer(tasks)) == should == set(planned)
    assert max(per_customer(tasks).values()) == 1
    active, customers = flow.active_users(), flow.customers()
    for task in tasks:
        payload = planned[task.customer].payload
        assert task.responsible == payload["responsible_id"] and task.responsible in active
        if customers[task.customer][1] in active:
            assert task.responsible == customers[task.customer][1]
        assert task.deadline == datetime.fromisoformat(payload["due"])
        assert payload["marker"] in task.text and not task.completed
        check_russian_text(flow, task)
    assert {row.remote_id for row in flow.ledger("task")} == {task.id for task in tasks}
    assert {row.state for row in flow.ledger()} == {"done"}
    return tasks


async def crash_then_push_again(flow: Flow, crm: Crm, store_url: str, tmp: Path) -> None:
    """A push dies between creating tasks and committing them; the next push finds them by marker."""
    flow.compute(AS_OF)
    config = tmp / "segsync.yaml"
    config.write_text(flow.config_text, encoding="utf-8")

    created = crash_a_push(flow, crm, config, store_url)
    pending = [row for row in flow.ledger("task") if row.state == "pending"]
    assert pending and len(created) == len(pending) and max(per_customer(created).values()) == 1

    code, out, err = run_cli(["push", "--as-of", cli_time(AS_OF + HOUR), "--json"], config, store_url)
    assert code == 0, err
    applied = out[flow.source_name]["applied"]
    assert applied["reconciled_done"] == len(pending) and "task_done" not in applied
    after = crm.segsync_tasks()
    assert sorted(t.id for t in after) == sorted(t.id for t in created)
    rows = flow.ledger("task")
    assert {row.state for row in rows} == {"done"}
    assert {row.remote_id for row in rows} == {t.id for t in after}


async def cooldown_across_days(flow: Flow, crm: Crm) -> None:
    """Rules: ``where: city = 'Москва'``, ``cooldown: 30d``. A customer moves away and back two days after
    the first task: the new episode's task waits until the cooldown ends (and the first task is closed)."""
    flow.compute(AS_OF)
    await flow.push(AS_OF)
    (first, *_) = sorted(crm.segsync_tasks(), key=lambda t: (t.customer.kind, int(t.customer.remote_id)))
    who = first.customer
    raw = flow.raw(who)

    crm.set_city(who, "Казань", raw)
    await flow.pull()
    flow.compute(AS_OF + DAY)
    await flow.push(AS_OF + DAY)
    crm.set_city(who, "Москва", raw)
    await flow.pull()
    flow.compute(AS_OF + 2 * DAY)
    plan = flow.plan(AS_OF + 2 * DAY)
    (queued,) = [op for op in plan.ops if op.op == "task" and op.customer == who]
    assert "cooldown" in queued.reason and queued.not_before >= AS_OF + 30 * DAY
    await flow.push(AS_OF + 2 * DAY)
    crm.complete_task(first.id)  # the manager closes the first task meanwhile

    await flow.push(queued.not_before - DAY)
    assert per_customer(crm.segsync_tasks())[who] == 1  # still within the cooldown
    await flow.push(queued.not_before + HOUR)
    mine = [t for t in crm.segsync_tasks() if t.customer == who]
    assert len(mine) == 2 and sum(not t.completed for t in mine) == 1


async def daily_cap_across_days(flow: Flow, crm: Crm, cap: int) -> None:
    """Rules: ``where: churn_flag``, ``daily_cap_per_manager: cap``. Pushing on Mon, Tue, Sat and the next
    Mon: each manager gets at most ``cap`` new tasks per business day, the most valuable customers first,
    none on the day off; the rest waits in the ledger."""
    flow.compute(AS_OF)
    calendar = BusinessCalendar.from_config(WorkingHours(), "Europe/Moscow")
    values = {ref: float(f.get("clv") or 0) for ref, f in flow.features().items()}
    planned = [op for op in flow.plan(AS_OF).ops if op.op == "task"]
    candidates = Counter(op.payload["responsible_id"] for op in planned)
    assert max(candidates.values()) > 3 * cap  # enough work to need several days

    seen: set[str] = set()
    days = [AS_OF, AS_OF + DAY, AS_OF + 5 * DAY, AS_OF + 7 * DAY]
    for day in days:
        await flow.push(day + HOUR)
        new = [t for t in crm.segsync_tasks() if t.id not in seen]
        seen |= {t.id for t in new}
        if not calendar.is_business_day(calendar.local_date(day)):
            assert new == [], "no task goes out on a day off"
            continue
        assert max(Counter(t.responsible for t in new).values()) <= cap
        if day == AS_OF:  # the most valuable customers of each manager go first
            by_user = defaultdict(list)
            for op in planned:
                by_user[op.payload["responsible_id"]].append(values[op.customer])
            for task in new:
                ranked = sorted(by_user[task.responsible], reverse=True)
                assert values[task.customer] >= ranked[cap - 1]
    business_days = sum(1 for d in days if calendar.is_business_day(calendar.local_date(d)))
    tasks = crm.segsync_tasks()
    assert Counter(t.responsible for t in tasks) == Counter(
        {user: min(n, cap * business_days) for user, n in candidates.items()}
    )
    assert max(per_customer(tasks).values()) == 1
    queued = [row for row in flow.ledger("task") if row.state == "planned"]
    assert len(queued) == len(planned) - len(seen) and all(row.not_before > days[-1] for row in queued)

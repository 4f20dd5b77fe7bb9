"""Write-back to Bitrix24 end to end: sandbox over HTTP → store → analytics → plan → push → what the portal holds.

Labels land in segsync's own string user fields ``UF_CRM_SG_<KEY>`` on contacts and companies (docs/bitrix24.md),
tasks are ``tasks.task.add`` bound by ``UF_CRM_TASK``; both are checked through the sandbox's admin API, request
counts through its counters; the store is SQLite or PostgreSQL (``SEGSYNC_TEST_DB``). The portal runs at its
default limits (2 requests/s, burst 50). Scenarios shared with amoCRM are in ``writeback_scenarios``.
"""

from __future__ import annotations

from collections import Counter

from . import writeback_scenarios as scenario
from .writeback_flow import AS_OF, B24Crm, Flow, b24_source_block, rules_text

HOUR, DAY = scenario.HOUR, scenario.DAY
FIELDS = {"abc_xyz": "UF_CRM_SG_ABC_XYZ", "rfm": "UF_CRM_SG_RFM", "vip": "UF_CRM_SG_VIP",
          "churn_risk": "UF_CRM_SG_CHURN_RISK"}  # fmt: skip


async def start(engine, sandbox_factory, seed: int, **rules) -> tuple[Flow, B24Crm]:
    """A fresh portal, pulled in full; the rules' fallback user is an active user of that portal."""
    handle = sandbox_factory(seed=seed, size="tiny")
    block = b24_source_block(handle)
    flow = Flow.create(engine, rules_text(block, fallback_user="0", **rules))
    await flow.pull(full=True)
    flow = flow.with_rules(rules_text(block, fallback_user=min(flow.active_users(), key=int), **rules))
    return flow, B24Crm(handle)


def segsync_fields(values: dict) -> dict[str, str]:
    """segsync's fields that hold a value (a cleared field is "")."""
    return {name: v for name, v in values.items() if name.startswith("UF_CRM_SG_") and v not in ("", None)}


def as_fields(labels: dict[str, str]) -> dict[str, str]:
    return {FIELDS[label]: value for label, value in labels.items()}


async def test_first_push_writes_exactly_the_expected_fields_and_tasks_then_nothing(engine, sandbox_factory):
    flow, crm = await start(engine, sandbox_factory, seed=31)
    expected, plan, used = await scenario.first_push(flow, crm)
    labelled = [ref for ref, labels in expected.items() if labels]

    # user fields: segsync's four string fields on contacts and companies, nothing else created
    defined = crm.userfields()
    for kind in ("contact", "company"):
        ours = [f for f in defined[kind] if f["FIELD_NAME"].startswith("UF_CRM_SG_")]
        assert sorted(f["FIELD_NAME"] for f in ours) == sorted(FIELDS.values())
        assert {f["USER_TYPE_ID"] for f in ours} == {"string"}
    fields = crm.fields()
    for ref in set(expected) | set(fields):
        assert segsync_fields(fields.get(ref, {})) == as_fields(expected.get(ref, {})), ref
    tasks = scenario.check_first_tasks(flow, crm, plan)
    # everything batched by 50: field list + field add, the labels, the open-task lookup and the task adds
    assert set(used) == {"batch"}
    assert used["batch"] == 2 + -(-len(labelled) // 50) + 2 * -(-len(tasks) // 50)

    # nothing changed → the second push sends no request at all
    before = crm.requests()
    again = await flow.push(AS_OF + 3 * HOUR)
    assert crm.requests() - before == Counter()
    assert again.plan.counts() == {}


async def test_leaving_a_segment_clears_only_segsyncs_field(engine, sandbox_factory):
    flow, crm = await start(engine, sandbox_factory, seed=32)
    flow.compute(AS_OF)
    await flow.push(AS_OF)
    first = flow.expected_labels()
    # managers keep their own note in their own user field, and edit a standard field
    for kind in ("contact", "company"):
        crm.rest(f"crm.{kind}.userfield.add", {"fields": {"FIELD_NAME": "NOTE", "USER_TYPE_ID": "string",
                                                          "LABEL": "Заметка менеджера"}})  # fmt: skip
    for ref, labels in first.items():
        if labels:
            crm.edit(ref, {"UF_CRM_NOTE": f"звонить после обеда ({ref.remote_id})", "COMMENTS": "свой комментарий"})

    later = AS_OF + 180 * DAY  # customers age: some leave A (and VIP), RFM segments move
    flow.compute(later)
    second = flow.expected_labels()
    lost_vip = {ref for ref in first if "vip" in first[ref] and "vip" not in second.get(ref, {})}
    assert lost_vip, "the world should move some customers out of A in 180 days"
    await flow.push(later)

    fields = crm.fields()
    for ref in set(first) | set(second):
        assert segsync_fields(fields.get(ref, {})) == as_fields(second.get(ref, {})), ref
        if first.get(ref):
            assert fields[ref]["UF_CRM_NOTE"] == f"звонить после обеда ({ref.remote_id})"
    for ref in lost_vip:
        assert fields[ref][FIELDS["vip"]] in ("", None)  # cleared, not the text "None"
        record = crm.admin("GET", f"entities/{ref.kind}/{ref.remote_id}")
        assert record["COMMENTS"] == "свой комментарий"


async def test_crash_between_the_task_call_and_the_ledger_commit_creates_no_duplicate(
    engine, store_url, sandbox_factory, tmp_path
):
    flow, crm = await start(engine, sandbox_factory, seed=33)
    await scenario.crash_then_push_again(flow, crm, store_url, tmp_path)


async def test_cooldown_holds_a_new_episode_back_across_days(engine, sandbox_factory):
    flow, crm = await start(engine, sandbox_factory, seed=34, where="city = 'Москва'", cooldown="30d")
    await scenario.cooldown_across_days(flow, crm)


async def test_daily_cap_per_manager_spreads_tasks_over_business_days(engine, sandbox_factory):
    flow, crm = await start(engine, sandbox_factory, seed=35, where="churn_flag", cap=2)
    await scenario.daily_cap_across_days(flow, crm, cap=2)

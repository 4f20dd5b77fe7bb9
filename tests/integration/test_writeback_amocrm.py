"""Write-back to amoCRM end to end: sandbox over HTTP → store → analytics → plan → push → what the sandbox holds.

Tags and tasks are checked through the sandbox's admin API, request counts through its counters; the store is
SQLite or PostgreSQL (``SEGSYNC_TEST_DB``). Scenarios shared with Bitrix24 are in ``writeback_scenarios``.
"""

from __future__ import annotations

from collections import Counter

from . import writeback_scenarios as scenario
from .writeback_flow import AS_OF, PREFIX, AmoCrm, Flow, amo_source_block, rules_text

HOUR, DAY = scenario.HOUR, scenario.DAY


async def start(engine, sandbox_factory, seed: int, **rules) -> tuple[Flow, AmoCrm]:
    """A fresh account, pulled in full; the rules' fallback user is an active user of that account."""
    handle = sandbox_factory(seed=seed, size="tiny", portals=0, accounts=1)
    block = amo_source_block(handle)
    flow = Flow.create(engine, rules_text(block, fallback_user="0", **rules))
    await flow.pull(full=True)
    flow = flow.with_rules(rules_text(block, fallback_user=min(flow.active_users(), key=int), **rules))
    return flow, AmoCrm(handle)


def segsync_tags(tags: set[str]) -> set[str]:
    return {name for name in tags if name.startswith(PREFIX)}


def writes(delta: Counter[str]) -> Counter[str]:
    return Counter({key: n for key, n in delta.items() if n and not key.startswith("GET ")})


async def test_first_push_writes_exactly_the_expected_tags_and_tasks_then_nothing(engine, sandbox_factory):
    flow, crm = await start(engine, sandbox_factory, seed=21)
    expected, plan, used = await scenario.first_push(flow, crm)
    labelled = [ref for ref, labels in expected.items() if labels]

    # tags: exactly the expected ones on every customer, no other segsync tag anywhere, nor in the dictionary
    tags = crm.tags()
    for ref in set(expected) | set(tags):
        assert segsync_tags(tags.get(ref, set())) == {PREFIX + v for v in expected.get(ref, {}).values()}, ref
    assert segsync_tags(crm.tag_dictionary()) == {PREFIX + v for labels in expected.values() for v in labels.values()}
    scenario.check_first_tasks(flow, crm, plan)
    # batched ≤ 50 per request: one PATCH per 50 relabelled contacts or companies, one POST for the tasks
    assert used["POST /api/v4/tasks"] == 1
    kinds = Counter(ref.kind for ref in labelled)
    assert sum(n for key, n in used.items() if key.startswith("PATCH")) == sum(-(-n // 50) for n in kinds.values())

    # nothing changed → the second push writes nothing (opening the connector reads the account once)
    before = crm.requests()
    again = await flow.push(AS_OF + 3 * HOUR)
    delta = crm.requests() - before
    assert writes(delta) == Counter() and sum(delta.values()) <= 1
    assert again.plan.counts() == {}


async def test_leaving_a_segment_removes_only_segsyncs_tag(engine, sandbox_factory):
    flow, crm = await start(engine, sandbox_factory, seed=22)
    flow.compute(AS_OF)
    await flow.push(AS_OF)
    first = flow.expected_labels()
    # managers tag their customers too, one tag even spelled like segsync's value but without the prefix
    own: dict = {}
    for ref, labels in first.items():
        if labels:
            own[ref] = {"постоянный клиент", next(iter(labels.values())), "segment:old"}
            crm.add_tags(ref, sorted(own[ref]))

    later = AS_OF + 180 * DAY  # customers age: some leave A (and VIP), RFM segments move
    flow.compute(later)
    second = flow.expected_labels()
    left = {ref for ref in first if set(first[ref].values()) - set(second.get(ref, {}).values())}
    lost_vip = {ref for ref in first if "vip" in first[ref] and "vip" not in second.get(ref, {})}
    assert left and lost_vip, "the world should move some customers between segments in 180 days"
    await flow.push(later)

    tags = crm.tags()
    for ref in set(first) | set(second):
        wanted = {PREFIX + v for v in second.get(ref, {}).values()}
        assert tags.get(ref, set()) == own.get(ref, set()) | wanted, ref
    for ref in lost_vip:
        assert PREFIX + first[ref]["vip"] not in tags[ref] and own[ref] <= tags[ref]


async def test_crash_between_the_task_call_and_the_ledger_commit_creates_no_duplicate(
    engine, store_url, sandbox_factory, tmp_path
):
    flow, crm = await start(engine, sandbox_factory, seed=23)
    await scenario.crash_then_push_again(flow, crm, store_url, tmp_path)


async def test_cooldown_holds_a_new_episode_back_across_days(engine, sandbox_factory):
    flow, crm = await start(engine, sandbox_factory, seed=24, where="city = 'Москва'", cooldown="30d")
    await scenario.cooldown_across_days(flow, crm)


async def test_daily_cap_per_manager_spreads_tasks_over_business_days(engine, sandbox_factory):
    flow, crm = await start(engine, sandbox_factory, seed=25, where="churn_flag", cap=2)
    await scenario.daily_cap_across_days(flow, crm, cap=2)

"""Pulls through the real orchestrator and store: full, incremental, ties, mid-scan edits, fallback, events."""

from __future__ import annotations

from sqlalchemy import func, select

from segsync.store import tables as t
from segsync.sync import pull_source, reconcile_source

from .conftest import NOW, connector, seed_tokens

T = 1_700_000_000


def _count(engine, table, *cond) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table).where(*cond)).scalar_one()


def _lists(fake, path):
    return [r for r in fake.requests if r.url.path == path and r.method == "GET"]


async def test_full_then_incremental_pull_end_to_end(engine, fake, store, source_id):
    await seed_tokens(store, fake)
    fake.add("companies", 1, T)
    for i in range(1, 601):
        fake.add("contacts", i, T + i, _embedded={"tags": [], "companies": [{"id": 1}] if i == 1 else []})
    for i in range(1, 301):
        fake.add(
            "leads",
            i,
            T + i,
            status_id=142 if i % 2 else 2030,
            closed_at=T + i if i % 2 else None,
            _embedded={"tags": [], "companies": [], "contacts": [{"id": i, "is_main": True}]},
        )
    fake.records["contacts"][7]["created_at"] = "garbage"  # one bad record: quarantined, run goes on
    async with connector(store, touches=False) as amo:
        result = await pull_source(engine, source_id, amo)
    assert result.counts["contacts"]["upserted"] == 599 and result.counts["contacts"]["quarantined"] == 1
    assert _count(engine, t.deals, t.deals.c.status == "won") == 150
    assert _count(engine, t.stages) == 3 and _count(engine, t.currencies) == 1
    with engine.connect() as c:
        cursor = c.execute(select(t.cursors.c.state).where(t.cursors.c.stream == "contacts")).scalar_one()
        deal = c.execute(select(t.deals).where(t.deals.c.remote_id == "1")).one()
    assert cursor == {"updated_at": T + 600}
    assert deal.contact_id == "1" and deal.currency == "RUB"

    # 1,000 changes → incremental reads ceil(1000/250) + 2 pages at most per entity
    for i in range(1, 601):
        fake.touch("contacts", i, T + 10_000 + i // 3)  # three per second: ties at page boundaries
    fake.records["contacts"][7]["created_at"] = T
    for i in range(1, 301):
        fake.touch("leads", i, T + 10_000 + i)
    for i in range(601, 1001):
        fake.add("contacts", i, T + 10_500)  # 400 in one second: a crowded second
    fake.requests.clear()
    async with connector(store, touches=False) as amo:
        result = await pull_source(engine, source_id, amo)
    assert result.counts["contacts"]["upserted"] == 1000
    assert _count(engine, t.customers, t.customers.c.kind == "contact") == 1000
    assert len(_lists(fake, "/api/v4/contacts")) <= 4 + 2 + 2  # + the crowded second read by id
    assert len(_lists(fake, "/api/v4/leads")) <= 2 + 2
    assert _count(engine, t.quarantine, t.quarantine.c.resolved_at.is_(None)) == 0  # the fixed record resolved it
    for r in _lists(fake, "/api/v4/contacts"):
        q = r.url.params
        assert q["limit"] == "250" and "filter[updated_at][from]" in q and "filter[updated_at][to]" in q
        assert q.get("order[updated_at]") == "asc" or q.get("order[id]") == "asc"


async def test_records_moving_out_of_the_window_mid_scan_do_not_hide_others(engine, fake, store, source_id):
    await seed_tokens(store, fake)
    for i in range(1, 1001):
        fake.add("contacts", i, T + i)
    calls = {"n": 0}

    def edit_during_scan(key, query):
        if key == "contacts" and query.get("filter[updated_at][from]"):
            calls["n"] += 1
            if calls["n"] == 2:  # a manager edits 50 already-read contacts between our pages
                for i in range(1, 51):
                    fake.touch("contacts", i, NOW * 2)

    fake.on_list = edit_during_scan
    async with connector(store, touches=False, concurrency=1) as amo:
        await pull_source(engine, source_id, amo, entities=["contacts"])
    assert _count(engine, t.customers) == 1000  # an offset walk would have skipped 50 here


async def test_parallel_full_pull_reads_everything_once(engine, fake, store, source_id):
    await seed_tokens(store, fake)
    for i in range(1, 3001):
        fake.add("leads", i, T + i * 37)  # spread over ~31 hours
    async with connector(store, touches=False, concurrency=4) as amo:
        result = await pull_source(engine, source_id, amo, entities=["deals"])
    assert _count(engine, t.deals) == 3000
    reads = len(_lists(fake, "/api/v4/leads"))
    assert reads <= 3000 / 250 + 4 + 8  # splits cost at most a partial page or an empty probe each
    assert result.counts["deals"]["upserted"] >= 3000
    with engine.connect() as c:
        cursor = c.execute(select(t.cursors.c.state).where(t.cursors.c.stream == "deals")).scalar_one()
    assert cursor == {"updated_at": T + 3000 * 37}


async def test_without_api_filtering_newest_first_scan_stops_at_the_cursor(engine, fake, store, source_id):
    fake.filter_enabled = False
    await seed_tokens(store, fake)
    for i in range(1, 1001):
        fake.add("companies", i, T + i * 10)
    async with connector(store, touches=False) as amo:
        await pull_source(engine, source_id, amo, entities=["companies"])
    assert _count(engine, t.customers) == 1000
    for i in range(1, 11):
        fake.touch("companies", i, T + 50_000 + i)
    fake.requests.clear()
    async with connector(store, touches=False) as amo:
        result = await pull_source(engine, source_id, amo, entities=["companies"])
    reads = _lists(fake, "/api/v4/companies")
    assert len(reads) == 1 and reads[0].url.params["order[updated_at]"] == "desc"
    assert "filter[updated_at][from]" not in reads[0].url.params
    assert result.counts["companies"]["upserted"] >= 10  # + the overlap re-read (10 min)


async def test_deletions_restores_and_merges_from_events(engine, fake, store, source_id):
    await seed_tokens(store, fake)
    for i in range(1, 6):
        fake.add("contacts", i, T + i)
        fake.add("leads", i, T + i)
    async with connector(store, touches=False) as amo:
        await pull_source(engine, source_id, amo, entities=["contacts", "deals"])
    now = int(__import__("time").time())
    fake.event("contact_deleted", "contact", 1, now - 5)
    fake.event("lead_deleted", "lead", 2, now - 5)
    fake.event("lead_restored", "lead", 2, now - 3)  # deleted then restored: alive
    fake.event("lead_deleted", "lead", 3, now - 2)
    del fake.records["contacts"][4]
    fake.event("entity_merged", "contact", 4, now - 1)  # merged away: gone
    fake.event("entity_merged", "contact", 5, now - 1)  # the survivor: still there
    async with connector(store, touches=False) as amo:
        result = await pull_source(engine, source_id, amo, entities=[])
    assert result.counts["events"]["deleted"] == 3
    with engine.connect() as c:  # closed here: a connection left to the collector holds its transaction open
        deleted = {
            (r.kind, r.remote_id) for r in c.execute(select(t.customers).where(t.customers.c.deleted_at.is_not(None)))
        }
    assert deleted == {("contact", "1"), ("contact", "4")}
    assert _count(engine, t.deals, t.deals.c.deleted_at.is_not(None)) == 1
    ev = next(r for r in fake.requests if r.url.path == "/api/v4/events").url.params
    assert ev["limit"] == "100" and "contact_deleted" in ev.get_list("filter[type][]")

    # restore arrives later → the row comes back
    fake.event("contact_restored", "contact", 1, now)
    async with connector(store, touches=False) as amo:
        fake.requests.clear()
        await pull_source(engine, source_id, amo, entities=[])
    assert _count(engine, t.customers, t.customers.c.deleted_at.is_not(None)) == 1


async def test_id_sweep_marks_missing_records_deleted(engine, fake, store, source_id):
    await seed_tokens(store, fake)
    for i in range(1, 11):
        fake.add("companies", i, T + i)
    async with connector(store, touches=False) as amo:
        await pull_source(engine, source_id, amo, entities=["companies"])
        del fake.records["companies"][3]
        out = await reconcile_source(engine, source_id, amo, entities=["companies"])
    assert out["companies"]["deleted"] == 1


async def test_touches_from_tasks_resolve_leads_to_customers(engine, fake, store, source_id):
    await seed_tokens(store, fake)
    fake.add("leads", 77, T, _embedded={"tags": [], "companies": [{"id": 9}], "contacts": [{"id": 5, "is_main": True}]})
    fake.tasks = {
        1: {
            "id": 1,
            "entity_type": "contacts",
            "entity_id": 5,
            "is_completed": True,
            "task_type_id": 1,
            "updated_at": T + 10,
            "complete_till": T,
            "text": "call",
        },
        2: {
            "id": 2,
            "entity_type": "leads",
            "entity_id": 77,
            "is_completed": True,
            "task_type_id": 2,
            "updated_at": T + 20,
            "complete_till": T,
            "text": "meet",
        },
        3: {
            "id": 3,
            "entity_type": None,
            "entity_id": None,
            "is_completed": False,
            "task_type_id": 1,
            "updated_at": T + 30,
            "complete_till": T,
            "text": "free",
        },
    }
    async with connector(store) as amo:
        await pull_source(engine, source_id, amo, entities=["touches"])
    with engine.connect() as c:
        rows = {r.remote_id: (r.customer_kind, r.customer_id, r.kind) for r in c.execute(select(t.touches))}
        cursor = c.execute(select(t.cursors.c.state).where(t.cursors.c.stream == "touches")).scalar_one()
    assert rows == {"task:1": ("contact", "5", "call"), "task:2": ("company", "9", "meeting")}
    assert cursor == {"updated_at": T + 30}

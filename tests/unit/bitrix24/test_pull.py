"""Pulls through the real orchestrator into a real store: full, incremental, resume, quarantine, sweep."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from connectors.bitrix24.connector import Bitrix24Connector
from segsync.app import ensure_sources
from segsync.errors import FatalCrmError
from segsync.store import tables as t
from segsync.sync import pull_source, reconcile_source
from segsync.sync.pull import load_cursor

from .conftest import make_source
from .fakeportal import FakePortal, company, contact, deal

CHANGED = "2026-03-01T11:55:00+03:00"  # after the watermark (12:00) minus the 10-minute overlap


def seed(portal: FakePortal, contacts: int = 120, companies: int = 30, deals: int = 300) -> None:
    portal.statuses = [
        {"ENTITY_ID": "DEAL_STAGE", "STATUS_ID": "NEW", "NAME": "New", "SORT": "10", "SEMANTICS": None},
        {"ENTITY_ID": "DEAL_STAGE", "STATUS_ID": "WON", "NAME": "Won", "SORT": "60", "SEMANTICS": "S"},
        {"ENTITY_ID": "DEAL_STAGE", "STATUS_ID": "LOSE", "NAME": "Lost", "SORT": "70", "SEMANTICS": "F"},
        {"ENTITY_ID": "DEAL_STAGE_1", "STATUS_ID": "C1:NEW", "NAME": "New", "SORT": "10", "SEMANTICS": None},
    ]
    portal.categories.append({"id": 1, "name": "Wholesale", "sort": 200, "isDefault": "N"})
    portal.contacts = [contact(i, COMPANY_ID=str(i % companies + 1)) for i in range(1, contacts + 1)]
    portal.companies = [company(i) for i in range(1, companies + 1)]
    portal.deals = [
        deal(
            i,
            contactId=i % contacts + 1,
            contactIds=[i % contacts + 1],
            companyId=i % 3 and i % companies,
            currencyId="USD" if i % 10 == 0 else "RUB",
        )
        for i in range(1, deals + 1)
    ]
    portal.activities = [
        {
            "ID": "1",
            "OWNER_TYPE_ID": "3",
            "OWNER_ID": "5",
            "TYPE_ID": "2",
            "PROVIDER_ID": "VOXIMPLANT_CALL",
            "COMPLETED": "Y",
            "START_TIME": "2025-05-01T10:00:00+03:00",
            "LAST_UPDATED": "2025-05-01T10:05:00+03:00",
        },
        {
            "ID": "2",
            "OWNER_TYPE_ID": "2",
            "OWNER_ID": "4",
            "TYPE_ID": "4",
            "PROVIDER_ID": "CRM_EMAIL",
            "COMPLETED": "Y",
            "START_TIME": "2025-05-02T10:00:00+03:00",
            "LAST_UPDATED": "2025-05-02T10:05:00+03:00",
        },
        {
            "ID": "3",
            "OWNER_TYPE_ID": "1",
            "OWNER_ID": "8",
            "TYPE_ID": "2",
            "COMPLETED": "Y",
            "START_TIME": "2025-05-03T10:00:00+03:00",
            "LAST_UPDATED": "2025-05-03T10:05:00+03:00",
        },
    ]


def _sid(engine, source) -> int:
    return ensure_sources(engine, [source])[source.name]


def _count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


async def test_full_then_incremental_pull(engine, portal, events):
    seed(portal)
    source = make_source()
    sid = _sid(engine, source)
    async with Bitrix24Connector(source, events.context()) as conn:
        result = await pull_source(engine, sid, conn, full=True)
    assert _count(engine, t.customers, t.customers.c.kind == "contact") == 120
    assert _count(engine, t.customers, t.customers.c.kind == "company") == 30
    assert _count(engine, t.deals) == 300
    assert _count(engine, t.stages) == 4 and _count(engine, t.currencies) == 2 and _count(engine, t.users) == 1
    assert result.counts["touches"]["upserted"] == 2  # the lead's call is nobody's touch
    with engine.connect() as db:
        d10 = db.execute(select(t.deals).where(t.deals.c.remote_id == "10")).one()
        touch = db.execute(select(t.touches).where(t.touches.c.remote_id == "2")).one()
        c5 = db.execute(
            select(t.customers).where(t.customers.c.remote_id == "5", t.customers.c.kind == "contact")
        ).one()
    assert (d10.status, d10.currency, d10.amount, d10.amount_base) == (
        "won",
        "USD",
        Decimal("1000.50"),
        Decimal("90045.00"),
    )
    assert d10.contact_ids == ["11"] and d10.closed_at == datetime(2025, 3, 2, 12, 30, tzinfo=UTC)
    assert (touch.customer_kind, touch.customer_id) == ("company", "4")  # deal 4's company
    assert c5.phones == ["+79123456789"] and c5.emails == ["user5@example.com"] and c5.company_id == "6"
    assert load_cursor(engine, sid, "deals") == {"v": 1, "watermark": "2026-03-01T12:00:00+03:00", "date_filter": "iso"}

    # incremental: two changes, a handful of requests per entity
    portal.contacts[4]["NAME"] = "Renamed"
    portal.contacts[4]["DATE_MODIFY"] = CHANGED
    portal.deals[9].update(stageId="LOSE", stageSemanticId="F", updatedTime=CHANGED)
    portal.requests.clear()
    async with Bitrix24Connector(source, events.context()) as conn:
        result = await pull_source(engine, sid, conn)
    assert result.counts["contacts"]["upserted"] == 1 and result.counts["deals"]["upserted"] == 1
    list_calls = [b for m, b in portal.requests if m == "batch" and "c0" in b["cmd"]]
    assert len(list_calls) == 4  # one chained batch per list entity: ≤ 2,500 changes each
    contact_batch = next(b for b in list_calls if "crm.contact.list" in b["cmd"]["c0"])
    assert "filter[%3E%3DDATE_MODIFY]=2026-03-01T11%3A50%3A00%2B03%3A00" in contact_batch["cmd"]["c0"]
    with engine.connect() as db:
        assert db.execute(select(t.deals.c.status).where(t.deals.c.remote_id == "10")).scalar_one() == "lost"
        assert (
            db.execute(
                select(t.customers.c.name).where(t.customers.c.remote_id == "5", t.customers.c.kind == "contact")
            ).scalar_one()
            == "Renamed Test"
        )


async def test_bad_records_are_quarantined_and_the_run_goes_on(engine, portal, events):
    seed(portal, contacts=10, companies=2, deals=5)
    portal.contacts[3]["DATE_MODIFY"] = "вчера"
    portal.deals[1]["opportunity"] = "около миллиона"
    source = make_source(touches=False)
    sid = _sid(engine, source)
    async with Bitrix24Connector(source, events.context()) as conn:
        await pull_source(engine, sid, conn, full=True)
    assert _count(engine, t.customers, t.customers.c.kind == "contact") == 9
    assert _count(engine, t.deals) == 4
    with engine.connect() as db:
        rows = db.execute(select(t.quarantine.c.entity, t.quarantine.c.remote_id, t.quarantine.c.reason)).all()
    assert {(r.entity, r.remote_id) for r in rows} == {("contacts", "4"), ("deals", "2")}
    assert all(r.reason for r in rows)


async def test_a_crashed_full_pull_resumes_where_the_store_stopped(engine, portal, events):
    seed(portal, contacts=7_000, companies=1, deals=1)
    source = make_source(touches=False, parallel_chains=2)
    sid = _sid(engine, source)
    batches = {"n": 0}

    def crash_after_two_contact_batches(method, body):
        if method == "batch" and "crm.contact.list" in body["cmd"].get("c0", ""):
            batches["n"] += 1
            if batches["n"] == 3:
                return httpx.Response(403, json={"error": "ACCESS_DENIED", "error_description": "Access denied!"})
        return None

    portal.hooks.append(crash_after_two_contact_batches)
    async with Bitrix24Connector(source, events.context()) as conn:
        with pytest.raises(FatalCrmError):
            await pull_source(engine, sid, conn, full=True)
    stored = _count(engine, t.customers, t.customers.c.kind == "contact")
    cursor = load_cursor(engine, sid, "contacts")
    assert cursor["run"]["mode"] == "full" and 0 < stored < 7_000
    done = sum(1 for s in cursor["run"]["segments"] if s[3])
    assert done >= 1

    portal.hooks.clear()
    portal.requests.clear()
    async with Bitrix24Connector(source, events.context()) as conn:
        await pull_source(engine, sid, conn, entities=["contacts"])
    assert _count(engine, t.customers, t.customers.c.kind == "contact") == 7_000
    contact_batches = [b for m, b in portal.requests if m == "batch"]
    assert len(contact_batches) < 3  # only what was missing, not the whole table again
    assert "run" not in load_cursor(engine, sid, "contacts")


async def test_ignored_iso_filter_switches_to_the_local_form(engine, portal, events):
    seed(portal, contacts=60, companies=1, deals=1)
    source = make_source(touches=False)
    sid = _sid(engine, source)
    async with Bitrix24Connector(source, events.context()) as conn:
        await pull_source(engine, sid, conn, full=True)
    portal.ignore_iso_modified_filter = True
    async with Bitrix24Connector(source, events.context()) as conn:
        result = await pull_source(engine, sid, conn, entities=["contacts"])
    assert result.counts["contacts"]["upserted"] == 60  # everything came back: still correct, just slower
    assert load_cursor(engine, sid, "contacts")["date_filter"] == "local"
    portal.requests.clear()
    async with Bitrix24Connector(source, events.context()) as conn:
        result = await pull_source(engine, sid, conn, entities=["contacts"])
    assert result.counts["contacts"]["upserted"] == 0
    first = next(b for m, b in portal.requests if m == "batch" and "c0" in b["cmd"])["cmd"]["c0"]
    assert "filter[%3E%3DDATE_MODIFY]=2026-03-01+11%3A50%3A00" in first


async def test_reconcile_marks_deleted_deals(engine, portal, events):
    seed(portal, contacts=5, companies=1, deals=60)
    source = make_source(touches=False)
    sid = _sid(engine, source)
    async with Bitrix24Connector(source, events.context()) as conn:
        await pull_source(engine, sid, conn, full=True)
    portal.deals = [d for d in portal.deals if d["id"] not in (7, 55)]
    async with Bitrix24Connector(source, events.context()) as conn:
        counts = await reconcile_source(engine, sid, conn)
    assert counts["deals"]["deleted"] == 2 and counts["contacts"]["deleted"] == 0
    assert _count(engine, t.deals, t.deals.c.deleted_at.is_not(None)) == 2


async def test_list_ids_is_id_only(portal, connect):
    seed(portal, contacts=3_000, companies=1, deals=1)
    async with connect() as conn:
        ids = [i async for chunk in conn.list_ids("contacts") for i in chunk]
    assert sorted(ids, key=int) == [str(i) for i in range(1, 3_001)]
    first = next(b for m, b in portal.requests if m == "batch")["cmd"]["c0"]
    assert "select[0]=ID&start=-1" in first and "select[1]" not in first

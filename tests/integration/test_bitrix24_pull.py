"""The Bitrix24 connector against the sandbox over real HTTP: pulls, changes, deletions, throttling."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from connectors.bitrix24.connector import Bitrix24Connector
from connectors.bitrix24.options import Bitrix24Source
from segsync.app import ensure_sources
from segsync.contract import ConnectorContext
from segsync.store import tables as t
from segsync.sync import pull_source, reconcile_source
from segsync.tokens import DbTokenStore

ADMIN = "/b24/portal/_admin/"


def b24_source(handle: Any, **overrides: Any) -> Bitrix24Source:
    data = {"name": "b24", "kind": "bitrix24", "webhook_url": handle.info["bitrix24"]["webhook_url"]}
    data.update(overrides)
    return Bitrix24Source.model_validate(data)


def connector(engine: Any, source: Bitrix24Source) -> tuple[Bitrix24Connector, int]:
    sid = ensure_sources(engine, [source])[source.name]
    return Bitrix24Connector(source, ConnectorContext(tokens=DbTokenStore(engine, sid))), sid


def rows(engine: Any, table: Any, *where: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table).where(*where)))


def count(engine: Any, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def state(handle: Any) -> dict[str, Any]:
    return handle.admin("GET", ADMIN + "state")


async def test_full_then_incremental_pull_equals_the_sandbox(engine, sandbox_factory):
    handle = sandbox_factory(seed=3, size="tiny")
    expected = handle.info["bitrix24"]["counts"]
    source = b24_source(handle)
    conn, sid = connector(engine, source)
    async with conn:
        first = await pull_source(engine, sid, conn, full=True)
        full_requests = conn.requests
    assert (
        count(engine, t.customers, t.customers.c.kind == "contact") + first.counts["contacts"]["quarantined"]
        == (expected["contacts"])
    )
    assert count(engine, t.customers, t.customers.c.kind == "company") == expected["companies"]
    assert count(engine, t.deals) + first.counts["deals"]["quarantined"] == expected["deals"]
    assert count(engine, t.users) == expected["users"]
    assert count(engine, t.stages) > 0 and count(engine, t.touches) > 0

    # every stored deal matches the portal's own record (classic field names through the admin API)
    for deal in rows(engine, t.deals)[:40]:
        remote = handle.admin("GET", ADMIN + f"entities/deal/{deal.remote_id}")
        assert deal.status == {"S": "won", "F": "lost", "P": "open"}[remote["STAGE_SEMANTIC_ID"]]
        assert deal.stage_id == remote["STAGE_ID"] and deal.pipeline_id == str(remote["CATEGORY_ID"])
        assert (deal.company_id or "0") == str(remote.get("COMPANY_ID") or "0")
        if deal.amount is not None and remote.get("CURRENCY_ID") == "RUB":
            assert deal.amount_base == deal.amount
    total_won = sum((d.amount_base or Decimal(0)) for d in rows(engine, t.deals, t.deals.c.status == "won"))
    assert total_won > 0

    # a manager edits a deal and a contact, adds a deal and deletes one
    deal_id = rows(engine, t.deals)[5].remote_id
    handle.admin("POST", ADMIN + f"entities/deal/{deal_id}", {"OPPORTUNITY": "777.77", "TITLE": "Edited"})
    contact_id = rows(engine, t.customers, t.customers.c.kind == "contact")[3].remote_id
    handle.admin("POST", ADMIN + f"entities/contact/{contact_id}", {"NAME": "Новое", "LAST_NAME": "Имя"})
    created = handle.admin("POST", ADMIN + "entities/deal", {"TITLE": "Fresh", "OPPORTUNITY": "10",
                                                             "CURRENCY_ID": "RUB", "STAGE_ID": "NEW"})  # fmt: skip
    deleted_id = rows(engine, t.deals)[7].remote_id
    handle.admin("DELETE", ADMIN + f"entities/deal/{deleted_id}")

    before = state(handle)["counters"]["requests"]
    conn, sid = connector(engine, source)
    async with conn:
        second = await pull_source(engine, sid, conn)
        incremental_requests = conn.requests
    after = state(handle)["counters"]["requests"]
    # users 1 + stages 2 + currencies 1 + one chained batch per list entity (changes ≤ 2,500 each)
    assert incremental_requests <= 4 + 4 < full_requests
    list_methods = ("crm.contact.list", "crm.company.list", "crm.item.list", "crm.activity.list")
    # ≤ ceil(changes / 2500) + 2 requests per entity: here one batch per list entity, no max-ID probe
    assert sum(after.get(m, {}).get("200", 0) - before.get(m, {}).get("200", 0) for m in list_methods) == 0
    assert second.counts["deals"]["upserted"] >= 2
    edited = rows(engine, t.deals, t.deals.c.remote_id == deal_id)[0]
    assert (edited.title, edited.amount) == ("Edited", Decimal("777.77"))
    assert rows(engine, t.deals, t.deals.c.remote_id == str(created["ID"]))[0].title == "Fresh"
    renamed = rows(engine, t.customers, t.customers.c.kind == "contact", t.customers.c.remote_id == contact_id)[0]
    assert renamed.name == "Новое Имя"

    # the deletion shows up after the ID sweep
    conn, sid = connector(engine, source)
    async with conn:
        swept = await reconcile_source(engine, sid, conn)
    assert swept["deals"]["deleted"] == 1
    assert rows(engine, t.deals, t.deals.c.remote_id == deleted_id)[0].deleted_at is not None


async def test_default_limits_never_hit_query_limit_exceeded(engine, sandbox_factory):
    handle = sandbox_factory(seed=5, size="small")
    source = b24_source(handle)  # 2 req/s, burst 50: the documented defaults, as the sandbox enforces
    conn, sid = connector(engine, source)
    async with conn:  # one process: a full pull, then the next scheduled incremental one
        await pull_source(engine, sid, conn, full=True)
        await pull_source(engine, sid, conn)
        requests = conn.requests
    counters = state(handle)["counters"]
    assert counters["query_limit_exceeded"] == 0 and counters["operation_time_limit"] == 0
    assert sum(sum(by_status.values()) for by_status in counters["requests"].values()) == requests


async def test_pull_survives_injected_faults(engine, sandbox_factory):
    handle = sandbox_factory(seed=7, size="tiny")
    handle.admin("POST", ADMIN + "faults", {"error_5xx": 0.15, "html": 0.15, "seed": 7})
    source = b24_source(handle, limits={"per_second": 50, "burst": 50})
    conn, sid = connector(engine, source)
    async with conn:
        await pull_source(engine, sid, conn, full=True)
    injected = state(handle)["faults_injected"]
    assert injected["5xx"] + injected["html"] > 0
    expected = handle.info["bitrix24"]["counts"]
    assert count(engine, t.customers, t.customers.c.kind == "company") == expected["companies"]

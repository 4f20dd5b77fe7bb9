"""The amoCRM connector against the amoCRM emulator over real HTTP on 127.0.0.1.

Full pull, incremental pull after edits, deletions/restores/merges via the events feed, the ID sweep,
token expiry mid-run, and write-back seen through the emulator's admin API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from connectors.amocrm import spec
from connectors.amocrm.connector import AmoCRMConnector
from connectors.amocrm.options import AmoCRMSource
from segsync.app import ensure_sources
from segsync.contract import ConnectorContext, CustomerRef, LabelChange, TaskRequest
from segsync.sandbox.amocrm import AmoOptions
from segsync.sandbox.amocrm.testing import RunningAccount, running_account, small_world
from segsync.store import tables as t
from segsync.sync import pull_source, reconcile_source
from segsync.tokens import DbTokenStore

SIZES = {"companies": 20, "contacts": 600, "deals": 700}


@pytest.fixture
def sandbox() -> Iterator[RunningAccount]:
    world = small_world(seed=11, activities=40, **SIZES)
    with running_account(world, options=AmoOptions(rate_limit_rps=50)) as running:
        yield running


def _source(sandbox: RunningAccount) -> AmoCRMSource:
    info = sandbox.info
    return AmoCRMSource.model_validate({
        "name": "amo", "kind": "amocrm", "base_url": info["base_url"], "rate_limit": 40, "subdomain": info["subdomain"],
        "oauth": {"client_id": info["client_id"], "client_secret": info["client_secret"],
                  "redirect_uri": info["redirect_uri"]},
        "webhook_secret": "path-secret-123",
    })  # fmt: skip


async def _setup(engine, sandbox) -> tuple[AmoCRMSource, DbTokenStore, int]:
    source = _source(sandbox)
    sid = ensure_sources(engine, [source])["amo"]
    store = DbTokenStore(engine, sid)
    with sandbox.admin() as admin:
        code = admin.post("/auth-code").json()["code"]
    await spec.authorize(source, store, code)  # what `segsync auth amocrm --code` does
    return source, store, sid


def _ids(engine, table, *cond) -> list[int]:
    with engine.connect() as c:
        return sorted(int(i) for i in c.execute(select(table.c.remote_id).where(*cond)).scalars())


def _count(engine, table, *cond) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table).where(*cond)).scalar_one()


async def test_full_incremental_deletions_and_sweep(engine, sandbox):
    source, store, sid = await _setup(engine, sandbox)
    async with AmoCRMConnector(source, ConnectorContext(tokens=store)) as amo:
        result = await pull_source(engine, sid, amo)
    for entity, size in SIZES.items():
        counts = result.counts[entity]
        assert counts["upserted"] + counts["quarantined"] == size, (entity, counts)
    assert _count(engine, t.stages) > 0 and _count(engine, t.users) == 3
    assert _count(engine, t.deals, t.deals.c.status == "won") > 0
    with engine.connect() as c:
        phones = c.execute(select(t.customers.c.phones).where(t.customers.c.kind == "contact")).scalars().all()
    assert any(p and p[0].startswith("+7") for p in phones)

    # managers edit 30 contacts and 10 deals; one contact is deleted, one restored later, two merged
    contact = _ids(engine, t.customers, t.customers.c.kind == "contact")
    deal = _ids(engine, t.deals)
    with sandbox.admin() as admin:
        for i in range(30):
            edit = {"entity_type": "contacts", "id": contact[i], "fields": {"name": f"Edited {i}"}}
            assert admin.post("/edit", json=edit).is_success
        for i in range(10):
            assert admin.post(
                "/edit", json={"entity_type": "leads", "id": deal[i], "fields": {"price": 777}}
            ).is_success
        assert admin.delete(f"/entities/contacts/{contact[40]}").is_success
        assert admin.delete(f"/entities/contacts/{contact[41]}").is_success
        assert admin.post("/restore", json={"entity_type": "contacts", "id": contact[41]}).is_success
        assert admin.post("/merge", json={"keep_id": contact[42], "remove_id": contact[43]}).is_success
    async with AmoCRMConnector(source, ConnectorContext(tokens=store)) as amo:
        before = amo.requests
        result = await pull_source(engine, sid, amo, entities=["contacts", "deals"])
        used = amo.requests - before
    assert used <= 2 * 3 + 3  # one or two pages per entity, the events page and the merge check
    with engine.connect() as c:
        names = dict(
            c.execute(select(t.customers.c.remote_id, t.customers.c.name).where(t.customers.c.kind == "contact")).all()
        )
        amounts = dict(c.execute(select(t.deals.c.remote_id, t.deals.c.amount)).all())
        gone = set(c.execute(select(t.customers.c.remote_id).where(t.customers.c.deleted_at.is_not(None))).scalars())
    assert names[str(contact[5])] == "Edited 5" and amounts[str(deal[3])] == 777
    assert gone == {str(contact[40]), str(contact[43])}

    with sandbox.admin() as admin:
        assert admin.delete(
            f"/entities/contacts/{contact[50]}"
        ).is_success  # not seen by events yet: the sweep finds it
    async with AmoCRMConnector(source, ConnectorContext(tokens=store)) as amo:
        out = await reconcile_source(engine, sid, amo, entities=["contacts"])
    assert out["contacts"]["deleted"] == 1


async def test_token_expiry_mid_run_refreshes_and_rotates(engine, sandbox):
    source, store, _sid = await _setup(engine, sandbox)
    first = (await store.load())["refresh_token"]
    async with AmoCRMConnector(source, ConnectorContext(tokens=store)) as amo:
        with sandbox.admin() as admin:
            admin.post("/expire-tokens", json={})
        pages = [p async for p in amo.pull("users", None)]
    assert pages[0].records
    assert (await store.load())["refresh_token"] != first


async def test_writes_are_visible_through_the_admin_api(engine, sandbox):
    source, store, _sid = await _setup(engine, sandbox)
    due = datetime.now(UTC) + timedelta(days=2)
    async with AmoCRMConnector(source, ConnectorContext(tokens=store)) as amo:
        ids = sorted({i async for chunk in amo.list_ids("contacts") for i in chunk}, key=int)
        user = str(amo.account["current_user_id"])
        changes = [LabelChange(f"l{n}", CustomerRef("contact", i), {}, {"abc": "A", "rfm": "555"})
                   for n, i in enumerate(ids[:60])]  # fmt: skip
        tasks = [TaskRequest(f"t{n}", CustomerRef("contact", i), "Перезвонить", "", due, "call", user, f"[seg:r{n}]")
                 for n, i in enumerate(ids[:3])]  # fmt: skip
        await amo.prepare_writeback(["A", "555"])
        labelled = await amo.set_labels(changes)
        assert all(r.ok for r in labelled)
        relabelled = await amo.set_labels(
            [LabelChange("x", CustomerRef("contact", ids[0]), {"abc": "A", "rfm": "555"}, {"abc": "B"})]
        )
        assert relabelled[0].ok
        created = await amo.create_tasks(tasks)
        assert all(r.ok and r.remote_id for r in created), created
        found = await amo.find_tasks([CustomerRef("contact", ids[1])], "[seg:r1]")
        assert [f.remote_id for f in found] == [created[1].remote_id]
        done = await amo.complete_tasks([("c", created[0].remote_id)])
        assert done[0].ok
    with sandbox.admin() as admin:
        tags = admin.get("/tags").json()["tags"]["contacts"]
        remote_tasks = {str(x["id"]): x for x in admin.get("/tasks").json()["tasks"]}
    assert "seg:A" in tags[ids[1]] and "seg:555" in tags[ids[1]]
    assert "seg:B" in tags[ids[0]] and "seg:A" not in tags[ids[0]]
    task = remote_tasks[created[0].remote_id]
    assert task["is_completed"] is True and "[seg:r0]" in task["text"] and task["entity_type"] == "contacts"
    assert str(task["responsible_user_id"]) == user and task["complete_till"] == int(due.timestamp())

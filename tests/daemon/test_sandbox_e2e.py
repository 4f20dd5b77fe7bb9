"""`segsync run` against the CRM sandbox over real HTTP: one cycle (pull → compute → push) leaves the expected
tasks in the CRM, and the CRM's own webhooks reach the daemon. Each test runs once its CRM's connector is installed.
"""

from __future__ import annotations

import json
import time

import pytest
from harness import DaemonProcess, contact_ids, runs_of
from sqlalchemy import func, select

from segsync.sandbox.testing import start_in_thread
from segsync.store import make_engine
from segsync.store import tables as t


def _crm_source(kind: str, info: dict) -> tuple[dict, str, str]:
    """A rules-file source for the sandbox tenant of ``kind``, its admin prefix, and the task text key."""
    if kind == "bitrix24":
        b24 = info["bitrix24"]
        source = {"webhook_url": b24["webhook_url"], "application_token": b24["application_token"]}
        return source, "/b24/portal/_admin", "title"
    amo = info["amocrm"]
    source = {"base_url": amo["base_url"], "long_lived_token": amo["long_lived_token"],
              "subdomain": amo["subdomain"], "account_id": amo["account_id"]}  # fmt: skip
    return source, "/amo/" + amo["base_url"].rsplit("/", 1)[1] + "/_admin", "text"


def _wait(predicate, within: float = 60.0, every: float = 0.2):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {within}s")


def _count(store_url: str, table, **where) -> int:
    query = select(func.count()).select_from(table).where(table.c.deleted_at.is_(None))
    for key, value in where.items():
        query = query.where(table.c[key] == value)
    with make_engine(store_url).connect() as conn:
        return conn.execute(query).scalar_one()


def _name(store_url: str, remote_id: str) -> str:
    query = select(t.customers.c.name).where(t.customers.c.kind == "contact", t.customers.c.remote_id == remote_id)
    with make_engine(store_url).connect() as conn:
        return conn.execute(query).scalar_one() or ""


def _quarantined(store_url: str, entity: str) -> int:
    query = (
        select(func.count())
        .select_from(t.quarantine)
        .where(t.quarantine.c.entity == entity, t.quarantine.c.resolved_at.is_(None))
    )
    with make_engine(store_url).connect() as conn:
        return conn.execute(query).scalar_one()


def test_daemon_pulls_the_sandbox_and_a_crm_webhook_triggers_a_pull(tmp_path, store_url):
    with start_in_thread(seed=3, size="tiny") as sandbox:
        b24 = sandbox.info["bitrix24"]
        rules = {
            "timezone": "Europe/Moscow",
            "daemon": {"webhook_debounce": 0.5},
            "sources": [
                {
                    "name": "shop",
                    "kind": "bitrix24",
                    "webhook_url": b24["webhook_url"],
                    "application_token": b24["application_token"],
                    "schedule": {"pull": "1h"},
                }
            ],
        }
        config = tmp_path / "rules.yaml"
        config.write_text(json.dumps(rules))
        daemon = DaemonProcess(config, store_url, tmp_path / "daemon.log").start()
        try:
            daemon.wait_ready()
            _wait(lambda: runs_of(store_url, "pull") and runs_of(store_url, "pull")[0].status != "running")
            first = runs_of(store_url, "pull")[0]
            assert first.status == "ok", first.error
            state = sandbox.admin("GET", "/b24/portal/_admin/state")
            crm = state["entities"]
            pulled = first.counts
            for entity in ("contacts", "companies", "deals"):  # every record landed or was quarantined
                assert pulled[entity]["upserted"] + pulled[entity]["quarantined"] == crm[entity], entity
            assert (
                _count(store_url, t.customers, kind="contact") + _quarantined(store_url, "contacts") == crm["contacts"]
            )
            assert _count(store_url, t.deals) + _quarantined(store_url, "deals") == crm["deals"]
            assert state["counters"]["requests"]  # it really went over HTTP

            # the portal's outgoing webhook points at the daemon; a manager edits a contact
            sandbox.admin("POST", "/b24/portal/_admin/webhook", {"url": f"{daemon.url}/webhooks/bitrix24/shop"})
            contact = sorted(contact_ids(store_url, "shop"), key=int)[0]
            sandbox.admin("POST", f"/b24/portal/_admin/entities/contact/{contact}", {"NAME": "Renamed"})
            sent = time.monotonic()
            _wait(lambda: len(runs_of(store_url, "pull")) >= 2, within=15)
            assert time.monotonic() - sent < 15
            _wait(lambda: runs_of(store_url, "pull")[-1].status != "running", within=30)
            assert runs_of(store_url, "pull")[-1].status == "ok"
            assert "Renamed" in _name(store_url, contact)  # the webhook-triggered pull brought the edit
            # a forged event (wrong application_token) is refused
            import httpx

            forged = {"event": "ONCRMCONTACTDELETE", "data[FIELDS][ID]": contact, "auth[application_token]": "x" * 32}
            assert httpx.post(f"{daemon.url}/webhooks/bitrix24/shop", data=forged, timeout=5).status_code in (401, 403)
            assert contact in contact_ids(store_url, "shop")
        finally:
            daemon.stop()
        assert daemon.proc.returncode == 0


@pytest.mark.parametrize("kind", ["bitrix24", "amocrm"])
def test_after_one_cycle_the_expected_tasks_exist_in_the_crm(tmp_path, store_url, kind):
    with start_in_thread(seed=5, size="tiny", accounts=1) as sandbox:
        source, admin, text_key = _crm_source(kind, sandbox.info)
        rules = {
            "timezone": "Europe/Moscow",
            "sources": [{"name": "shop", "kind": kind, "schedule": {"pull": "1h"}, **source}],
            "actions": [{"name": "call_back", "where": "abc IN ('A', 'B')",
                         "task": {"title": "Позвонить: {{ customer.name }}", "due": 2, "fallback_user": "1"}}],
        }  # fmt: skip
        config = tmp_path / "rules.yaml"
        config.write_text(json.dumps(rules))
        daemon = DaemonProcess(config, store_url, tmp_path / "daemon.log").start()
        try:
            daemon.wait_ready()
            _wait(lambda: runs_of(store_url, "push") and runs_of(store_url, "push")[-1].status != "running", 120)
        finally:
            daemon.stop()
        steps = [(r.step, r.status) for r in runs_of(store_url)]
        assert steps[:3] == [("pull", "ok"), ("compute", "ok"), ("push", "ok")], (steps, runs_of(store_url)[-1].error)
        with make_engine(store_url).connect() as conn:
            done = (
                conn.execute(select(t.ledger.c.remote_id).where(t.ledger.c.op == "task", t.ledger.c.state == "done"))
                .scalars()
                .all()
            )
        listed = sandbox.admin("GET", f"{admin}/tasks")
        crm_tasks = listed.get("tasks", listed) if isinstance(listed, dict) else listed
        ours = [x for x in crm_tasks if str(x[text_key]).startswith("Позвонить: ")]
        assert done, "the action fired for no customer"
        assert sorted(str(x["id"]) for x in ours) == sorted(done)  # exactly the tasks the ledger says it made


def test_amocrm_webhooks_with_a_path_secret_reach_the_daemon(tmp_path, store_url):
    with start_in_thread(seed=2, size="tiny", accounts=1) as sandbox:
        amo = sandbox.info["amocrm"]
        secret = "w3bh00k-path-secret-0123456789"
        rules = {
            "timezone": "Europe/Moscow",
            "daemon": {"webhook_debounce": 0.5},
            "sources": [{"name": "amo", "kind": "amocrm", "base_url": amo["base_url"],
                         "long_lived_token": amo["long_lived_token"], "webhook_secret": secret,
                         "subdomain": amo["subdomain"], "account_id": amo["account_id"], "schedule": {"pull": "1h"}}],
        }  # fmt: skip
        config = tmp_path / "rules.yaml"
        config.write_text(json.dumps(rules))
        daemon = DaemonProcess(config, store_url, tmp_path / "daemon.log").start()
        admin = "/amo/" + amo["base_url"].rsplit("/", 1)[1] + "/_admin"
        try:
            daemon.wait_ready()
            _wait(lambda: runs_of(store_url, "pull") and runs_of(store_url, "pull")[0].status != "running")
            assert runs_of(store_url, "pull")[0].status == "ok", runs_of(store_url, "pull")[0].error
            sandbox.admin("POST", f"{admin}/webhook", {"url": f"{daemon.url}/webhooks/amocrm/amo/{secret}"})
            contact = sorted(contact_ids(store_url, "amo"), key=int)[0]
            sandbox.admin("DELETE", f"{admin}/entities/contacts/{contact}")
            _wait(lambda: contact not in contact_ids(store_url, "amo"), within=10)  # applied from the webhook
            assert sandbox.admin("GET", f"{admin}/webhook")["sent"] >= 1
            import httpx

            form = {"contacts[delete][0][id]": contact, "account[id]": str(amo["account_id"])}
            wrong = httpx.post(f"{daemon.url}/webhooks/amocrm/amo/not-the-secret", data=form, timeout=5)
            assert wrong.status_code in (401, 403)
        finally:
            daemon.stop()
        assert secret not in daemon.log_text()


async def test_keep_alive_is_scheduled_for_connectors_that_offer_it_and_exports_the_expiry(tmp_path, store_url):
    from harness import running_daemon

    from segsync.metrics import REGISTRY

    with start_in_thread(seed=2, size="tiny", accounts=1) as sandbox:
        source, _, _ = _crm_source("amocrm", sandbox.info)
        rules = {
            "timezone": "UTC",
            "sources": [{"name": "amo", "kind": "amocrm", "schedule": {"pull": "1h"}, **source}],
        }
        config = tmp_path / "rules.yaml"
        config.write_text(json.dumps(rules))
        async with running_daemon(config, store_url) as daemon:
            assert "amo:keep_alive" in {job.id for job in daemon._scheduler.get_jobs()}
            worker = daemon.workers()["amo"]
            await worker.run_job("keep_alive")
            assert "keep_alive" in worker.last_success
            expiry = REGISTRY.get_sample_value("segsync_token_expiry_timestamp_seconds", {"source": "amo"})
            assert expiry is not None and expiry > time.time()  # the long-lived token's JWT exp

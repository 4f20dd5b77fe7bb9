"""The daemon in this event loop, with fake sources and a real store and HTTP server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx
from harness import contact_ids, fake_source, running_daemon, runs_of, wait_for, write_rules
from structlog.testing import capture_logs

from segsync.daemon.steps import Step, StepContext
from segsync.metrics import REGISTRY


def metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_pulls_at_start_then_a_webhook_triggers_one_pull(tmp_path, store_url):
    data = tmp_path / "crm.json"
    data.write_text(json.dumps([{"id": i, "name": f"c{i}"} for i in range(1, 8)]))
    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", data_file=str(data))], debounce=0.3)
    async with running_daemon(config, store_url) as daemon:
        await wait_for(lambda: contact_ids(store_url, "alpha") == {str(i) for i in range(1, 8)})
        pulls = len(runs_of(store_url, "pull"))
        data.write_text(json.dumps([{"id": i, "name": f"c{i}"} for i in range(1, 10)]))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.port}") as client:
            for i in (8, 9, 9, 8):
                r = await client.post("/webhooks/fake/alpha", data={"token": "good-token", "id": str(i)})
                assert r.status_code == 200
            r = await client.post("/webhooks/fake/alpha", data={"token": "forged", "id": "1"})
            assert r.status_code == 401
            r = await client.post("/webhooks/fake/nosuch", data={"token": "good-token", "id": "1"})
            assert r.status_code == 404
        await wait_for(lambda: {"8", "9"} <= contact_ids(store_url, "alpha"), within=5)
        await wait_for(lambda: all(r.status != "running" for r in runs_of(store_url, "pull")))
        assert len(runs_of(store_url, "pull")) == pulls + 1  # four events, one debounced pull
        assert metric("segsync_webhooks_total", source="alpha", result="rejected") >= 1
        assert metric("segsync_records_pulled_total", source="alpha", entity="contacts") >= 9


async def test_delete_webhook_soft_deletes_at_once(tmp_path, store_url):
    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=5)], debounce=30)
    async with running_daemon(config, store_url) as daemon:
        await wait_for(lambda: len(contact_ids(store_url, "alpha")) == 5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.port}") as client:
            r = await client.post("/webhooks/fake/alpha", data={"token": "good-token", "id": "3", "event": "delete"})
            assert r.status_code == 200
        # long debounce: the deletion is applied without waiting for the pull
        await wait_for(lambda: "3" not in contact_ids(store_url, "alpha"), within=5)
        assert "3" in contact_ids(store_url, "alpha", live=False)


async def test_a_failing_source_does_not_stop_the_others_and_logs_once(tmp_path, store_url):
    config = write_rules(
        tmp_path / "rules.yaml",
        [fake_source("good", contacts=3), fake_source("flaky", fail="transient"), fake_source("dead", fail="fatal")],
    )
    with capture_logs() as logs:
        async with running_daemon(config, store_url) as daemon:
            await wait_for(lambda: len(contact_ids(store_url, "good")) == 3)
            workers = daemon.workers()
            await wait_for(lambda: workers["dead"].stopped is not None and workers["flaky"].failing_since is not None)
            for _ in range(3):
                await workers["flaky"].run_job("pull")
                await workers["dead"].run_job("pull")  # stopped: not even tried
            assert metric("segsync_source_stopped", source="dead") == 1
            assert metric("segsync_source_failing", source="flaky") == 1
            assert metric("segsync_source_stopped", source="good") == 0
            dead_pulls = [r for r in runs_of(store_url, "pull") if r.name == "dead"]
            assert len(dead_pulls) == 1 and dead_pulls[0].status == "failed"
            failing = [e for e in logs if e["event"] == "source_failing" and e["source"] == "flaky"]
            assert len(failing) == 1  # logged on the transition, not on every run

            # fix the config: reload reactivates the stopped source and it works again
            write_rules(
                config, [fake_source("good", contacts=3), fake_source("flaky"), fake_source("dead", contacts=2)]
            )
            assert await daemon.reload("test")
            assert workers["dead"].stopped is None
            await wait_for(lambda: len(contact_ids(store_url, "dead")) == 2)
            await workers["flaky"].run_job("pull")
            assert workers["flaky"].failing_since is None
            assert [e["source"] for e in logs if e["event"] == "source_recovered"] == ["flaky"]


async def test_reload_with_a_broken_file_keeps_the_last_good_rules(tmp_path, store_url):
    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=2)])
    async with running_daemon(config, store_url, watch_interval=0.2) as daemon:
        config.write_text("sources: [ {name: alpha, kind: fake, page_size: -")  # broken YAML
        assert not await daemon.reload("test")
        assert set(daemon.workers()) == {"alpha"}
        # a valid change on disk is picked up by the file watcher without a signal
        write_rules(config, [fake_source("alpha", contacts=2), fake_source("beta", contacts=4)])
        await wait_for(lambda: "beta" in daemon.workers(), within=10)
        await wait_for(lambda: len(contact_ids(store_url, "beta")) == 4)
        write_rules(config, [fake_source("beta", contacts=4)])
        await wait_for(lambda: "alpha" not in daemon.workers(), within=10)
        assert daemon.rules.daemon.webhook_debounce == 0.2


async def test_publish_chain_runs_after_a_changing_pull_only(tmp_path, store_url):
    calls: list[str] = []

    async def compute(ctx: StepContext) -> Mapping[str, Any]:
        calls.append(ctx.source.name)
        return {}

    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=3)])
    async with running_daemon(config, store_url, publish=[Step("compute", compute)]) as daemon:
        await wait_for(lambda: calls == ["alpha"])
        await daemon.workers()["alpha"].run_job("pull")  # nothing new
        assert calls == ["alpha"]
        await daemon.workers()["alpha"].run_job("publish")  # the daily cron runs it regardless
        assert calls == ["alpha", "alpha"]
        assert "alpha:publish" in {j.id for j in daemon._scheduler.get_jobs()}


async def test_health_ready_and_metrics_endpoints(tmp_path, store_url):
    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=3)])
    async with running_daemon(config, store_url) as daemon:
        await wait_for(lambda: len(contact_ids(store_url, "alpha")) == 3)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.port}") as client:
            assert (await client.get("/healthz")).text == "ok\n"
            await wait_for(lambda: daemon.workers()["alpha"].last_success.get("pull"))
            ready = (await client.get("/readyz")).json()
            assert ready["ready"] and ready["store"] == "ok"
            alpha = ready["sources"]["alpha"]
            assert alpha["worked_here"] and not alpha["stale"] and alpha["last_success_age_s"]["pull"] < 60
            text = (await client.get("/metrics")).text
            assert 'segsync_last_success_timestamp_seconds{source="alpha",step="pull"}' in text
            assert 'segsync_crm_requests_total{method="fake.list",source="alpha",status="200"}' in text
            assert "segsync_run_duration_seconds_bucket" in text
            assert 'segsync_lease_held{source="alpha"} 1.0' in text


async def test_report_is_served_from_the_store(tmp_path, store_url, monkeypatch):
    import segsync.report

    calls = []

    def render(engine, rules, *, sources=None, lang=None):  # the report's own tests cover its content
        calls.append((engine.url.render_as_string(), [s.name for s in rules.sources], sources, lang))
        return "<html><body>report</body></html>"

    monkeypatch.setattr(segsync.report, "render_report", render)
    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=1), fake_source("beta", contacts=1)])
    async with running_daemon(config, store_url) as daemon:
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.port}", timeout=60)
        async with client:
            page = await client.get("/report", params={"lang": "en", "source": "beta"})
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert page.text == "<html><body>report</body></html>"
            assert (await client.get("/report", params={"source": "nosuch"})).status_code == 404
            assert (await client.get("/report", params={"lang": "de"})).status_code == 400
    assert calls == [(daemon.engine.url.render_as_string(), ["alpha", "beta"], ["beta"], "en")]


async def test_reloads_keep_unchanged_schedules_and_a_touch_is_not_a_change(tmp_path, store_url):
    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=1), fake_source("beta", contacts=1)])
    async with running_daemon(config, store_url, watch_interval=0.1) as daemon:
        jobs = {j.id: j.next_run_time for j in daemon._scheduler.get_jobs() if not j.id.startswith("_")}
        reloads = metric("segsync_config_reloads_total", result="ok") or 0
        config.touch()  # same bytes, new mtime: config management tools do this
        await asyncio.sleep(0.5)
        assert (metric("segsync_config_reloads_total", result="ok") or 0) == reloads
        beta_faster = [fake_source("alpha", contacts=1), fake_source("beta", contacts=1, schedule={"pull": "5m"})]
        write_rules(config, beta_faster)
        await wait_for(lambda: (metric("segsync_config_reloads_total", result="ok") or 0) == reloads + 1)
        after = {j.id: j.next_run_time for j in daemon._scheduler.get_jobs() if not j.id.startswith("_")}
        assert after["alpha:pull"] == jobs["alpha:pull"]  # untouched source: its timer runs on
        assert after["beta:pull"] < jobs["beta:pull"]  # 5 min from now instead of 10 from the start

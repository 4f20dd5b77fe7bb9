"""The webhook receiver and what happens to hints, through the ASGI app against a real store."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import httpx
import pytest
from harness import contact_ids, runs_of, wait_for

from segsync.app import ensure_sources
from segsync.config import parse_rules
from segsync.daemon.hints import Debouncer
from segsync.daemon.web import build_app
from segsync.daemon.worker import SourceWorker
from segsync.metrics import REGISTRY
from segsync.store import make_engine, upgrade

RULES = """
timezone: UTC
daemon: {webhook_debounce: %s}
sources:
  - {name: shop, kind: fake, contacts: 2000, page_size: 500}
  - {name: other, kind: fake, contacts: 1}
"""


class View:
    def __init__(self, engine, workers):
        self.engine = engine
        self._workers = workers

    def workers(self):
        return self._workers

    def is_running(self):
        return True


@pytest.fixture
async def site(store_url):
    engine = make_engine(store_url)
    upgrade(engine)
    rules = parse_rules(RULES % 1.5, "rules.yaml")
    ids = ensure_sources(engine, rules.sources)
    workers = {
        s.name: SourceWorker(source=s, source_id=ids[s.name], rules=rules, engine=engine, is_mine=lambda sid: True)
        for s in rules.sources
    }
    transport = httpx.ASGITransport(app=build_app(View(engine, workers)))
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
        yield client, workers


async def asgi_post(app, path: str, body: bytes) -> int:
    """One POST straight into the ASGI app (an HTTP client would dominate the time of 10,000 calls)."""
    status = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    await app({"type": "http", "method": "POST", "path": path, "headers": headers}, receive, send)
    return status[0]


def _accepted(source: str) -> float:
    return REGISTRY.get_sample_value("segsync_webhooks_total", {"source": source, "result": "accepted"}) or 0


async def test_a_burst_of_ten_thousand_events_is_answered_and_folds_into_one_pull(site, store_url):
    client, workers = site
    app = client._transport.app
    await workers["shop"].run_job("pull")
    assert len(contact_ids(store_url, "shop")) == 2000
    before = _accepted("shop")

    async def send(i: int) -> int:
        event = "delete" if i % 10 == 0 else "update"
        body = urlencode({"token": "good-token", "id": str(i % 2000 + 1), "event": event}).encode()
        return await asgi_post(app, "/webhooks/fake/shop", body)

    statuses = [await send(i) for i in range(10_000)]
    assert statuses == [200] * 10_000
    assert _accepted("shop") - before == 10_000
    # deletions land without waiting for the debounced pull (every 10th event, ids 1, 11, 21, ...)
    await wait_for(lambda: len(contact_ids(store_url, "shop")) == 1800, within=10)
    await wait_for(lambda: len(runs_of(store_url, "pull")) == 2, within=10)
    await asyncio.sleep(2.0)  # longer than the debounce window: no second pull follows
    assert len(runs_of(store_url, "pull")) == 2


async def test_forgeries_and_strangers_are_refused_and_counted(site):
    client, _ = site
    rejected = REGISTRY.get_sample_value("segsync_webhooks_total", {"source": "shop", "result": "rejected"}) or 0
    r = await client.post("/webhooks/fake/shop", data={"token": "guess", "id": "1"})
    assert r.status_code == 401
    assert REGISTRY.get_sample_value("segsync_webhooks_total", {"source": "shop", "result": "rejected"}) == rejected + 1
    assert (await client.post("/webhooks/fake/nosuch", data={"id": "1"})).status_code == 404
    assert (await client.post("/webhooks/bitrix24/shop", data={"id": "1"})).status_code == 404  # wrong kind
    assert (await client.get("/webhooks/fake/shop")).status_code == 405
    assert (await client.post("/webhooks/fake/shop", data={"token": "good-token"})).status_code == 400
    big = {"token": "good-token", "id": "1", "pad": "x" * (1 << 20)}
    assert (await client.post("/webhooks/fake/shop", data=big)).status_code == 413
    assert REGISTRY.get_sample_value("segsync_webhooks_total", {"source": "", "result": "unknown_source"}) >= 2


async def test_a_secret_path_segment_reaches_the_connector(site):
    client, workers = site
    seen = []
    parser = workers["other"].parser()
    original = parser.parse_webhook
    parser.parse_webhook = lambda secret, form: seen.append(secret) or original(secret, form)
    await client.post("/webhooks/fake/other/abc123", data={"token": "good-token", "id": "1"})
    await client.post("/webhooks/fake/other", data={"token": "good-token", "id": "1"})
    assert seen == ["abc123", None]


async def test_debouncer_fires_once_after_a_burst_goes_quiet():
    fired = []
    loop = asyncio.get_running_loop()
    debounce = Debouncer(0.3, lambda: fired.append(loop.time()))
    started = loop.time()
    for _ in range(40):  # a burst longer than the quiet period
        debounce()
        last_call = loop.time()
        await asyncio.sleep(0.01)
    assert debounce.armed and not fired and last_call - started > 0.3
    await asyncio.sleep(0.5)
    assert len(fired) == 1 and not debounce.armed
    assert fired[0] >= last_call + 0.3 - 0.001  # after the last call plus the quiet period
    debounce()
    debounce.cancel()
    await asyncio.sleep(0.4)
    assert len(fired) == 1


async def test_debouncer_does_not_starve_under_a_steady_stream():
    fired = []
    debounce = Debouncer(0.1, lambda: fired.append(1), max_wait=0.3)
    for _ in range(16):  # 0.8 s of calls, never quiet for 0.1 s
        debounce()
        await asyncio.sleep(0.05)
    assert len(fired) >= 2


async def test_a_pull_request_dropped_while_the_lease_was_away_does_not_block_later_ones(site, store_url):
    _, workers = site
    worker = workers["other"]
    mine = {"now": False}
    worker.is_mine = lambda sid: mine["now"]
    mine["now"] = True
    worker.request_pull()  # queued while this replica holds the lease ...
    mine["now"] = False  # ... which is lost before the job starts
    await asyncio.sleep(0.1)
    assert not runs_of(store_url, "pull")
    mine["now"] = True
    worker.request_pull()
    await wait_for(lambda: runs_of(store_url, "pull"), within=5)

"""Pull throughput of the amoCRM connector against the emulator, relative to amoCRM's own limit.

A child process serves an emulated account (200,000 leads / 60,000 contacts / 15,000 companies by
default) on 127.0.0.1 with amoCRM's real limit (7 requests per rolling second → 429). This process
runs `pull_source` (the code behind `segsync pull`) into a SQLite store, then edits 1,000 leads and
1,000 contacts through the emulator's admin API and pulls incrementally.

Prints: full-pull rows/s ÷ (7 req/s × 250 rows) (≥ 0.9 required), requests made, 429s seen, and per
entity the incremental requests against ceil(1000/250) + 2.

    python bench/pull_amocrm.py [--leads 200000 --contacts 60000 --companies 15000 --concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 7.0
LIMIT = 250


def serve(args: dict[str, int], queue: Any, stop: Any) -> None:
    from segsync.sandbox.amocrm import AmoOptions
    from segsync.sandbox.amocrm.testing import running_account, small_world

    world = small_world(
        seed=7, companies=args["companies"], contacts=args["contacts"], deals=args["leads"], activities=2000
    )
    with running_account(world, options=AmoOptions(rate_limit_rps=RATE)) as amo:
        del world
        with amo.admin() as admin:
            code = admin.post("/auth-code").json()["code"]
        queue.put({"info": amo.info, "code": code, "admin_headers": amo.admin_headers})
        stop.get()


async def run(info: dict[str, Any], code: str, admin_headers: dict[str, str], concurrency: int) -> None:
    import httpx

    from connectors.amocrm import spec
    from connectors.amocrm.connector import AmoCRMConnector
    from connectors.amocrm.options import AmoCRMSource
    from segsync.app import ensure_sources
    from segsync.contract import ConnectorContext
    from segsync.store import make_engine, upgrade
    from segsync.sync import pull_source
    from segsync.tokens import DbTokenStore

    source = AmoCRMSource.model_validate({
        "name": "bench", "kind": "amocrm", "base_url": info["base_url"], "rate_limit": RATE,
        "concurrency": concurrency,
        "oauth": {"client_id": info["client_id"], "client_secret": info["client_secret"],
                  "redirect_uri": info["redirect_uri"]},
    })  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="segsync-bench-"))
    engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    upgrade(engine)
    sid = ensure_sources(engine, [source])["bench"]
    store = DbTokenStore(engine, sid)
    await spec.authorize(source, store, code)

    per_path: Counter[str] = Counter()
    statuses: Counter[str] = Counter()

    def on_request(method: str, status: Any) -> None:
        per_path[method] += 1
        statuses[str(status)] += 1

    ctx = ConnectorContext(tokens=store, on_request=on_request)
    started = time.perf_counter()
    async with AmoCRMConnector(source, ctx) as amo:
        result = await pull_source(engine, sid, amo)
        requests = amo.requests
    elapsed = time.perf_counter() - started
    rows = sum(c.get("upserted", 0) + c.get("quarantined", 0) for e, c in result.counts.items()
               if e in ("contacts", "companies", "deals"))  # fmt: skip
    rate = rows / elapsed
    print(f"full pull: {rows} rows in {elapsed:.1f} s = {rate:.0f} rows/s; {requests} requests "
          f"({requests / elapsed:.2f} req/s); statuses {dict(statuses)}")  # fmt: skip
    print(f"  per entity: { {e: c.get('upserted', 0) for e, c in result.counts.items()} }")
    print(f"  ratio rows/s ÷ (7 req/s × 250) = {rate / (RATE * LIMIT):.3f}  (required ≥ 0.9)")

    # 1,000 changes per entity, then an incremental pull
    from sqlalchemy import select

    from segsync.store import tables as t

    with engine.connect() as c:
        contacts = c.execute(select(t.customers.c.remote_id).where(t.customers.c.kind == "contact").limit(1000))
        contact_ids = [int(r) for r in contacts.scalars()]
        deal_ids = [int(r) for r in c.execute(select(t.deals.c.remote_id).limit(1000)).scalars()]
    base = info["base_url"]
    async with httpx.AsyncClient(base_url=f"{base}/_admin", headers=admin_headers, timeout=30) as admin:
        for cid in contact_ids:
            await admin.post("/edit", json={"entity_type": "contacts", "id": cid, "fields": {"name": f"bench {cid}"}})
        for did in deal_ids:
            await admin.post("/edit", json={"entity_type": "leads", "id": did, "fields": {"price": 4242}})
    await asyncio.sleep(1.1)  # the edits' rolling second is over
    per_path.clear()
    async with AmoCRMConnector(source, ConnectorContext(tokens=store, on_request=on_request)) as amo:
        result = await pull_source(engine, sid, amo, entities=["contacts", "deals"])
    budget = math.ceil(1000 / LIMIT) + 2
    for entity, path in (("contacts", "GET /api/v4/contacts"), ("deals", "GET /api/v4/leads")):
        used = per_path[path]
        print(f"incremental {entity}: {result.counts[entity].get('upserted', 0)} rows, {used} requests "
              f"(budget ceil(1000/250) + 2 = {budget}) {'ok' if used <= budget else 'OVER'}")  # fmt: skip
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--contacts", type=int, default=60_000)
    parser.add_argument("--companies", type=int, default=15_000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    from segsync.logs import configure_logging
    from segsync.runtime import tune_process

    tune_process()  # as every segsync process runs (cli.main)
    configure_logging("warning")  # every request is logged at debug; the figures are what this prints
    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Queue()
    sizes = {"leads": args.leads, "contacts": args.contacts, "companies": args.companies}
    child = ctx.Process(target=serve, args=(sizes, queue, stop), daemon=True)
    child.start()
    try:
        ready = queue.get(timeout=900)
        asyncio.run(run(ready["info"], ready["code"], ready["admin_headers"], args.concurrency))
    finally:
        stop.put(True)
        child.join(timeout=30)
        if child.is_alive():
            child.terminate()


if __name__ == "__main__":
    main()

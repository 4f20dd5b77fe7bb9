"""Bitrix24 full and incremental pull against the sandbox at the documented default limits.

Starts ``segsync sandbox serve --size bench-b24`` (200,000 deals / 50,000 contacts / 10,000 companies)
as a subprocess, then in one run:

1. segsync pulls users, stages, currencies, companies, contacts and deals into a fresh SQLite store
   (``pull_source``, batch-chained ``>ID`` windows, ``parallel_chains`` chains under one limiter);
2. ``fast_bitrix24.BitrixAsync(...).get_all`` exports the same three entities with the same selects
   (its own throttle at its defaults, which are also 2 req/s and a pool of 50);
3. 1,000 deals are edited through the sandbox admin API and segsync pulls incrementally, entity by
   entity, counting requests.

The rate-limit bound. The portal is a leaky bucket (burst B = 50, drain Y = 2 req/s) and no request
can carry more than 50 commands × 50 rows = 2,500 rows. So in T seconds no client can read more than
2,500 × (B + Y·T) rows; ``strict bound = 2,500 × (B + Y·T) / T`` rows/s at segsync's own T. The
steady-state bound (what the burst no longer helps with on long pulls) is 2,500 × Y = 5,000 rows/s.
Both ratios are printed; the strict one is the one that cannot be flattered by the burst.

    python bench/pull_bitrix24.py [--size bench-b24] [--chains 8] [--skip-fast]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from connectors.bitrix24.connector import Bitrix24Connector
from connectors.bitrix24.mapping import COMPANY_SELECT, CONTACT_SELECT
from connectors.bitrix24.options import Bitrix24Source
from segsync.app import ensure_sources
from segsync.contract import ConnectorContext
from segsync.logs import configure_logging
from segsync.runtime import tune_process
from segsync.sandbox.testing import SandboxHandle, start_subprocess
from segsync.store import make_engine, upgrade
from segsync.sync import pull_source
from segsync.tokens import DbTokenStore

ROWS_PER_REQUEST = 2_500
BURST, DRAIN = 50, 2.0
BULK = ("companies", "contacts", "deals")
DEAL_CLASSIC = [
    "ID",
    "TITLE",
    "CATEGORY_ID",
    "STAGE_ID",
    "STAGE_SEMANTIC_ID",
    "OPPORTUNITY",
    "CURRENCY_ID",
    "COMPANY_ID",
    "CONTACT_ID",
    "ASSIGNED_BY_ID",
    "DATE_CREATE",
    "DATE_MODIFY",
    "CLOSEDATE",
    "CLOSED",
    "MOVED_TIME",
    "SOURCE_ID",
    "TYPE_ID",
    "UTM_SOURCE",
    "UTM_MEDIUM",
    "UTM_CAMPAIGN",
    "UTM_CONTENT",
    "UTM_TERM",
]


def requests_total(sb: SandboxHandle) -> tuple[int, dict[str, Any]]:
    counters = sb.admin("GET", "/b24/portal/_admin/state")["counters"]
    return sum(sum(by_status.values()) for by_status in counters["requests"].values()), counters


async def segsync_pull(sb: SandboxHandle, store: str, chains: int, entities: list[str] | None, full: bool):
    engine = make_engine(store)
    upgrade(engine)
    source = Bitrix24Source.model_validate(
        {
            "name": "bench",
            "kind": "bitrix24",
            "touches": False,
            "webhook_url": sb.info["bitrix24"]["webhook_url"],
            "parallel_chains": chains,
        }
    )
    sid = ensure_sources(engine, [source])["bench"]
    per_entity: dict[str, int] = {}
    per_entity_s: dict[str, float] = {}
    counts: dict[str, Any] = {}
    async with Bitrix24Connector(source, ConnectorContext(tokens=DbTokenStore(engine, sid))) as conn:
        started = time.perf_counter()
        for entity in entities or list(conn.entities()):
            before, entity_started = conn.requests, time.perf_counter()
            result = await pull_source(engine, sid, conn, full=full, entities=[entity])
            counts.update(result.counts)
            per_entity[entity] = conn.requests - before
            per_entity_s[entity] = time.perf_counter() - entity_started
        elapsed = time.perf_counter() - started
        requests = conn.requests
        waited, server = conn.transport.waited, conn.transport.server_seconds
    rows = sum(counts[e].get("upserted", 0) + counts[e].get("quarantined", 0) for e in BULK if e in counts)
    return {
        "elapsed": elapsed,
        "rows": rows,
        "requests": requests,
        "per_entity": per_entity,
        "per_entity_s": per_entity_s,
        "counts": counts,
        "limiter_wait_s": waited,
        "portal_time_s": server,
    }


async def fast_bitrix24_export(webhook: str) -> dict[str, Any]:
    """Each entity timed on its own, so that a failure still leaves figures for the finished ones."""
    from fast_bitrix24 import BitrixAsync

    logging.getLogger("fast_bitrix24").disabled = True  # it logs every request and answer at DEBUG
    logging.getLogger("asyncio").disabled = True  # its abandoned retries after a failure log full tracebacks
    bx = BitrixAsync(webhook, verbose=False)
    out: dict[str, Any] = {"entities": {}, "rows": 0, "elapsed": 0.0}
    for method, select in (
        ("crm.company.list", COMPANY_SELECT),
        ("crm.contact.list", CONTACT_SELECT),
        ("crm.deal.list", DEAL_CLASSIC),
    ):
        started = time.perf_counter()
        try:
            rows = len(await bx.get_all(method, {"select": list(select)}))
        except Exception as exc:  # reported, not hidden: the comparison is part of the figures
            elapsed = time.perf_counter() - started
            cause = exc.__cause__ or exc.__context__
            why = f"{type(exc).__name__}: {str(exc)[:160]}" + (
                f" (from {type(cause).__name__}: {cause})" if cause else ""
            )
            out["entities"][method] = {"error": why, "after_s": elapsed}
            out["failed"] = method
            break
        elapsed = time.perf_counter() - started
        out["entities"][method] = {"rows": rows, "elapsed": elapsed}
        out["rows"] += rows
        out["elapsed"] += elapsed
    return out


def edit_deals(sb: SandboxHandle, count: int, total: int) -> None:
    step = max(1, total // count)
    with httpx.Client(timeout=60) as client:
        headers = {"X-Sandbox-Admin": sb.info["admin"]["token"]}
        for i in range(count):
            deal_id = 1 + i * step
            client.post(
                f"{sb.url}/b24/portal/_admin/entities/deal/{deal_id}",
                headers=headers,
                json={"OPPORTUNITY": f"{1000 + i}.50"},
            ).raise_for_status()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="bench-b24")
    ap.add_argument("--chains", type=int, default=8)
    ap.add_argument("--skip-fast", action="store_true", help="do not run fast_bitrix24")
    args = ap.parse_args()
    configure_logging("warning")
    tune_process()  # as every segsync process runs (cli.main); fast_bitrix24 shares this process and the setting
    logging.getLogger("fast_bitrix24").setLevel(logging.WARNING)  # it logs every request at DEBUG
    t0 = time.perf_counter()
    sb = start_subprocess(size=args.size, accounts=0, timeout=1800)
    portal_counts = sb.info["bitrix24"]["counts"]
    print(f"sandbox up in {time.perf_counter() - t0:.0f} s: {portal_counts}", flush=True)
    report: dict[str, Any] = {"portal": portal_counts}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = f"sqlite:///{Path(tmp) / 'bench.db'}"
            seg = asyncio.run(segsync_pull(sb, store, args.chains, None, True))
            served, counters = requests_total(sb)
            t = seg["elapsed"]
            rate = seg["rows"] / t
            strict = ROWS_PER_REQUEST * (BURST + DRAIN * t) / t
            steady = ROWS_PER_REQUEST * DRAIN
            print(
                f"segsync full pull: {seg['rows']:,} rows in {t:.1f} s = {rate:,.0f} rows/s; "
                f"{seg['requests']} requests ({served} seen by the portal), per entity {seg['per_entity']}"
            )
            print(
                f"  bound: strict 2,500×(B+Y·T)/T = {strict:,.0f} rows/s → ratio {rate / strict:.2f}; "
                f"steady 2,500×Y = {steady:,.0f} rows/s → ratio {rate / steady:.2f}"
            )
            print(
                f"  limiter waited {seg['limiter_wait_s']:.1f} s in total; the portal's own processing time "
                f"(time.duration) summed {seg['portal_time_s']:.1f} s"
            )
            print(
                f"  QUERY_LIMIT_EXCEEDED {counters['query_limit_exceeded']}, "
                f"OPERATION_TIME_LIMIT {counters['operation_time_limit']}"
            )
            report["segsync"] = {
                **seg,
                "rows_per_s": rate,
                "strict_bound": strict,
                "ratio_strict": rate / strict,
                "ratio_steady": rate / steady,
                "portal_requests": served,
                "query_limit_exceeded": counters["query_limit_exceeded"],
                "operation_time_limit": counters["operation_time_limit"],
            }

            if not args.skip_fast:
                sb.admin("POST", "/b24/portal/_admin/reset-limits")
                before, _ = requests_total(sb)
                fast = asyncio.run(fast_bitrix24_export(sb.info["bitrix24"]["webhook_url"]))
                after, counters = requests_total(sb)
                fast_rate = fast["rows"] / fast["elapsed"] if fast["elapsed"] else 0.0
                for method, figures in fast["entities"].items():
                    print(f"fast_bitrix24 get_all {method}: {figures}")
                done = [m for m, f in fast["entities"].items() if "rows" in f]
                seg_rows = {"crm.company.list": "companies", "crm.contact.list": "contacts", "crm.deal.list": "deals"}
                print(
                    f"fast_bitrix24: {fast['rows']:,} rows in {fast['elapsed']:.1f} s = {fast_rate:,.0f} rows/s over "
                    f"{', '.join(done) or 'nothing'}; {after - before} requests; OPERATION_TIME_LIMIT answers "
                    f"{counters['operation_time_limit']}, QUERY_LIMIT_EXCEEDED {counters['query_limit_exceeded']}"
                    + (f"; FAILED on {fast['failed']}" if "failed" in fast else "")
                )
                # Like for like: segsync's own time on the entities fast_bitrix24 finished.
                same = [seg_rows[m] for m in done]
                same_rows = sum(seg["counts"][e].get("upserted", 0) for e in same)
                same_s = sum(seg["per_entity_s"][e] for e in same)
                speedup = (same_rows / same_s) / fast_rate if fast_rate and same_s else float("inf")
                print(
                    f"segsync/fast_bitrix24 = {speedup:.2f}× (rows/s on the entities both finished: "
                    f"{', '.join(same) or 'none'}; segsync {same_rows:,} rows in {same_s:.1f} s)"
                    + (f"; fast_bitrix24 did not finish {fast['failed']}, segsync did" if "failed" in fast else "")
                )
                report["fast_bitrix24"] = {
                    **fast,
                    "rows_per_s": fast_rate,
                    "requests": after - before,
                    "speedup": speedup,
                    "segsync_entities": [seg_rows[m] for m in done],
                }

            sb.admin("POST", "/b24/portal/_admin/reset-limits")
            edit_deals(sb, 1_000, portal_counts["deals"])
            inc = asyncio.run(segsync_pull(sb, store, args.chains, None, False))
            allowed = math.ceil(1_000 / ROWS_PER_REQUEST) + 2
            worst = max(inc["per_entity"].values())
            print(
                f"incremental after 1,000 changed deals: {inc['requests']} requests, per entity "
                f"{inc['per_entity']} (allowed ≤ {allowed} each: {'ok' if worst <= allowed else 'EXCEEDED'}); "
                f"deals re-read {inc['counts']['deals']['upserted']}"
            )
            report["incremental"] = {**inc, "allowed_per_entity": allowed}
    finally:
        sb.stop()
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()

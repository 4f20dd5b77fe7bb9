"""How fast the amoCRM emulator serves rows over real HTTP, and how much memory a large account takes.

A child process builds an account of 200,000 leads / 60,000 contacts / 15,000 companies (hand-built
World) and serves it with uvicorn on 127.0.0.1 (one core, one event loop); this process walks
`/api/v4/leads` and `/api/v4/contacts` with limit=250 as a sync client does (order[updated_at]=asc,
a filter window, `_links.next` until 204). Prints rows/s per walk, its ratio to the 20,000 rows/s
target, and the server's resident memory.

    python bench/sandbox_amocrm_rows.py [--leads 200000 --contacts 60000 --companies 15000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import time
from typing import Any

import httpx
import psutil

TARGET = 20_000


def serve(args: dict[str, int], queue: Any, stop: Any) -> None:
    from segsync.sandbox.amocrm import AmoOptions
    from segsync.sandbox.amocrm.testing import running_account, small_world

    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    world = small_world(seed=7, companies=args["companies"], contacts=args["contacts"], deals=args["leads"])
    with running_account(world, options=AmoOptions(rate_limit_rps=1e9)) as amo:
        del world
        info = {"base_url": amo.base_url, "token": amo.info["access_token"], "build_s": time.perf_counter() - t0}
        info["rss0"] = rss0
        queue.put(info)
        stop.get()  # wait for the parent to finish


_NEXT = re.compile(rb'"next":\{"href":"([^"]+)"')


def walk_raw(client: httpx.Client, path: str, params: dict[str, Any]) -> int:
    """Like `walk` but without decoding JSON: finds `_links.next` in the page head, counts rows by marker,
    so the figure shows the server rather than the client's JSON parser."""
    rows = 0
    url: str | None = path
    first = True
    while url:
        r = client.get(url, params=params if first else None)
        first = False
        if r.status_code == 204:
            break
        rows += r.content.count(b'"account_id"')
        m = _NEXT.search(r.content, 0, 2048)
        url = m.group(1).decode() if m else None
    return rows


def walk(client: httpx.Client, path: str, params: dict[str, Any]) -> int:
    rows = 0
    url: str | None = path
    first = True
    while url:
        r = client.get(url, params=params if first else None)
        first = False
        if r.status_code == 204:
            break
        body = r.json()
        rows += len(next(iter(body["_embedded"].values())))
        url = body["_links"].get("next", {}).get("href")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=200_000)
    ap.add_argument("--contacts", type=int, default=60_000)
    ap.add_argument("--companies", type=int, default=15_000)
    args = vars(ap.parse_args())
    ctx = mp.get_context("spawn")
    to_parent, to_child = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=serve, args=(args, to_parent, to_child))
    child.start()
    try:
        info = to_parent.get(timeout=600)
        server = psutil.Process(child.pid)
        mb = 1024 * 1024
        print(f"account built in {info['build_s']:.1f} s; server RSS {server.memory_info().rss / mb:.0f} MB")
        window = {"limit": 250, "order[updated_at]": "asc", "filter[updated_at][from]": 0,
                  "filter[updated_at][to]": 2_000_000_000}  # fmt: skip
        headers = {"Authorization": f"Bearer {info['token']}"}
        with httpx.Client(base_url=info["base_url"], headers=headers, timeout=60) as c:
            for label, walker, path, extra in (
                ("leads (json client)", walk, "/api/v4/leads", {}),
                ("leads", walk_raw, "/api/v4/leads", {}),
                ("leads with=contacts", walk_raw, "/api/v4/leads", {"with": "contacts"}),
                ("contacts", walk_raw, "/api/v4/contacts", {}),
                ("companies with=contacts", walk_raw, "/api/v4/companies", {"with": "contacts"}),
            ):
                cpu0 = sum(server.cpu_times()[:2])
                t0 = time.perf_counter()
                n = walker(c, path, window | extra)
                dt = time.perf_counter() - t0
                cpu = sum(server.cpu_times()[:2]) - cpu0
                print(
                    f"{label:24s} {n:7d} rows {dt:6.2f} s wall {n / dt:8.0f} rows/s (ratio {n / dt / TARGET:4.2f}); "
                    f"server CPU {n / cpu:8.0f} rows per CPU-second (ratio {n / cpu / TARGET:4.2f})"
                )
        print(f"server RSS after the walks {server.memory_info().rss / mb:.0f} MB")
    finally:
        to_child.put("stop")
        child.terminate()
        child.join(10)


if __name__ == "__main__":
    main()

"""Figure for the store: upsert 1,000,000 deal rows, then the same rows again changed.

Prints rows/s for both passes on SQLite and PostgreSQL and the peak RSS of the process.
Goal: ≥ 50,000 rows/s on both, peak RSS under 1 GB.

    python bench/store_upsert.py [--rows 1000000] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text

from segsync.app import ensure_sources
from segsync.config.sources import SourceBase
from segsync.runtime import tune_process
from segsync.store import make_engine, upgrade, upsert
from segsync.store import tables as t
from segsync.store.engine import normalize_url

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 10_000


def rows(source_id: int, start: int, n: int, version: int) -> list[dict]:
    out = []
    for i in range(start, start + n):
        amount = Decimal(i % 100_000) + Decimal("0.99") + version
        out.append(
            {
                "source_id": source_id,
                "remote_id": str(i),
                "title": f"Сделка {i}",
                "status": ("won", "open", "lost")[(i + version) % 3],
                "pipeline_id": "0",
                "stage_id": "WON",
                "company_id": str(i // 7),
                "contact_id": str(i // 3),
                "contact_ids": [str(i // 3)],
                "amount": amount,
                "currency": "RUB",
                "amount_base": amount,
                "responsible_id": str(i % 40),
                "attrs": {"source": "WEB"},
                "raw": {"ID": str(i), "OPPORTUNITY": str(amount), "STAGE_ID": "WON", "v": version},
                "created_at": T0 + timedelta(minutes=i),
                "closed_at": T0 + timedelta(minutes=i, days=3),
                "updated_at": T0 + timedelta(minutes=i, days=version),
                "deleted_at": None,
                "synced_at": T0,
            }
        )
    return out


def run_pass(engine, source_id: int, total: int, version: int) -> float:
    """Rows/s of the upserts alone (building the Python rows is the caller's cost, not the store's)."""
    spent = 0.0
    for start in range(0, total, CHUNK):
        batch = rows(source_id, start, min(CHUNK, total - start), version)
        started = time.perf_counter()
        with engine.begin() as conn:
            upsert(conn, t.deals, batch, ["source_id", "remote_id"])
        spent += time.perf_counter() - started
    return total / spent


def bench(url: str, total: int) -> tuple[float, float]:
    engine = make_engine(url)
    upgrade(engine)
    sid = ensure_sources(engine, [SourceBase(name="bench", kind="bench")])["bench"]
    first = run_pass(engine, sid, total, 0)
    second = run_pass(engine, sid, total, 1)
    engine.dispose()
    return first, second


def main() -> None:
    tune_process()  # as every segsync process runs (cli.main)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args.rows)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(args.pg), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in args.pg else "?"
        results["postgresql"] = bench(f"{args.pg}{sep}options=-csearch_path%3D{schema}", args.rows)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    goal = 50_000
    print(f"rows per pass: {args.rows:,}")
    for name, (insert_rate, update_rate) in results.items():
        print(
            f"{name:<11} insert {insert_rate:>9,.0f} rows/s ({insert_rate / goal:.2f}× goal)   "
            f"changed re-upsert {update_rate:>9,.0f} rows/s ({update_rate / goal:.2f}× goal)"
        )
    print(f"peak RSS {rss_mb:,.0f} MB (goal < 1,024 MB)")


if __name__ == "__main__":
    main()

"""`segsync backup FILE`: a consistent copy of a live SQLite store.

SQLite's online backup API copies a snapshot page by page while the daemon keeps writing (WAL
mode), which a plain `cp` of the database file cannot promise. The copy holds customer data and
OAuth tokens, so it is created 0600 and only renamed into place when complete. PostgreSQL stores
are backed up with `pg_dump` (docs/operations.md).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import Engine

from segsync.errors import StoreError


def backup_sqlite(engine: Engine, target: Path, *, pages_per_step: int = 1024) -> int:
    """Copy the SQLite store behind ``engine`` to ``target``; return the copy's size in bytes."""
    if engine.url.get_backend_name() != "sqlite":
        raise StoreError(
            "segsync backup copies SQLite stores; back up PostgreSQL with pg_dump (see docs/operations.md)"
        )
    source = Path(engine.url.database or "")
    if not source.is_file():
        raise StoreError(f"no SQLite store at {source}")
    target = target.resolve()
    if target == source.resolve():
        raise StoreError("the backup file must not be the store itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=pages_per_step)
            dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"the backup copy failed its integrity check: {check}")
        finally:
            dst.close()
            src.close()
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target.stat().st_size

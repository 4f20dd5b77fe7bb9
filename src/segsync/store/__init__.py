"""The local SQL store: tables, engines, migrations, bulk upserts."""

from segsync.store.engine import default_sqlite_url, is_sqlite, make_engine
from segsync.store.migrate import upgrade
from segsync.store.tables import metadata
from segsync.store.upsert import PreparedUpsert, mark_deleted, prepare_upsert, run_upsert, upsert

__all__ = [
    "PreparedUpsert",
    "default_sqlite_url",
    "is_sqlite",
    "make_engine",
    "mark_deleted",
    "metadata",
    "prepare_upsert",
    "run_upsert",
    "upgrade",
    "upsert",
]

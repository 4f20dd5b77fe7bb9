"""Child process that reads a SQLite store into Arrow IPC files with the ADBC SQLite driver.

Why a child process: the ADBC driver links its own copy of SQLite. Two SQLite libraries in one process do
not share POSIX lock bookkeeping, so closing one library's file handle drops the other's locks (the
"multiple copies of SQLite" hazard of sqlite.org/howtocorrupt.html; seen here as stale reads). In a
process of its own the driver is simply one more reader of the WAL database.

Protocol: a JSON job on stdin — ``{"database": path, "queries": [{"sql": ..., "out": path}, ...]}`` — and
one Arrow IPC file per query; exit status 0 when every file was written. Imports nothing from segsync.
"""

from __future__ import annotations

import json
import sys

_BATCH_ROWS = 262_144


def main() -> int:
    job = json.load(sys.stdin)
    import polars as pl
    from adbc_driver_sqlite import dbapi

    with dbapi.connect(job["database"]) as conn:
        for query in job["queries"]:
            with conn.cursor() as cursor:
                cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(_BATCH_ROWS)})
                cursor.execute(query["sql"])
                frame: pl.DataFrame = cursor.fetch_polars()
            # the newest format keeps polars' string views as they are: no conversion on either side
            frame.rechunk().write_ipc(query["out"], compression="uncompressed", compat_level=pl.CompatLevel.newest())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fresh stores for the crash harness: each crashed world and its clean reference need a store of their own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from segsync.store.engine import normalize_url

TEST_DB = os.environ.get("SEGSYNC_TEST_DB", "sqlite")


@pytest.fixture
def stores(store_url: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """``stores()`` → the URL of another empty store of the selected kind (the first is ``store_url``).

    PostgreSQL: one schema each on the server ``store_url`` points at, dropped after the test.
    """
    given = [store_url]
    schemas: list[str] = []
    admin = (
        create_engine(normalize_url(TEST_DB), isolation_level="AUTOCOMMIT") if TEST_DB.startswith("postgres") else None
    )

    def make() -> str:
        if given:
            return given.pop()
        if admin is None:
            return f"sqlite:///{tmp_path / f'store-{uuid.uuid4().hex[:8]}.db'}"
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        sep = "&" if "?" in TEST_DB else "?"
        return f"{TEST_DB}{sep}options=-csearch_path%3D{schema}"

    yield make
    if admin is not None:
        with admin.connect() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

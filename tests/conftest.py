"""Shared fixtures: a real store on SQLite (a temp file) or PostgreSQL (a fresh schema per test).

``SEGSYNC_TEST_DB`` selects the database: unset or ``sqlite`` → SQLite; a ``postgresql://`` URL →
PostgreSQL. In CI (``CI=true``) an unreachable PostgreSQL is a failure, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from segsync.store import make_engine, upgrade
from segsync.store.engine import normalize_url

pytest_plugins = ["segsync.sandbox.pytest_plugin"]  # `sandbox` / `sandbox_factory` fixtures

TEST_DB = os.environ.get("SEGSYNC_TEST_DB", "sqlite")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pg_base_url() -> str | None:
    return TEST_DB if TEST_DB.startswith("postgres") else None


def _pg_admin_engine(url: str) -> Engine:
    return create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")


@contextmanager
def _pg_schema(base: str) -> Iterator[str]:
    """A fresh schema on the PostgreSQL server at ``base`` (URL with search_path), dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin_engine(base)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # pragma: no cover - environment problem
        admin.dispose()
        if IN_CI:
            raise
        pytest.skip(f"PostgreSQL not reachable at {base}: {exc}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of the selected kind, dropped after the test."""
    base = pg_base_url()
    if base is None:
        yield f"sqlite:///{tmp_path / 'segsync.db'}"
        return
    with _pg_schema(base) as url:
        yield url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A migrated store."""
    eng = make_engine(store_url)
    upgrade(eng)
    yield eng
    eng.dispose()
    make_engine.cache_clear()


def _pg_for_features() -> str:
    return pg_base_url() or os.environ.get("SEGSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL schema even when the suite runs on SQLite (for tests of PostgreSQL-only features)."""
    with _pg_schema(_pg_for_features()) as url:
        yield url


@pytest.fixture
def other_postgres_url() -> Iterator[str]:
    """A second, separate schema: another store on the same server (never ``public``, which other runs share)."""
    with _pg_schema(_pg_for_features()) as url:
        yield url

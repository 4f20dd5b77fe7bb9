"""Wiring shared by the CLI and the daemon: settings → rules → store, opened once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from segsync.config import Rules, load_rules
from segsync.config.sources import SourceBase
from segsync.settings import Settings, load_settings
from segsync.store import default_sqlite_url, make_engine, upgrade
from segsync.store.tables import sources as sources_table


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    rules: Rules
    config_path: Path
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def store_url(self) -> str:
        return self.settings.store_url or self.rules.store or default_sqlite_url(self.settings.default_state_dir())

    @property
    def engine(self) -> Engine:
        """The store, migrated to the current schema on first use (every start is an upgrade point)."""
        if self._engine is None:
            self._engine = make_engine(self.store_url)
            upgrade(self._engine)
        return self._engine

    def source_ids(self) -> dict[str, int]:
        """Ensure a `sources` row per configured source and return name → id."""
        return ensure_sources(self.engine, self.rules.sources)


def ensure_sources(engine: Engine, configured: list[SourceBase]) -> dict[str, int]:
    """Create missing ``sources`` rows (race-free: replicas may start together) and return name → id."""
    now = now_utc()
    with engine.begin() as conn:
        existing = {row.name for row in conn.execute(select(sources_table.c.name))}
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        for src in configured:
            if src.name not in existing:
                conn.execute(
                    insert(sources_table)
                    .values(name=src.name, kind=src.kind, base_currency=src.base_currency, created_at=now,
                            updated_at=now)
                    .on_conflict_do_nothing(index_elements=["name"])
                )  # fmt: skip
        rows = {row.name: (row.id, row.kind) for row in conn.execute(select(sources_table))}
    for src in configured:
        if rows[src.name][1] != src.kind:
            from segsync.errors import StoreError

            raise StoreError(f"source {src.name!r} was {rows[src.name][1]} and is now {src.kind}: give it a new name")
    return {name: ident for name, (ident, _kind) in rows.items()}


def open_app(config: Path | None = None, *, settings: Settings | None = None) -> App:
    """Load settings and the rules file (raises ConfigError with located issues)."""
    settings = settings or load_settings()
    path = Path(config) if config is not None else settings.config
    rules = load_rules(path)
    return App(settings=settings, rules=rules, config_path=path)

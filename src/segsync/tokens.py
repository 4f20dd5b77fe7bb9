"""Durable OAuth tokens, refreshed by exactly one process at a time.

Refresh tokens rotate and die on use (amoCRM, older Bitrix24 docs): if two processes refreshed
with the same token, one would receive a dead pair and the source would need a human to
re-authorize. So a refresh runs inside a database lock (``SELECT … FOR UPDATE`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), re-reads the row under the lock, and commits the new pair before
anyone uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Engine, select

from segsync.app import now_utc
from segsync.logs import get_logger, register_secret
from segsync.store.tables import tokens as tokens_table

log = get_logger("segsync.tokens")
_SECRET_KEYS = ("access_token", "refresh_token", "long_lived_token")


def _register(data: dict[str, Any] | None) -> None:
    for key in _SECRET_KEYS:
        if data and isinstance(data.get(key), str):
            register_secret(data[key])


class DbTokenStore:
    """The :class:`segsync.contract.TokenStore` of one source, kept in the ``tokens`` table."""

    def __init__(self, engine: Engine, source_id: int):
        self.engine = engine
        self.source_id = source_id

    def _read(self, conn: Any, *, lock: bool = False) -> dict[str, Any] | None:
        query = select(tokens_table.c.data).where(tokens_table.c.source_id == self.source_id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        data = conn.execute(query).scalar_one_or_none()
        _register(data)
        return data

    def _write(self, conn: Any, data: dict[str, Any]) -> None:
        _register(data)
        where = tokens_table.c.source_id == self.source_id
        updated = conn.execute(
            tokens_table.update()
            .where(where)
            .values(data=data, version=tokens_table.c.version + 1, updated_at=now_utc())
        ).rowcount
        if not updated:
            conn.execute(
                tokens_table.insert().values(source_id=self.source_id, data=data, version=1, updated_at=now_utc())
            )

    async def load(self) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            with self.engine.connect() as conn:
                return self._read(conn)

        return await asyncio.to_thread(read)

    async def save(self, tokens: dict[str, Any]) -> None:
        def write() -> None:
            with self.engine.begin() as conn:
                self._write(conn, tokens)

        await asyncio.to_thread(write)

    async def refresh(
        self,
        seen: dict[str, Any] | None,
        refresher: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """Refresh unless another process already did; the new pair is committed before it is returned."""
        conn = await asyncio.to_thread(lambda: self.engine.connect().execution_options(sqlite_begin="IMMEDIATE"))
        try:
            trans = await asyncio.to_thread(conn.begin)
            try:
                current = await asyncio.to_thread(self._read, conn, lock=True)
                if (
                    current is not None
                    and seen is not None
                    and current.get("refresh_token") != seen.get("refresh_token")
                ):
                    log.info("token_refreshed_elsewhere", source_id=self.source_id)
                    await asyncio.to_thread(trans.rollback)
                    return current
                fresh = await refresher(current or seen or {})
                await asyncio.to_thread(self._write, conn, fresh)
                await asyncio.to_thread(trans.commit)
                log.info("token_refreshed", source_id=self.source_id)
                return fresh
            except BaseException:
                if trans.is_active:
                    await asyncio.to_thread(trans.rollback)
                raise
        finally:
            await asyncio.to_thread(conn.close)

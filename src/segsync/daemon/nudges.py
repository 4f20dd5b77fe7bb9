"""Replicas on PostgreSQL: a webhook may reach any replica, but only the lease holder pulls.

A replica that receives hints for a source it does not work sends ``NOTIFY`` with the source id;
every replica ``LISTEN``s and the holder requests a pull. Deletions need no relay: any replica
writes them to the shared store at once.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable

import psycopg
from sqlalchemy import Engine, text

from segsync.logs import get_logger

log = get_logger("segsync.daemon.nudges")


def channel_for(engine: Engine) -> str:
    """One channel per store (database and schema), so that stores sharing a server stay apart."""
    with engine.connect() as conn:
        db, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
    return f"segsync_pull_{zlib.crc32(f'{db}:{schema}'.encode()):08x}"


class PgNudges:
    """Send and receive "please pull source N" between replicas."""

    def __init__(self, engine: Engine, channel: str, on_nudge: Callable[[int], None]):
        self.engine = engine
        self.channel = channel
        self.on_nudge = on_nudge
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="nudges")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen(self) -> None:
        delay = 1.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                    await conn.execute(f'LISTEN "{self.channel}"')
                    delay = 1.0
                    async for note in conn.notifies():
                        if note.payload.isdigit():
                            self.on_nudge(int(note.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server restarted: listen again; pulls still run on their interval
                log.warning("nudge_listener_reconnecting", error=str(exc)[:300], in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _send(self, source_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": self.channel, "p": str(source_id)})

    async def send(self, source_id: int) -> None:
        try:
            await asyncio.to_thread(self._send, source_id)
        except Exception as exc:
            log.warning("nudge_failed", source_id=source_id, error=str(exc)[:300])

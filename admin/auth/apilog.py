"""The API keys' request log: one row per request, gathered in memory and COPYed once a second,
so logging costs a request no round trip to the database."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

import asyncpg

from admin.auth import store
from daemons import log

MAX_BACKLOG = 100_000  # rows kept while the database is away; then the oldest are dropped (counted)


class ApiLog:
    def __init__(self, pool: asyncpg.Pool, interval: float = 1.0) -> None:
        self.pool = pool
        self.interval = interval
        self.rows: list[tuple[Any, ...]] = []
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def add(self, at: datetime, key_id: int, method: str, path: str, status: int, address: str | None,
            duration_ms: float) -> None:
        if len(self.rows) >= MAX_BACKLOG:
            self.rows.pop(0)
            self.dropped += 1
        self.rows.append((at, key_id, method, path[:500], status, address, duration_ms))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="api-log")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await store.log_api_requests(conn, rows)
        except (OSError, asyncpg.PostgresError) as e:
            log.get("lastmile.admin").warning("API request log not written, kept for the next try", error=str(e),
                                              rows=len(rows))
            self.rows[:0] = rows[-MAX_BACKLOG:]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

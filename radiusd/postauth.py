"""The post-auth log: every Access-Accept and -Reject with its reason, written in batches."""

from __future__ import annotations

import asyncio

import asyncpg

from daemons import db, log
from radiusd import metrics, store


class PostAuthLog:
    """Rows gather in memory and go out with one INSERT every ``interval`` seconds. Short, because
    the rows are encoded on the event loop: at 8,000 logins/s a 0.1 s batch stalled it for ~2 ms,
    which every request behind it waited for (p99 7-8 ms; at 0.025 s, 2.8-3.0 ms). While the
    database is away up to ``limit`` rows wait; beyond that the oldest are dropped and counted."""

    def __init__(self, pool: asyncpg.Pool, interval: float = 0.025, limit: int = 200_000) -> None:
        self.pool = pool
        self.interval = interval
        self.limit = limit
        self.rows: list[store.PostAuthRow] = []
        self.log = log.get("lastmile.radiusd.postauth")
        self.outage = log.Outage(self.log, "post-auth log not written yet")

    def add(self, when: float, username: str, service_id: int | None, nas_id: int, accepted: bool, reason: str,
            calling_station_id: str | None, framed_ip: object) -> None:
        """``framed_ip``: an address as text or an ipaddress object (stored as inet)."""
        self.rows.append((when, username, service_id, nas_id,
                          "accept" if accepted else "reject", reason, calling_station_id, framed_ip))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def close(self, timeout: float) -> None:
        """Drain step: the last rows, within ``timeout`` seconds (a hung database keeps them)."""
        waiting = len(self.rows)
        try:
            await db.bounded(self.flush(), timeout)
        except db.Late:
            self.log.warning("post-auth log not written at shutdown", rows=waiting)

    async def flush(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        try:
            async with self.pool.acquire() as conn:
                await store.write_postauth(conn, rows)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
            self.rows = rows + self.rows
            excess = len(self.rows) - self.limit
            if excess > 0:
                del self.rows[:excess]
                metrics.POSTAUTH_DROPPED.inc(excess)
            self.outage.failed(e, waiting=len(self.rows))
            return
        self.outage.ok()

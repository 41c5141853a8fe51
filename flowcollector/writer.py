"""Every ``flush_interval`` seconds: take the aggregator's counters and COPY them into PostgreSQL.

While PostgreSQL is away the counters wait in a backlog (merged by key, so it grows with
services x minutes, not with traffic); past ``max_backlog_rows`` the oldest minutes are
dropped and counted. A flush writes the usage and the unknown-traffic rows in one transaction.
Usage rows of services that billing does not count as active carry what it says of them
(``billing``: service id -> flag, read when the rows are written).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

import asyncpg

from daemons import db, log
from daemons.db import DB_DOWN
from flowcollector import metrics, store
from flowcollector.aggregate import Aggregator


class UsageWriter:
    def __init__(self, pool: asyncpg.Pool, aggregator: Aggregator, interval: float, max_backlog: int,
                 billing: Callable[[], Mapping[int, str]] = dict) -> None:
        self.pool = pool
        self.aggregator = aggregator
        self.interval = interval
        self.max_backlog = max_backlog
        self.billing = billing
        self.services: dict[tuple[int, int], list[int]] = {}
        self.unknown: dict[tuple[str, int, str | None], list[int]] = {}
        self.log = log.get("lastmile.flowcollector.writer")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    def _take(self) -> None:
        usage = self.aggregator.drain()
        for key, c in usage.services().items():
            have = self.services.get(key)
            if have is None:
                self.services[key] = c
            else:
                for i in range(4):
                    have[i] += c[i]
        for ukey, u in usage.unknown.items():
            uhave = self.unknown.get(ukey)
            if uhave is None:
                self.unknown[ukey] = list(u)
            else:
                uhave[0] += u[0]
                uhave[1] += u[1]

    async def close(self, timeout: float) -> None:
        """Drain step: the last flush, within ``timeout`` seconds (a hung database keeps it)."""
        try:
            await db.bounded(self.flush(), timeout)
        except db.Late:
            self.log.error("traffic not written at shutdown: the database did not answer",
                           rows=len(self.services) + len(self.unknown))

    async def flush(self) -> bool:
        """Write what has been gathered; False if PostgreSQL could not take it (it waits)."""
        self._take()
        if not self.services and not self.unknown:
            return True
        started = time.perf_counter()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await store.write_usage(conn, self.services, self.unknown, self.billing())
        except DB_DOWN as e:
            self._bound()
            metrics.BACKLOG.set(len(self.services) + len(self.unknown))
            self.log.warning("traffic not written yet: database unreachable", error=str(e) or type(e).__name__,
                             backlog_rows=len(self.services) + len(self.unknown))
            return False
        metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
        metrics.ROWS_WRITTEN.labels("traffic_usage").inc(len(self.services))
        metrics.ROWS_WRITTEN.labels("traffic_unknown").inc(len(self.unknown))
        metrics.BYTES_ATTRIBUTED.labels("service").inc(sum(c[0] + c[1] for c in self.services.values()))
        metrics.BYTES_ATTRIBUTED.labels("unknown").inc(sum(c[0] for c in self.unknown.values()))
        self.services, self.unknown = {}, {}
        metrics.BACKLOG.set(0)
        return True

    def _bound(self) -> None:
        excess = len(self.services) + len(self.unknown) - self.max_backlog
        if excess <= 0:
            return
        # Drop the oldest minutes first: they are the least likely to still be looked at.
        by_age = sorted({k[1] for k in self.services} | {k[1] for k in self.unknown})
        dropped = 0
        for minute in by_age:
            if dropped >= excess:
                break
            for table in (self.services, self.unknown):
                for key in [k for k in table if k[1] == minute]:
                    del table[key]  # type: ignore[arg-type]
                    dropped += 1
        metrics.BACKLOG_DROPPED.inc(dropped)
        self.log.error("traffic dropped: the database was away too long", rows=dropped)

"""Keeps radiusd's caches in step with PostgreSQL: a full load at start, then NOTIFY-driven updates.

Notifications only say which row changed; the rows are read again by one refresher task that
coalesces bursts (a hundred changed services become one query). ``"id": null`` (a bulk change)
or a LISTEN reconnect (notifications may have been missed) reloads in full.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from daemons import log
from radiusd import metrics, store
from radiusd.cache import NasTable, OnlineSessions, SubscriberCache
from radiusd.snapshot import Snapshot

TABLES = ("nas", "services", "customers", "tariffs", "ip_pools")
CHANNELS = [f"lastmile_{t}" for t in TABLES] + ["lastmile_sessions", "lastmile_coa_requests"]


class CacheLoader:
    def __init__(self, pool: asyncpg.Pool, nas: NasTable, subscribers: SubscriberCache, online: OnlineSessions,
                 on_coa: Callable[[str, Any], None]) -> None:
        self.pool = pool
        self.nas = nas
        self.subscribers = subscribers
        self.online = online
        self.on_coa = on_coa
        self.log = log.get("lastmile.radiusd.cache")
        self._pending: dict[str, set[int] | None] = {}
        self._wake = asyncio.Event()
        self.applied = asyncio.Event()  # set after each refresh (tests wait on it)
        #: Called after the caches changed, with True after a full load (the snapshot keeper).
        self.on_change: Callable[[bool], None] = lambda _full: None
        # The gauges read the caches at every scrape, so they follow every change (sessions from
        # the writer and from other instances' notifications too), at no cost per change; through
        # ``self``, so that a cache object replaced here is the one read.
        metrics.CACHE.labels("services").set_function(lambda: len(self.subscribers))
        metrics.CACHE.labels("nas").set_function(lambda: len(self.nas))
        metrics.CACHE.labels("online_sessions").set_function(lambda: self.online.total())  # noqa: PLW0108

    async def load_all(self) -> None:
        started = time.monotonic()
        async with self.pool.acquire() as conn:
            self.nas.replace(await store.load_nas(conn))
            self.subscribers.replace_all(await store.load_subscribers(conn))
            self.online.replace_all(await store.load_online(conn))
        self.on_change(True)
        self.log.info("caches loaded", services=len(self.subscribers), nas=len(self.nas),
                      online=self.online.total(), seconds=round(time.monotonic() - started, 2))

    def load_snapshot(self, snap: Snapshot) -> None:
        """Fill the caches from a snapshot (a start while the database is down)."""
        self.nas.replace(snap.nas)
        self.subscribers.replace_subscribers(snap.subscribers)
        self.online.replace_all([{"service_id": service, "acct_unique_id": uid} for service, uid in snap.online])

    def notified(self, channel: str, payload: Any) -> None:
        if channel == "lastmile_sessions":
            for s in payload.get("sessions", ()):
                if s["service"] is None:
                    continue
                if s["stop"] is None:
                    self.online.opened(s["service"], s["uid"])
                else:
                    self.online.closed(s["service"], s["uid"])
            self.on_change(False)
            return
        if channel == "lastmile_coa_requests":
            self.on_coa(channel, payload)
            return
        table = payload.get("table") if isinstance(payload, dict) else None
        if table not in TABLES:
            return
        row_id = payload.get("id")
        ids = self._pending.get(table, set())
        if row_id is None or ids is None:
            self._pending[table] = None  # reload the table
        else:
            ids.add(row_id)
            self._pending[table] = ids
        self._wake.set()

    def reload_everything(self) -> None:
        """After a LISTEN reconnect: anything may have changed unseen."""
        for table in TABLES:
            self._pending[table] = None
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            try:
                await self._refresh(pending)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                self.log.warning("cache refresh failed; retrying", error=str(e) or type(e).__name__)
                for table, ids in pending.items():  # keep what was asked for
                    self._pending[table] = None if ids is None else (ids | (self._pending.get(table) or set()))
                await asyncio.sleep(1.0)
                self._wake.set()
                continue
            self.on_change(False)
            self.applied.set()
            self.applied.clear()

    async def _refresh(self, pending: dict[str, set[int] | None]) -> None:
        async with self.pool.acquire() as conn:
            if "nas" in pending:
                self.nas.replace(await store.load_nas(conn))
            if any(pending.get(t, ()) is None for t in store.SUBSCRIBER_TABLES):
                self.subscribers.replace_all(await store.load_subscribers(conn))
                self.online.replace_all(await store.load_online(conn))
                return
            for table in store.SUBSCRIBER_TABLES:
                ids = pending.get(table)
                if ids:
                    rows = await store.load_subscribers(conn, table, list(ids))
                    self.subscribers.upsert(rows, gone=set(ids) if table == "services" else None)

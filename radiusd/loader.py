"""Keeps radiusd's caches in step with PostgreSQL: a full load at start, then NOTIFY-driven updates.

Notifications only say which row changed; the rows are read again by one refresher task
(``db.Refresher``) that coalesces bursts (a hundred changed services become one query).
``"id": null`` (a bulk change) or a LISTEN reconnect (notifications may have been missed)
reloads in full. Sessions other instances opened or closed come with their notification
(``channels.SESSIONS``) and change the online index at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncpg

from daemons import channels, db, log
from radiusd import metrics, store
from radiusd.cache import NasTable, OnlineSessions, SubscriberCache
from radiusd.snapshot import Snapshot

TABLES = ("nas", "services", "customers", "tariffs", "ip_pools")
CHANNELS = [channels.table_channel(t) for t in TABLES] + [channels.SESSIONS, channels.COA_REQUESTS]


class CacheLoader:
    def __init__(self, pool: asyncpg.Pool, nas: NasTable, subscribers: SubscriberCache, online: OnlineSessions,
                 on_coa: Callable[[str, Any], None]) -> None:
        self.pool = pool
        self.nas = nas
        self.subscribers = subscribers
        self.online = online
        self.on_coa = on_coa
        self.log = log.get("lastmile.radiusd.cache")
        self.refresher = db.Refresher(self._refresh, TABLES, name="cache")
        self.applied = self.refresher.applied  # set after each refresh (tests wait on it)
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
        if channel == channels.SESSIONS:
            for s in channels.session_notices(payload):
                if s.service is None:
                    continue
                if s.stop is None:
                    self.online.opened(s.service, s.uid)
                else:
                    self.online.closed(s.service, s.uid)
            self.on_change(False)
            return
        if channel == channels.COA_REQUESTS:
            self.on_coa(channel, payload)
            return
        change = channels.table_change(payload)
        if change is not None and change.table in TABLES:
            self.refresher.want(change.table, change.id)

    def reload_everything(self) -> None:
        """After a LISTEN reconnect: anything may have changed unseen."""
        self.refresher.reload()

    async def run(self) -> None:
        await self.refresher.run()

    async def _refresh(self, pending: db.Pending) -> None:
        async with self.pool.acquire() as conn:
            if "nas" in pending:
                self.nas.replace(await store.load_nas(conn))
            services = {table: ids for table, ids in pending.items() if table in store.SERVICES_BY}
            if any(ids is None for ids in services.values()):
                self.subscribers.replace_all(await store.load_subscribers(conn))
                self.online.replace_all(await store.load_online(conn))
            else:
                for table, ids in services.items():
                    assert ids is not None
                    rows = await store.load_subscribers_by(conn, table, ids)
                    self.subscribers.upsert(rows, gone=set(ids) if table == "services" else None)
        self.on_change(False)

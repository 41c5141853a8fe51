"""Keeps flowcollector's view of the database current: the allow-list, sampling rates, which
service owns which address when, the ISP's own prefixes and what billing says of each service.
Loaded at start after LISTEN is up; then NOTIFY-driven:

- ``lastmile_sessions`` (from radiusd): a session's Framed-IP from its start to its stop;
- ``lastmile_services``: fixed addresses and prefixes of services, the own prefixes derived from
  them, and their billing status (reloaded in full, coalesced);
- ``lastmile_customers``: billing status (a customer's status flags its services);
- ``lastmile_ip_pools``: own prefixes (unless the ``own_prefixes`` setting gives them);
- ``lastmile_flow_exporters`` / ``routers`` / ``nas``: the allow-list and sampling rates.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from daemons import log
from flowcollector import metrics, store
from flowcollector.aggregate import Aggregator, OwnPrefixes, ServiceMap
from flowcollector.codec import Decoder
from flowcollector.collector import Collector

CHANNELS = ["lastmile_sessions", "lastmile_services", "lastmile_customers", "lastmile_ip_pools",
            "lastmile_flow_exporters", "lastmile_routers", "lastmile_nas"]
RELOADS = {"lastmile_services": {"static", "own", "billing"}, "lastmile_customers": {"billing"},
           "lastmile_ip_pools": {"own"}}
EVERYTHING = {"static", "allow", "sessions", "own", "billing"}


class Maps:
    def __init__(self, pool: asyncpg.Pool, services: ServiceMap, decoder: Decoder, collector: Collector,
                 history_s: float, own_prefixes: tuple[str, ...] = ()) -> None:
        self.pool = pool
        self.services = services
        self.decoder = decoder
        self.collector = collector
        self.aggregator: Aggregator = collector.aggregator
        self.history_s = history_s
        self.own_prefixes = own_prefixes  # from the settings; empty: derived from the database
        self.billing: dict[int, str] = {}
        # Read at every scrape, so they follow every change (a session added, ended, pruned).
        metrics.SERVICE_MAP.labels("sessions").set_function(lambda: services.sessions)
        metrics.SERVICE_MAP.labels("static").set_function(lambda: services.static)
        metrics.SERVICE_MAP.labels("own_prefixes").set_function(lambda: self.aggregator.own.count)
        self.log = log.get("lastmile.flowcollector.maps")
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._rates: dict[str, int] = {}

    async def load_all(self) -> None:
        started = time.monotonic()
        await self._refresh(EVERYTHING)
        self.log.info("maps loaded", exporters=len(self.collector.allow), static_prefixes=self.services.static,
                      sessions=self.services.sessions, own_prefixes=self.aggregator.own.count,
                      services_not_active=len(self.billing), seconds=round(time.monotonic() - started, 2))

    def notified(self, channel: str, payload: Any) -> None:
        if channel == "lastmile_sessions":
            for s in payload.get("sessions", ()):
                if s["ip"] and s["service"] is not None:
                    self.services.add_session(f"{s['ip']}/32", s["service"], s["start"], s["stop"])
            return
        self._pending |= RELOADS.get(channel, {"allow"})
        self._wake.set()

    def reload_everything(self) -> None:
        self._pending |= EVERYTHING
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.2)  # let a burst of changes coalesce into one reload
            pending, self._pending = self._pending, set()
            try:
                await self._refresh(pending)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                self.log.warning("map refresh failed; retrying", error=str(e) or type(e).__name__)
                self._pending |= pending
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _refresh(self, what: set[str]) -> None:
        async with self.pool.acquire() as conn:
            if "allow" in what:
                allow, rates = await store.load_allow_list(conn)
                self.collector.allow = allow
                for exporter in self._rates.keys() - rates.keys():
                    self.decoder.set_sampling(exporter, None)
                for exporter, rate in rates.items():
                    try:
                        self.decoder.set_sampling(exporter, rate)
                    except ValueError as e:  # the database allows any rate >= 1
                        self.log.warning("exporter sampling rate ignored", exporter=exporter, error=str(e))
                self._rates = rates
            if "static" in what:
                static = await store.load_static(conn)
                self.services.replace_static(static)
            if "own" in what:
                own = self.own_prefixes or await store.load_own_prefixes(conn)
                self.aggregator.fold_queue()  # what is queued was counted with the old prefixes
                self.aggregator.own = OwnPrefixes(own)
            if "billing" in what:
                self.billing = await store.load_billing(conn)
            if "sessions" in what:
                rows = await store.load_sessions(conn, self.history_s)
                for r in rows:
                    stopped = r["stopped_at"].timestamp() if r["stopped_at"] else None
                    self.services.add_session(f"{r['ip']}/32", r["service_id"], r["started_at"].timestamp(), stopped)

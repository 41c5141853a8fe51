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

import time
from typing import Any

import asyncpg

from daemons import channels, db, log
from flowcollector import metrics, store
from flowcollector.addressmap import OwnPrefixes, ServiceMap
from flowcollector.aggregate import Aggregator
from flowcollector.codec import Decoder
from flowcollector.transport import Transport

# Which parts of the maps a change of a table reloads (each in full: they are small).
RELOADS = {"services": ("static", "own", "billing"), "customers": ("billing",), "ip_pools": ("own",),
           "flow_exporters": ("allow",), "routers": ("allow",), "nas": ("allow",)}
CHANNELS = [channels.SESSIONS, *(channels.table_channel(t) for t in RELOADS)]
EVERYTHING = ("static", "allow", "sessions", "own", "billing")


class Loader:
    def __init__(self, pool: asyncpg.Pool, services: ServiceMap, decoder: Decoder, transport: Transport,
                 history_s: float, own_prefixes: tuple[str, ...] = ()) -> None:
        self.pool = pool
        self.services = services
        self.decoder = decoder
        self.transport = transport
        self.aggregator: Aggregator = transport.aggregator
        self.history_s = history_s
        self.own_prefixes = own_prefixes  # from the settings; empty: derived from the database
        self.billing: dict[int, str] = {}
        # Read at every scrape, so they follow every change (a session added, ended, pruned).
        metrics.SERVICE_MAP.labels("sessions").set_function(lambda: services.sessions)
        metrics.SERVICE_MAP.labels("static").set_function(lambda: services.static)
        metrics.SERVICE_MAP.labels("own_prefixes").set_function(lambda: self.aggregator.own.count)
        self.log = log.get("lastmile.flowcollector.loader")
        # Bursts of changes coalesce into one reload: 0.2 s after the first.
        self.refresher = db.Refresher(self._refresh, EVERYTHING, settle=0.2, name="map")
        self._rates: dict[str, int] = {}

    async def load_all(self) -> None:
        started = time.monotonic()
        await self._refresh(dict.fromkeys(EVERYTHING))
        self.log.info("maps loaded", exporters=len(self.transport.allow), static_prefixes=self.services.static,
                      sessions=self.services.sessions, own_prefixes=self.aggregator.own.count,
                      services_not_active=len(self.billing), seconds=round(time.monotonic() - started, 2))

    def notified(self, channel: str, payload: Any) -> None:
        if channel == channels.SESSIONS:
            for s in channels.session_notices(payload):
                if s.ip and s.service is not None:
                    self.services.add_session(f"{s.ip}/32", s.service, s.start, s.stop)
            return
        change = channels.table_change(payload)
        for part in RELOADS.get(change.table, ()) if change is not None else ():
            self.refresher.want(part)

    def reload_everything(self) -> None:
        self.refresher.reload()

    async def run(self) -> None:
        await self.refresher.run()

    async def _refresh(self, what: db.Pending) -> None:
        async with self.pool.acquire() as conn:
            if "allow" in what:
                allow, rates = await store.load_allow_list(conn)
                self.transport.allow = allow
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

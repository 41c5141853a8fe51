"""flowcollector: wiring only. ``lastmile flowcollector`` runs ``main(settings)``."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import asyncpg

from daemons import db, log, runtime, udp, workers
from daemons.config import Settings
from daemons.db import DB_DOWN
from daemons.metrics import REGISTRY
from flowcollector import metrics, store
from flowcollector.aggregate import Aggregator, ServiceMap
from flowcollector.codec import CodecError, Decoder, DecoderSettings
from flowcollector.collector import Collector
from flowcollector.maps import CHANNELS, Maps
from flowcollector.store import AllowList
from flowcollector.writer import UsageWriter

HISTORY_S = 7200.0  # flows may end this long before they are exported (long flows, late exports)


def main(settings: Settings) -> int:
    fs = settings.flowcollector
    if workers.supervising(fs.workers):
        return runtime.run("flowcollector", lambda rt: workers.supervise(rt, "flowcollector", fs.workers),
                           settings, fs)
    return runtime.run("flowcollector", lambda rt: serve(rt, settings), settings, workers.for_worker(fs))


class TemplateFile:
    """Templates, announced sampling and sequence numbers survive a restart here (data right after
    it decodes, and what was sent while the collector was away is counted)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log = log.get("lastmile.flowcollector.templates")

    def load(self, decoder: Decoder) -> int:
        if not self.path.exists():
            return 0
        try:
            return decoder.load_state(self.path.read_bytes(), time.time())
        except (CodecError, OSError) as e:
            self.log.warning("saved templates not loaded", path=str(self.path), error=str(e))
            return 0

    def save(self, decoder: Decoder, *, stopping: bool = False) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(decoder.dump_state())
        os.replace(tmp, self.path)
        held = decoder.gauges()["held_sets"]
        if stopping and held:  # neither decoded nor dropped by this process: say so
            self.log.warning("data sets waiting for their templates are not kept across a restart", held_sets=held)


async def serve(rt: runtime.Runtime, settings: Settings) -> None:
    fs = settings.flowcollector
    url = db.url_of(settings.database)
    pool = await db.create_pool(settings.database, url, max_size=min(settings.database.pool_max, 4))
    rt.on_drain("database", pool.close, pool.terminate)
    async with pool.acquire() as conn:
        await db.maintain_partitions(conn)

    decoder = Decoder(DecoderSettings(template_timeout=fs.template_timeout, max_sampling_rate=fs.max_sampling_rate))
    templates = TemplateFile(workers.state_dir(fs.state_dir, "flowcollector") / "templates.json")
    loaded = templates.load(decoder)
    rt.on_drain("templates", _step(lambda: templates.save(decoder, stopping=True)))
    services = ServiceMap()
    aggregator = Aggregator(services, max_age=HISTORY_S, late_window=fs.late_window,
                            max_unknown_addresses=fs.max_unknown_addresses)
    collector = Collector(decoder, aggregator, AllowList())
    history = max(HISTORY_S, fs.late_window)  # sessions are kept for late flows too
    maps = Maps(pool, services, decoder, collector, history, fs.own_prefixes)
    # Subscribe before loading, so no change between the two is missed.
    listener = db.Listener(url, CHANNELS, maps.notified, on_reconnect=maps.reload_everything)
    rt.spawn("listen", listener.run())
    await asyncio.wait_for(listener.connected.wait(), settings.database.connect_timeout)
    await maps.load_all()
    rt.spawn("map-refresh", maps.run())

    writer = UsageWriter(pool, aggregator, fs.flush_interval, fs.max_backlog_rows, lambda: maps.billing)
    rt.on_drain("flush", lambda: writer.close(fs.drain_timeout / 2))  # leaves time for the templates
    rt.spawn("writer", writer.run())
    rt.spawn("maintenance", maintenance(pool, decoder, services, collector, templates, fs.rollup_interval, history))

    ports = sorted({fs.netflow_port, fs.ipfix_port})
    reuse = fs.workers > 1
    endpoints = [await udp.open_endpoint(fs.bind, port, collector.on_datagram, reuse_port=reuse, rcvbuf=fs.rcvbuf)
                 for port in ports]
    rt.on_drain("sockets", _step(lambda: _close(endpoints)))
    REGISTRY.register(metrics.FlowCollector(collector.stats, decoder.gauges,
                                            lambda: sum(e.kernel_drops() for e in endpoints), aggregator))
    metrics.RCVBUF.set(min(e.rcvbuf for e in endpoints))
    log.get("lastmile.flowcollector").info(
        "flow listening", ports=[e.address[1] for e in endpoints], bind=fs.bind, rcvbuf=endpoints[0].rcvbuf,
        rcvbuf_requested=fs.rcvbuf, templates_loaded=loaded)


def _close(endpoints: list[udp.UdpEndpoint]) -> None:
    for endpoint in endpoints:
        endpoint.close()


def _step(fn: object) -> runtime.DrainStep:
    async def step() -> None:
        fn()  # type: ignore[operator]

    return step


async def maintenance(pool: asyncpg.Pool, decoder: Decoder, services: ServiceMap, collector: Collector,
                      templates: TemplateFile, rollup_interval: float, history: float) -> None:
    """Expire templates (10 s); prune ended sessions and save templates (60 s); roll up traffic;
    make partitions (hourly)."""
    logger = log.get("lastmile.flowcollector.maintenance")
    tick = 0
    next_rollup = time.monotonic() + rollup_interval
    while True:
        await asyncio.sleep(10)
        tick += 1
        now = time.time()
        collector.expire(now)
        if tick % 6 == 0:
            services.prune(now - history)
            templates.save(decoder)
        try:
            if time.monotonic() >= next_rollup:
                next_rollup = time.monotonic() + rollup_interval
                async with pool.acquire() as conn:
                    await store.rollup_traffic(conn)
            if tick % 360 == 0:
                async with pool.acquire() as conn:
                    await db.maintain_partitions(conn)
        except (*DB_DOWN, asyncpg.PostgresError) as e:
            logger.warning("maintenance skipped", error=str(e) or type(e).__name__)


if __name__ == "__main__":
    from daemons import config

    sys.exit(main(config.load()))

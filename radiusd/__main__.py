"""radiusd: wiring only. ``lastmile radiusd`` runs ``main(settings)``.

With ``workers = N > 1`` this process supervises N workers on the same ports (daemons.workers).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

import asyncpg

from daemons import db, log, runtime, udp, workers
from daemons.config import Settings
from daemons.events import EventPublisher
from radiusd import dictionaries, metrics, policy, store
from radiusd.cache import NasTable, OnlineSessions, SubscriberCache
from radiusd.coa import CoaClient, CoaWorker
from radiusd.codec import AttributeTable
from radiusd.leases import LeaseBatcher
from radiusd.loader import CHANNELS, CacheLoader
from radiusd.postauth import PostAuthLog
from radiusd.server import RadiusServer
from radiusd.spool import Spool
from radiusd.writer import DB_DOWN, AccountingWriter, notify_changes, own_notification


def main(settings: Settings) -> int:
    rs = settings.radiusd
    try:
        dictionaries.load(rs.dictionary_dir)  # a broken site dictionary is a bad setting: one line, exit 2
    except dictionaries.DictionaryError as e:
        print(f"lastmile: bad settings: {e}", file=sys.stderr)
        return 2
    if workers.supervising(rs.workers):
        return runtime.run("radiusd", lambda rt: workers.supervise(rt, "radiusd", rs.workers), settings, rs)
    return runtime.run("radiusd", lambda rt: serve(rt, settings), settings, workers.for_worker(rs))


async def serve(rt: runtime.Runtime, settings: Settings) -> None:
    rs = settings.radiusd
    url = db.url_of(settings.database)
    pool = await db.create_pool(settings.database, url)
    rt.on_drain("database", pool.close)
    async with pool.acquire() as conn:
        await db.maintain_partitions(conn)

    events = EventPublisher(settings.mqtt, f"lastmile-radiusd-{os.getpid()}")
    events.start()
    rt.on_drain("events", events.close)

    table = _dictionary(rs.dictionary_dir)
    nas, subscribers, online = NasTable(), SubscriberCache(table), OnlineSessions()
    coa_client = CoaClient(rs.coa_timeout, rs.coa_retries, table)
    await coa_client.open()
    coa_worker = CoaWorker(pool, coa_client, nas, events, rs.block_method, rs.blocked_address_list)
    loader = CacheLoader(pool, nas, subscribers, online, coa_worker.notified)
    instance = f"radiusd-{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    # Subscribe before loading: a change committed after the load's snapshot is then always
    # notified, and one before it is in the load.
    listener = db.Listener(url, CHANNELS, loader.notified, on_reconnect=loader.reload_everything,
                           skip=own_notification(instance))
    rt.spawn("listen", listener.run())
    await asyncio.wait_for(listener.connected.wait(), settings.database.connect_timeout)
    await loader.load_all()

    lease_ttl = 2 * rs.interim_interval + rs.stale_grace
    postauth = PostAuthLog(pool)
    rt.on_drain("postauth", postauth.flush)
    spool = Spool(workers.state_dir(rs.spool_dir, "radiusd"))
    writer = AccountingWriter(pool, spool, batch=rs.acct_batch, lease_ttl=lease_ttl, origin=instance)
    leases = LeaseBatcher(pool, rs.pool_reserve, lease_ttl=lease_ttl, stock=rs.pool_stock, holder=instance)
    online.on_change = leases.forget
    await leases.load()
    server = RadiusServer(
        nas=nas, subscribers=subscribers, online=online, writer=writer, postauth=postauth, pool=pool, events=events,
        leases=leases,
        policy_settings=policy.PolicySettings(rs.blocked_action, rs.blocked_address_list, rs.interim_interval),
        duplicate_ttl=rs.duplicate_ttl, max_attributes=rs.max_attributes, table=table)
    writer.on_changes = server.session_changes
    writer.on_saved = server.acct_saved
    writer.on_unsaved = server.acct_unsaved
    rt.on_drain("sockets", lambda: _close(server, coa_client))

    rt.spawn("cache-refresh", loader.run())
    rt.spawn("postauth-writer", postauth.run())
    rt.spawn("maintenance", maintenance(pool, server, lease_ttl, instance))
    rt.spawn("log-summaries", server.summarise())  # cancelled (and flushed) after the replies in flight
    rt.spawn("coa", coa_worker.run())
    rt.spawn("spool-replay", writer.replay())
    rt.spawn("leases", leases.run())
    rt.spawn("lease-stock", leases.keep())
    rt.spawn("accounting-writer", writer.run())
    rt.on_drain("accounting", writer.drain)
    rt.on_drain("lease-stock-release", leases.close)  # after the logins in flight (steps run in reverse)
    rt.on_drain("auth-in-flight", server.wait_in_flight)

    reuse = rs.workers > 1
    server.auth_endpoint = await udp.open_endpoint(rs.bind, rs.auth_port, server.on_auth, reuse_port=reuse,
                                                   rcvbuf=rs.rcvbuf)
    server.acct_endpoint = await udp.open_endpoint(rs.bind, rs.acct_port, server.on_acct, reuse_port=reuse,
                                                   rcvbuf=rs.rcvbuf)
    rt.on_drain("stop-intake", lambda: _stop_intake(server))
    log.get("lastmile.radiusd").info(
        "radius listening", auth=f"{rs.bind}:{server.auth_endpoint.address[1]}",
        acct=f"{rs.bind}:{server.acct_endpoint.address[1]}", rcvbuf=server.auth_endpoint.rcvbuf,
        spool=str(writer.spool.path), spooled=writer.spool.depth)


def _dictionary(directory: str) -> AttributeTable:
    """The table main() loaded (and checked) for ``[radiusd] dictionary_dir``."""
    loaded = dictionaries.load(directory)
    if loaded.files:
        log.get("lastmile.radiusd").info("site dictionaries loaded", files=[str(p) for p in loaded.files],
                                         not_supported=list(loaded.skipped))
    return loaded.table


async def _stop_intake(server: RadiusServer) -> None:
    server.accepting = False


async def _close(server: RadiusServer, coa_client: CoaClient) -> None:
    server.close()
    coa_client.close()


def sweep_period(stale_after: float) -> float:
    """Seconds between sweeps for sessions silent ``stale_after`` seconds: a quarter of that, at
    most 30, so a stale session closes within ``stale_after`` plus a quarter of it."""
    return min(30.0, stale_after / 4)


async def maintenance(pool: asyncpg.Pool, server: RadiusServer, lease_ttl: int, instance: str) -> None:
    """Every :func:`sweep_period` of ``lease_ttl`` (the stale threshold, 2 x interim_interval +
    stale_grace): close stale sessions and free expired leases; every hour: make partitions."""
    logger = log.get("lastmile.radiusd.maintenance")
    period = sweep_period(lease_ttl)
    partitions_made = time.monotonic()
    while True:
        await asyncio.sleep(period)
        try:
            async with pool.acquire() as conn:
                async with conn.transaction():
                    closed = await store.close_stale(conn, lease_ttl)
                    await notify_changes(conn, closed, instance)
                freed = await store.expire_leases(conn, lease_ttl)
                if time.monotonic() - partitions_made >= 3600:
                    await db.maintain_partitions(conn)
                    partitions_made = time.monotonic()
        except (*DB_DOWN, asyncpg.PostgresError) as e:
            logger.warning("maintenance skipped", error=str(e) or type(e).__name__)
            continue
        if closed:
            metrics.STALE_CLOSED.inc(len(closed))
            server.session_changes(closed)
            logger.info("stale sessions closed", count=len(closed))
        if freed:
            logger.info("expired address leases freed", count=freed)


if __name__ == "__main__":
    from daemons import config

    sys.exit(main(config.load()))

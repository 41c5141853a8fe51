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

from daemons import channels, db, log, runtime, udp, workers
from daemons.config import Settings
from daemons.db import DB_DOWN
from daemons.events import EventPublisher
from radiusd import dictionaries, logsummary, metrics, policy, snapshot, store
from radiusd.cache import NasTable, OnlineSessions, SubscriberCache
from radiusd.coa import CoaClient, CoaWorker
from radiusd.codec import AttributeTable
from radiusd.handler import Handler
from radiusd.leases import LeaseBatcher
from radiusd.loader import CHANNELS, CacheLoader
from radiusd.postauth import PostAuthLog
from radiusd.settings import RadiusdSettings
from radiusd.spool import Spool
from radiusd.transport import Transport
from radiusd.writer import AccountingWriter, notify_changes


def main(settings: Settings) -> int:
    rs = settings.of(RadiusdSettings)
    try:
        dictionaries.load(rs.dictionary_dir)  # a broken site dictionary is a bad setting: one line, exit 2
    except dictionaries.DictionaryError as e:
        print(f"lastmile: bad settings: {e}", file=sys.stderr)
        return 2
    if workers.supervising(rs.workers):
        return runtime.run("radiusd", lambda rt: workers.supervise(rt, "radiusd", rs.workers), settings, rs)
    return runtime.run("radiusd", lambda rt: serve(rt, settings), settings, workers.for_worker(rs))


async def serve(rt: runtime.Runtime, settings: Settings) -> None:
    rs = settings.of(RadiusdSettings)
    url = db.url_of(settings.database)
    logger = log.get("lastmile.radiusd")
    state = workers.state_base(rs.spool_dir, "radiusd")
    # A start while PostgreSQL is away serves from the last snapshot of the caches (snapshot.py)
    # and spools accounting; the caches are loaded from the database when it answers.
    offline: snapshot.Snapshot | None = None
    try:
        pool = await db.create_pool(settings.database, url)
    except DB_DOWN as e:
        error = str(e) or type(e).__name__
        try:
            offline = await asyncio.to_thread(snapshot.read, state / snapshot.NAME)
        except snapshot.SnapshotError as problem:
            raise runtime.StartError(f"the database is unreachable ({error}), and {problem}") from None
        pool = await db.create_pool(settings.database, url, connect=False)
        logger.warning("database unreachable: serving from the cache snapshot", error=error,
                       snapshot=str(state / snapshot.NAME), age_s=round(time.time() - offline.written_at))
    rt.on_drain("database", pool.close, pool.terminate)
    if offline is None:
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
                           skip=channels.own_sessions(instance))
    rt.spawn("listen", listener.run())
    if offline is None:
        await asyncio.wait_for(listener.connected.wait(), settings.database.connect_timeout)
        await loader.load_all()
    else:
        loader.load_snapshot(offline)

    lease_ttl = 2 * rs.interim_interval + rs.stale_grace
    postauth = PostAuthLog(pool)
    rt.on_drain("postauth", lambda: postauth.close(rs.db_deadline))
    spool = Spool(workers.state_dir(rs.spool_dir, "radiusd"))
    spool.claim()
    base = workers.state_base(rs.spool_dir, "radiusd")
    adopted = await asyncio.to_thread(spool.adopt, Spool.orphans(base, workers.layout(base, rs.workers)))
    if adopted:
        log.get("lastmile.radiusd").info("adopted accounting spooled by another number of workers", records=adopted)
    writer = AccountingWriter(pool, spool, batch=rs.acct_batch, lease_ttl=lease_ttl, deadline=rs.db_deadline,
                              origin=instance)
    leases = LeaseBatcher(pool, rs.pool_reserve, lease_ttl=lease_ttl, stock=rs.pool_stock, holder=instance)
    online.on_change = leases.forget
    if offline is None:
        await leases.load()
    else:
        leases.previous = offline.previous
    transport = Transport(nas, duplicate_ttl=rs.duplicate_ttl, max_attributes=rs.max_attributes, table=table)
    handler = Handler(
        transport, subscribers=subscribers, online=online, writer=writer, postauth=postauth, pool=pool,
        events=events, leases=leases, db_deadline=rs.db_deadline,
        policy_settings=policy.PolicySettings(rs.blocked_action, rs.blocked_address_list, rs.interim_interval))
    writer.on_saved = transport.acknowledge
    writer.on_unsaved = transport.unacknowledged
    rt.on_drain("sockets", lambda: _close(transport, coa_client))

    def snapshot_of_caches() -> tuple[snapshot.Snapshot, int]:
        return snapshot.Snapshot(time.time(), snapshot.nas_rows(nas), list(subscribers.by_id.values()),
                                 [(s, uid) for s, uids in online.by_service.items() for uid in uids],
                                 leases.previous), subscribers.version

    # One snapshot for all the workers: they serve the same caches.
    keeper = snapshot.SnapshotKeeper(state / snapshot.NAME, snapshot_of_caches) if workers.index() <= 1 else None

    def session_changes(changes: list[store.SessionChange], restarts: list[store.NasRestart]) -> None:
        handler.session_changes(changes, restarts)
        if keeper is not None:
            keeper.changed()

    writer.on_changes = session_changes
    if keeper is not None:
        loader.on_change = keeper.changed
        keeper.changed()
        rt.on_drain("snapshot", keeper.save)
        rt.spawn("snapshot", keeper.run())
    if offline is not None:
        metrics.FROM_SNAPSHOT.set(1)
        rt.spawn("database-return", _database_returns(pool, listener, loader, leases), finite=True)

    rt.spawn("cache-refresh", loader.run())
    rt.spawn("postauth-writer", postauth.run())
    rt.every("stale-sessions", sweep_period(lease_ttl), lambda: sweep(pool, handler, lease_ttl, instance))
    rt.every("partitions", 3600, lambda: _partitions(pool))
    # Cancelled (and flushed) after the replies in flight.
    rt.spawn("log-summaries", _summarise([*transport.summaries, *handler.summaries]))
    rt.spawn("coa", coa_worker.run())
    rt.spawn("spool-replay", writer.replay())
    rt.spawn("leases", leases.run())
    rt.spawn("lease-stock", leases.keep())
    rt.spawn("accounting-writer", writer.run())
    rt.on_drain("accounting", writer.drain)
    # After the logins in flight (steps run in reverse order).
    rt.on_drain("lease-stock-release", lambda: leases.close(rs.db_deadline))
    rt.on_drain("auth-in-flight", handler.wait_in_flight)

    reuse = rs.workers > 1
    transport.auth_endpoint = await udp.open_endpoint(rs.bind, rs.auth_port, transport.on_auth, reuse_port=reuse,
                                                      rcvbuf=rs.rcvbuf)
    transport.acct_endpoint = await udp.open_endpoint(rs.bind, rs.acct_port, transport.on_acct, reuse_port=reuse,
                                                      rcvbuf=rs.rcvbuf)
    rt.on_drain("stop-intake", lambda: _stop_intake(transport))
    log.get("lastmile.radiusd").info(
        "radius listening", auth=f"{rs.bind}:{transport.auth_endpoint.address[1]}",
        acct=f"{rs.bind}:{transport.acct_endpoint.address[1]}", rcvbuf=transport.auth_endpoint.rcvbuf,
        spool=str(writer.spool.path), spooled=writer.spool.depth)


async def _database_returns(pool: asyncpg.Pool, listener: db.Listener, loader: CacheLoader,
                            leases: LeaseBatcher) -> None:
    """After a start from the snapshot: once the database answers (LISTEN is up, so no change
    after the load is missed), check its schema and load the caches from it."""
    logger = log.get("lastmile.radiusd")
    while True:
        await listener.connected.wait()
        try:
            async with pool.acquire() as conn:
                await db.check_schema(conn)
                await db.maintain_partitions(conn)
            await loader.load_all()
            await leases.load()
        except DB_DOWN as e:
            logger.warning("database not ready yet", error=str(e) or type(e).__name__)
            await asyncio.sleep(1.0)
            continue
        metrics.FROM_SNAPSHOT.set(0)
        logger.info("database reachable: the caches come from it again")
        return


def _dictionary(directory: str) -> AttributeTable:
    """The table main() loaded (and checked) for ``[radiusd] dictionary_dir``."""
    loaded = dictionaries.load(directory)
    if loaded.files:
        log.get("lastmile.radiusd").info("site dictionaries loaded", files=[str(p) for p in loaded.files],
                                         not_supported=list(loaded.skipped))
    return loaded.table


async def _summarise(summaries: list[logsummary.LogSummary]) -> None:
    """Every minute, the counts of repeated log lines (logsummary.py); a last time when cancelled."""
    try:
        while True:
            await asyncio.sleep(logsummary.PERIOD)
            for summary in summaries:
                summary.flush()
    finally:
        for summary in summaries:
            summary.flush()


async def _stop_intake(transport: Transport) -> None:
    transport.accepting = False


async def _close(transport: Transport, coa_client: CoaClient) -> None:
    transport.close()
    coa_client.close()


def sweep_period(stale_after: float) -> float:
    """Seconds between sweeps for sessions silent ``stale_after`` seconds: a quarter of that, at
    most 30, so a stale session closes within ``stale_after`` plus a quarter of it."""
    return min(30.0, stale_after / 4)


async def sweep(pool: asyncpg.Pool, handler: Handler, lease_ttl: int, instance: str) -> None:
    """Close sessions silent for ``lease_ttl`` (the stale threshold, 2 x interim_interval +
    stale_grace) and free expired leases: every :func:`sweep_period` of it."""
    logger = log.get("lastmile.radiusd.maintenance")
    async with pool.acquire() as conn:
        async with conn.transaction():
            closed = await store.close_stale(conn, lease_ttl)
            await notify_changes(conn, closed, instance)
        freed = await store.expire_leases(conn, lease_ttl)
    if closed:
        metrics.STALE_CLOSED.inc(len(closed))
        handler.session_changes(closed, [])
        logger.info("stale sessions closed", count=len(closed))
    if freed:
        logger.info("expired address leases freed", count=freed)


async def _partitions(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await db.maintain_partitions(conn)


if __name__ == "__main__":
    from daemons import config

    sys.exit(main(config.load()))

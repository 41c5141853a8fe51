"""provisiond: wiring only. ``lastmile provisiond`` runs ``main(settings)``."""

from __future__ import annotations

import os
import sys
from typing import Any

from daemons import channels, db, log, runtime
from daemons.config import Settings
from daemons.events import EventPublisher
from daemons.metrics import REGISTRY
from daemons.provisiond import metrics, store
from daemons.provisiond.customers import CustomerStatuses
from daemons.provisiond.reconcile import Reconciler
from daemons.provisiond.scheduler import Scheduler
from daemons.provisiond.settings import ProvisiondSettings
from daemons.secrets import ROUTER_PURPOSE, Keyring, SecretError

TABLES = ("routers", "services", "customers", "tariffs")
"""What a router's desired state is computed from: a change of any of them marks its routers."""


def main(settings: Settings) -> int:
    return runtime.run("provisiond", lambda rt: serve(rt, settings), settings, settings.of(ProvisiondSettings))


async def seal_clear_passwords(conn: db.Connection, keyring: Keyring) -> int:
    """Seal router passwords written in clear text (by hand, or before provisiond existed)."""
    sealed = 0
    for router_id, name, password in await store.clear_passwords(conn):
        if await store.set_password(conn, router_id, keyring.seal(password, ROUTER_PURPOSE), password):
            sealed += 1
            log.get("lastmile.provisiond").warning("router password was stored in clear text: sealed it", router=name)
    return sealed


async def serve(rt: runtime.Runtime, settings: Settings) -> None:
    ps = settings.of(ProvisiondSettings)
    try:
        keyring = Keyring.load(settings.secrets)
    except SecretError as e:
        raise runtime.StartError(str(e)) from None
    url = db.url_of(settings.database)
    pool = await db.create_pool(settings.database, url, max_size=max(settings.database.pool_max, ps.concurrency + 2))
    rt.on_drain("database", pool.close, pool.terminate)
    events = EventPublisher(settings.mqtt, f"lastmile-provisiond-{os.getpid()}")
    events.start()
    rt.on_drain("events", events.close)
    customers = CustomerStatuses()
    async with pool.acquire() as conn:
        await seal_clear_passwords(conn, keyring)
        await customers.load(conn)

    states: dict[int, metrics.RouterState] = {}
    reconciler = Reconciler(pool, keyring, ps, states)
    rt.on_drain("routers", reconciler.close)

    async def load(ids: set[int] | None) -> list[store.Router]:
        async with pool.acquire() as conn:
            routers = await store.routers(conn, ids)
        if ids is None:  # routers that went away: forget them
            for gone in set(states) - {r.id for r in routers}:
                await reconciler.forget(gone)
        return routers

    scheduler = Scheduler(reconciler, load, ps.concurrency, ps.backoff_max)
    rt.on_drain("reconciles", scheduler.stop)

    async def refresh(pending: db.Pending) -> None:
        async with pool.acquire() as conn:
            if "customers" in pending:
                for event in await customers.changed(conn, pending["customers"]):
                    events.publish(event)
            for table, ids in pending.items():
                if ids is None:
                    scheduler.mark(None)
                    return
                if table in ("services", "customers"):  # a block, an unblock: only their objects
                    by_router, gone = await store.services_by_router(conn, table, ids)
                    scheduler.mark_services(by_router)
                    if gone:
                        scheduler.mark(None)  # deleted services: their router is not known any more
                else:
                    scheduler.mark(await store.routers_of(conn, table, ids))

    refresher = db.Refresher(refresh, TABLES, settle=ps.debounce, name="routers")

    def notified(_channel: str, payload: Any) -> None:
        change = channels.table_change(payload)
        if change is not None and change.table in TABLES:
            refresher.want(change.table, change.id)

    def reconnected() -> None:  # notifications may have been missed: every router, every customer
        refresher.reload()

    listener = db.Listener(url, [channels.table_channel(t) for t in TABLES], notified, on_reconnect=reconnected)
    rt.spawn("listen", listener.run())
    rt.spawn("refresh", refresher.run())
    rt.spawn("scheduler", scheduler.run())

    async def everything() -> None:
        scheduler.mark(None)

    rt.every("full-reconcile", ps.full_interval, everything)
    REGISTRY.register(metrics.RouterStates(states))
    scheduler.mark(None)
    log.get("lastmile.provisiond").info("provisiond started", concurrency=ps.concurrency,
                                        full_interval=ps.full_interval)


if __name__ == "__main__":
    from daemons import config

    sys.exit(main(config.load()))

"""`lastmile routers ...`: the NOC's view of provisiond.

- ``[list]``: every router with its state: reachable, last sync age, drift, last error.
- ``plan ROUTER``: what a reconcile would change now, and the leaks it sees; writes nothing.
- ``sync ROUTER [--force]``: reconcile now and say what was done (``--force``: past the safety valve).
- ``import ROUTER [--apply]``: propose billing rows for what a live router holds (importer.py).

They talk to the router themselves (the same code as the daemon, under the same per-router lock),
so they work whether provisiond runs or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from daemons import db, log, output
from daemons.config import LogSettings, Settings
from daemons.provisiond import importer, store
from daemons.provisiond.client import RouterError
from daemons.provisiond.plan import Plan
from daemons.provisiond.reconcile import Outcome, Reconciler
from daemons.provisiond.settings import ProvisiondSettings
from daemons.secrets import Keyring, SecretError

BUSY_WAIT_S = 30.0
COLUMNS = ("ROUTER", "ADDRESS", "SERVICES", "REACHABLE", "LAST SYNC", "DRIFT", "LAST ERROR")


def main(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lastmile routers")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list", help="routers with reachable, last sync age, drift and last error (the default)")
    plan = sub.add_parser("plan", help="what a reconcile would change on ROUTER now; writes nothing")
    plan.add_argument("router")
    sync = sub.add_parser("sync", help="reconcile ROUTER now and print what was done")
    sync.add_argument("router")
    sync.add_argument("--force", action="store_true", help="apply even past [provisiond] max_remove_share")
    imp = sub.add_parser("import", help="propose customers, services and tariffs for what ROUTER holds")
    imp.add_argument("router")
    imp.add_argument("--apply", action="store_true", help="create them, and tag the router's objects as lastmile's")
    imp.add_argument("--partner", help="partner of the new customers (default: the only one, or 'Imported')")
    args = parser.parse_args(argv)
    log.setup(LogSettings(level="warning", format=settings.log.format), "routers", stream=sys.stderr)
    try:
        if args.command in (None, "list"):
            output.emit(asyncio.run(_with_db(settings, _list)))
            return 0
        if args.command == "import":
            return asyncio.run(_import(settings, args.router, args.apply, args.partner))
        return asyncio.run(_reconcile(settings, args.router, args.command == "sync", getattr(args, "force", False)))
    except SecretError as e:
        print(f"lastmile routers: {e}")
        return 2


async def _with_db(settings: Settings, fn: Callable[[db.Connection], Awaitable[list[str]]]) -> list[str]:
    conn = await db.connect(db.url_of(settings.database), settings.database.connect_timeout)
    try:
        return await fn(conn)
    finally:
        await conn.close()


def age(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    s = int((now - at).total_seconds())
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 172800:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


async def _list(conn: db.Connection) -> list[str]:
    rows = await store.sync_states(conn)
    if not rows:
        return ["no routers (add one to the routers table, or `lastmile routers import` after adding it)"]
    now = datetime.now(UTC)
    cells = []
    for r in rows:
        scheme = "api-ssl" if r["api_tls"] else "api"
        reachable = "disabled" if not r["enabled"] else "-" if r["reachable"] is None else (
            "yes" if r["reachable"] else "no")
        cells.append((r["name"], f"{scheme}://{r['host']}:{r['api_port']}", f"{r['services']:,}", reachable,
                      age(r["last_success_at"], now), str(r["drift"] if r["drift"] is not None else "-"),
                      (r["last_error"] or "")[:100]))
    return output.table(COLUMNS, cells, right=frozenset({2, 5}))


def describe(outcome: Outcome, applied: bool) -> Iterator[str]:
    p = outcome.plan
    rep: dict[str, Any] = outcome.report
    if p is not None:
        verb = "done" if applied else "to do"
        changes = [c.describe() for c in p.changes]
        yield f"{outcome.router}: {p.owned} objects owned by lastmile; {verb}: {p.adds} to add, {p.sets} to set, " \
              f"{p.removes} to remove" if not applied else \
              f"{outcome.router}: {p.adds} added, {p.sets} set, {p.removes} removed in {outcome.duration:.2f} s"
        yield from (f"  {c}" for c in changes[:500])
        if len(changes) > 500:
            yield f"  ... and {len(changes) - 500} more"
    for title, key in (("not written (an object without lastmile's tag holds the key)", "missing"),
                       ("revenue leaks: on the router, matching no active service", "leaks"),
                       ("refused by the router", "failed")):
        items = rep.get(key) or []
        if items:
            yield f"{title}: {len(items)}"
            yield from (f"  {i}" for i in items)
    if outcome.error:
        yield f"error: {outcome.error}"


class NoRouter(Exception):
    pass


@contextlib.asynccontextmanager
async def session(settings: Settings, name: str) -> AsyncIterator[tuple[Reconciler, store.Router]]:
    """A reconciler on a small pool, and the router named ``name`` (NoRouter if there is none)."""
    keyring = Keyring.load(settings.secrets)
    pool = await db.create_pool(settings.database, db.url_of(settings.database), max_size=2)
    reconciler = Reconciler(pool, keyring, settings.of(ProvisiondSettings))
    try:
        async with pool.acquire() as conn:
            router = await store.router_by_name(conn, name)
        if router is None:
            raise NoRouter(name)
        yield reconciler, router
    finally:
        await reconciler.close()
        await pool.close()


async def _import(settings: Settings, name: str, apply: bool, partner: str | None) -> int:
    try:
        async with session(settings, name) as (reconciler, router):
            output.emit(await importer.run(reconciler, router, apply, partner))
    except NoRouter:
        print(f"lastmile routers: no router named {name!r}")
        return 2
    except RouterError as e:
        print(f"lastmile routers: {name}: {e}")
        return 1
    return 0


async def _reconcile(settings: Settings, name: str, apply: bool, force: bool) -> int:
    try:
        async with session(settings, name) as (reconciler, router):
            outcome = await _run(reconciler, router, apply, force)
    except NoRouter:
        print(f"lastmile routers: no router named {name!r}")
        return 2
    output.emit(describe(outcome, apply and outcome.result in ("ok", "failed")))
    return 0 if outcome.result in ("ok", "planned") else 1


async def _run(reconciler: Reconciler, router: store.Router, apply: bool, force: bool) -> Outcome:
    bar: list[output.Progress] = []

    def planned(p: Plan) -> None:
        if apply and len(p.changes) > 50:
            bar.append(output.Progress(f"{router.name}: writing", len(p.changes)))

    def progress(done: int) -> None:
        if bar:
            bar[0].update(done)

    started = time.monotonic()
    while True:  # provisiond may be reconciling it right now: wait for its turn, a while
        outcome = await reconciler.run(router, apply=apply, force=force, on_plan=planned, progress=progress)
        if outcome.result != "busy" or time.monotonic() - started > BUSY_WAIT_S:
            break
        await asyncio.sleep(0.2)
    if bar:
        bar[0].close()
    return outcome

"""One reconcile of one router: read billing and the router, plan, apply, record.

Every run is a full one: it reads every owned object of the router (a few thousand rows cost a
router tens of milliseconds), so a run repairs whatever drifted, whatever triggered it, and a
second run right after a successful one finds nothing to write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from daemons import log
from daemons.db import Connection as DbConnection
from daemons.provisiond import metrics, report, store
from daemons.provisiond.client import Applied, Connection, Endpoint, RouterError
from daemons.provisiond.desired import Policy, Service, desired, keys_of
from daemons.provisiond.model import ADDRESS_LIST, MENUS, Item, Menu
from daemons.provisiond.plan import Plan, plan
from daemons.provisiond.settings import ProvisiondSettings
from daemons.secrets import ROUTER_PURPOSE, Keyring, SecretError

SECRET_PURPOSE = "services.password"  # noqa: S105 (what the fingerprint is keyed for)


@dataclass(slots=True)
class Outcome:
    router: str
    result: str  # ok, failed, unreachable, error, stopped, busy, planned
    plan: Plan | None = None
    applied: Applied | None = None
    error: str | None = None
    duration: float = 0.0
    report: dict[str, object] = field(default_factory=dict)
    targeted: bool = False  # a run over some services' objects only

    @property
    def reached(self) -> bool:
        return self.result in ("ok", "failed", "stopped", "planned")


class Reconciler:
    """Runs reconciles; keeps one connection per router between runs (closed on any failure)."""

    def __init__(self, pool: asyncpg.Pool, keyring: Keyring, settings: ProvisiondSettings,
                 states: dict[int, metrics.RouterState] | None = None) -> None:
        self.pool = pool
        self.keyring = keyring
        self.settings = settings
        self.policy = Policy(settings.blocked_list, settings.new_list, settings.list_new)
        self.links: dict[int, Connection] = {}
        self.states = states if states is not None else {}
        self.log = log.get("lastmile.provisiond")

    def endpoint(self, router: store.Router) -> Endpoint:
        return Endpoint(router.name, router.host, router.api_port, router.username,
                        self.keyring.open(router.password, ROUTER_PURPOSE), router.api_tls, router.api_tls_verify,
                        self.settings.ca_file)

    def fingerprint(self, text: str) -> str:
        return self.keyring.fingerprint(text, SECRET_PURPOSE)

    async def close(self) -> None:
        links, self.links = self.links, {}
        await asyncio.gather(*(c.close() for c in links.values()))

    async def _connection(self, router: store.Router) -> tuple[Connection, bool]:
        """The router's connection, and whether it was kept from an earlier run."""
        link = self.links.get(router.id)
        if link is not None and not link.broken and link.endpoint == self.endpoint(router):
            return link, True
        if link is not None:
            await link.close()
        s = self.settings
        link = await Connection.open(self.endpoint(router), s.connect_timeout, s.command_timeout)
        self.links[router.id] = link
        return link, False

    async def observe(self, link: Connection, router: str,
                      targets: dict[Menu, tuple[str, set[str]]] | None = None) -> list[Item]:
        """What the router holds: every menu whole (the address list: lastmile's lists), or with
        ``targets`` only the objects whose key field has those values."""
        observed: list[Item] = []
        for menu in MENUS:
            t = time.perf_counter()
            if targets is not None:
                field, values = targets[menu]
                observed += await link.read(menu, field, values)
            elif menu is ADDRESS_LIST:
                observed += await link.read(menu, "list", (self.settings.blocked_list, self.settings.new_list))
            else:
                observed += await link.read(menu)
            metrics.COMMAND_SECONDS.labels(router).observe(time.perf_counter() - t)
        return observed

    async def run(self, router: store.Router, *, services: set[int] | None = None, apply: bool = True,
                  force: bool = False, on_plan: Callable[[Plan], None] | None = None,
                  progress: Callable[[int], None] | None = None) -> Outcome:
        """Reconcile ``router`` (``apply=False``: plan only); with ``services``, a targeted run:
        only the objects those services have or may have (a block reaches the router without a
        read of everything; the next full run still covers all). Never raises for the router's
        faults: the outcome says what happened, router_sync and the metrics record it."""
        started = time.perf_counter()
        state = self.states.setdefault(router.id, metrics.RouterState(router.name))
        async with self.pool.acquire() as conn:
            if not await store.try_lock(conn, router.id):
                metrics.RUNS.labels(router.name, "busy", "targeted" if services is not None else "full").inc()
                return Outcome(router.name, "busy", error="another writer is reconciling this router")
            try:
                rows = await store.services(conn, router.id, services)
                outcome = await self._run(router, rows, services is not None, apply, force, on_plan, progress)
                outcome.targeted = services is not None
            finally:
                await store.unlock(conn, router.id)
            outcome.duration = time.perf_counter() - started
            await self._record(conn, router, outcome, state)
        metrics.RUNS.labels(router.name, outcome.result, "targeted" if outcome.targeted else "full").inc()
        metrics.RUN_SECONDS.observe(outcome.duration)
        return outcome

    async def _run(self, router: store.Router, services: list[Service], targeted: bool, apply: bool, force: bool,
                   on_plan: Callable[[Plan], None] | None, progress: Callable[[int], None] | None) -> Outcome:
        try:
            want = desired(services, self.policy, router.auth_mode == "api", self.fingerprint)
        except SecretError as e:
            return Outcome(router.name, "error", error=str(e))
        try:
            async with asyncio.timeout(self.settings.run_timeout):
                targets = keys_of(services) if targeted else None
                link, reused = await self._connection(router)
                try:
                    observed = await self.observe(link, router.name, targets)
                except RouterError:
                    if not reused:
                        raise
                    # The connection kept from the last run went stale (the router rebooted, a
                    # NAT timed it out): once more on a new one.
                    await self._drop(router.id)
                    link, _ = await self._connection(router)
                    observed = await self.observe(link, router.name, targets)
                p = plan(want, observed)
                if on_plan is not None:
                    on_plan(p)
                rep = report.build(p, observed, services)
                if not apply:
                    return Outcome(router.name, "planned", p, report=rep)
                if p.exceeds(self.settings.max_remove_share) and not force:
                    error = (f"stopped: the run would remove {p.removes} of the {p.owned} objects lastmile owns "
                             f"on the router (more than [provisiond] max_remove_share {self.settings.max_remove_share}"
                             f"); nothing was written. `lastmile routers plan {router.name}` shows them, "
                             f"`lastmile routers sync {router.name} --force` applies them")
                    return Outcome(router.name, "stopped", p, error=error, report=rep)
                applied = await link.apply(p.changes, self.settings.pipeline, progress) if p else Applied()
        except TimeoutError:
            await self._drop(router.id)
            metrics.ERRORS.labels(router.name, "timeout").inc()
            return Outcome(router.name, "error", error=f"the run took longer than {self.settings.run_timeout} s")
        except RouterError as e:
            await self._drop(router.id)
            metrics.ERRORS.labels(router.name, e.stage).inc()
            result = "unreachable" if e.stage in ("connect", "login") else "error"
            return Outcome(router.name, result, error=str(e))
        except SecretError as e:
            return Outcome(router.name, "error", error=str(e))
        for op, n in applied.done.items():
            if n:
                metrics.CHANGES.labels(router.name, op).inc(n)
        if applied.failed:
            rep["failed"] = [f"{c.describe()}: {msg}" for c, msg in applied.failed][:report.LIMIT]
            first = applied.failed[0]
            error = f"{len(applied.failed)} changes refused by the router, e.g. {first[0].describe()}: {first[1]}"
            return Outcome(router.name, "failed", p, applied, error=error, report=rep)
        return Outcome(router.name, "ok", p, applied, report=rep)

    async def forget(self, router_id: int) -> None:
        """A router that is disabled or gone: its connection closed, its state dropped."""
        await self._drop(router_id)
        self.states.pop(router_id, None)

    async def _drop(self, router_id: int) -> None:
        link = self.links.pop(router_id, None)
        if link is not None:
            await link.close()

    async def _record(self, conn: DbConnection, router: store.Router, o: Outcome,
                      state: metrics.RouterState) -> None:
        now = datetime.now(UTC)
        if o.result == "planned":
            return
        state.reachable = o.reached
        if o.reached and o.plan is not None and o.targeted:
            # Not a sync of the whole router: router_sync keeps the last full run's state.
            done = o.applied.done if o.applied is not None else {}
            if o.plan.changes or o.error:
                (self.log.warning if o.error else self.log.debug)(
                    "router changes applied", router=router.name, result=o.result, adds=done.get("add", 0),
                    sets=done.get("set", 0), removes=done.get("remove", 0), duration_ms=round(o.duration * 1000),
                    **({"error": o.error} if o.error else {}))
        elif o.reached and o.plan is not None:
            done = o.applied.done if o.applied is not None else {}
            state.drift = len(o.plan.changes)
            if o.result == "ok":
                state.last_success = time.time()
                state.failures = 0
            else:
                state.failures += 1
            await store.record_run(conn, router.id, now, done, round(o.duration * 1000), len(o.plan.changes),
                                       o.report, o.error)
            if o.plan.changes or o.error:
                extra = {"error": o.error} if o.error else {}
                (self.log.warning if o.error else self.log.info)(
                    "router reconciled", router=router.name, result=o.result, adds=done.get("add", 0),
                    sets=done.get("set", 0), removes=done.get("remove", 0), duration_ms=round(o.duration * 1000),
                    **extra)
        else:
            state.failures += 1
            await store.record_failure(conn, router.id, now, o.error or o.result, o.reached)
            self.log.warning("router not reconciled", router=router.name, result=o.result, error=o.error,
                             failures=state.failures)

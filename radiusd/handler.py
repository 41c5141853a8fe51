"""What radiusd does with a request the transport let through: decide a login, record accounting.

An Access-Request is decided right away from the caches (``policy.authorize``; an address from
this instance's stock or a held reservation, leases.py) and answered through the transport.
The two cases that need the database — an address from a lastmile pool that may be the
service's previous one, and confirming a Simultaneous-Use reject against the database's count
— continue in a task, bounded by ``max_tasks``, and wait for the database at most
``db_deadline`` seconds: past that (a hung server) or when it is away, the login is decided
from memory (:meth:`Handler._without_database`). Every decision goes to the post-auth log.

An Accounting-Request becomes a record (acct.py) handed to the writer, which commits it (or
spools it) and then has the transport acknowledge it. Sessions that opened or closed update the
online index and go out as MQTT events.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from daemons import db
from daemons.db import DB_DOWN
from daemons.events import EventPublisher, NasRestarted, SessionStarted, SessionStopped
from radiusd import acct, metrics, policy, store
from radiusd.cache import OnlineSessions, SubscriberCache
from radiusd.codec import AcctStatus
from radiusd.leases import LeaseBatcher
from radiusd.logsummary import LogSummary
from radiusd.postauth import PostAuthLog
from radiusd.transport import Exchange, Transport
from radiusd.writer import AccountingWriter, Item


class Handler:
    def __init__(self, transport: Transport, *, subscribers: SubscriberCache, online: OnlineSessions,
                 writer: AccountingWriter, postauth: PostAuthLog, pool: asyncpg.Pool, events: EventPublisher,
                 leases: LeaseBatcher, policy_settings: policy.PolicySettings, db_deadline: float = 1.0,
                 max_tasks: int = 1024) -> None:
        self.transport = transport
        transport.handler = self
        self.subscribers = subscribers
        self.online = online
        self.writer = writer
        self.postauth = postauth
        self.pool = pool
        self.events = events
        self.leases = leases
        self.policy = policy_settings
        #: Seconds a login waits for the database before it is decided from memory.
        self.db_deadline = db_deadline
        self.max_tasks = max_tasks
        #: NAS id → the time of its latest Accounting-On/Off received here: its sessions from
        #: before are over even while that record's commit is still running (Simultaneous-Use).
        self.restarts: dict[int, float] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.log = structlog.get_logger("lastmile.radiusd")
        # Repeated log lines: the first in full, then a count a minute (logsummary.py).
        self.rejects = LogSummary(self.log.info, "access-reject", ("nas", "reason", "user"), group=2)
        self.without_db = LogSummary(self.log.warning, "login decided without the database", ("step", "answered"))
        self.unrecordable = LogSummary(self.log.warning, "accounting request not recordable", ("nas", "problem"),
                                       group=1)
        self.summaries = (self.rejects, self.without_db, self.unrecordable)

    # -- authentication ------------------------------------------------------------------------------

    def access(self, ex: Exchange) -> None:
        """Decide an Access-Request; never awaits (what needs the database goes on in a task)."""
        request = ex.request
        sub = self.subscribers.get(request.user_name or "")
        online = self.online.count(sub.service_id) if sub else 0
        decision = policy.authorize(request, sub, online, self.policy)
        if decision.pool_id is not None and sub is not None:  # an address from memory when that is safe (leases.py)
            address = self.leases.take(decision.pool_id, sub.service_id, sub.simultaneous_use == 1)
            if address is not None:
                decision.attributes.insert(2, ("Framed-IP-Address", address))
                decision.pool_id = None
        if decision.pool_id is None and decision.reason != policy.SIMULTANEOUS_USE:
            self._answer(ex, sub, decision)
            return
        if len(self.tasks) >= self.max_tasks:
            metrics.drop("overloaded")
            self.transport.unanswered(ex)
            return
        task = asyncio.get_running_loop().create_task(self._answer_after_db(ex, sub, decision))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer_after_db(self, ex: Exchange, sub: Any, decision: policy.Decision) -> None:
        """The database's part of a login, within ``db_deadline``: past it (a hung server) or when
        the database is away, the login is decided from memory (:meth:`_without_database`)."""
        deadline = time.monotonic() + self.db_deadline
        single = sub.simultaneous_use == 1
        try:
            address = None
            if decision.reason == policy.SIMULTANEOUS_USE:
                # The in-memory count said no; the database has the last word (a Stop may not
                # have reached this instance yet).
                online = await db.bounded(self._count_online(sub.service_id), deadline - time.monotonic())
                decision = policy.authorize(ex.request, sub, online, self.policy)
                if decision.pool_id is not None:  # memory first, as access() does for the others
                    address = self.leases.take(decision.pool_id, sub.service_id, single)
            if decision.pool_id is not None:
                if address is None:
                    address = await self.leases.lease(decision.pool_id, sub.service_id, single,
                                                      deadline - time.monotonic())
                if address is None:  # the database found the pool full; the stock may still have one
                    address = await db.bounded(self.leases.from_stock(decision.pool_id, sub.service_id, single),
                                               deadline - time.monotonic())
                if address is None:
                    decision = policy.reject(policy.POOL_EXHAUSTED)
                else:
                    decision.attributes.insert(2, ("Framed-IP-Address", address))
        except (*DB_DOWN, asyncpg.PostgresError) as e:
            answer = self._without_database(ex, sub, decision, e)
            if answer is None:
                metrics.drop("database_unreachable")
                self.transport.unanswered(ex)
                return
            decision = answer
        self._answer(ex, sub, decision)

    async def _count_online(self, service_id: int) -> int:
        async with self.pool.acquire() as conn:
            return await store.count_online(conn, service_id, self.restarts)

    def _without_database(self, ex: Exchange, sub: Any, decision: policy.Decision,
                          error: BaseException) -> policy.Decision | None:
        """A login whose database step failed or was too late: a Simultaneous-Use reject stands on
        the in-memory count; a pool login takes an address from this instance's stock (even when
        the service could have had its previous address back); None: no answer (dropped, the NAS
        retries)."""
        late = isinstance(error, TimeoutError)
        answer: policy.Decision | None = decision
        if decision.reason == policy.SIMULTANEOUS_USE:
            step = "simultaneous_use"
        else:
            assert decision.pool_id is not None
            step = "pool_lease"
            address = self.leases.take(decision.pool_id, sub.service_id, sub.simultaneous_use == 1, sticky=False)
            if address is not None:
                decision.attributes.insert(2, ("Framed-IP-Address", address))
            answer = decision if address is not None else None
        if late:
            metrics.DB_DEADLINE.labels(step).inc()
        if self.without_db.first((step, answer is not None)):
            self.log.warning("login decided without the database", step=step, answered=answer is not None,
                             user=ex.request.user_name, late=late, error=str(error) or type(error).__name__)
        return answer

    def _answer(self, ex: Exchange, sub: Any, decision: policy.Decision) -> None:
        self.transport.answer(ex, decision.accept, decision.attributes)
        request = ex.request
        framed_ip = next((v for n, v in decision.attributes if n == "Framed-IP-Address"), None)
        self.postauth.add(time.time(), request.user_name or "", sub.service_id if sub else None, ex.nas.id,
                          decision.accept, decision.reason, request.calling_station_id, framed_ip)
        if not decision.accept and self.rejects.first((ex.nas.name, decision.reason, request.user_name)):
            self.log.info("access-reject", user=request.user_name, nas=ex.nas.name, reason=decision.reason,
                          calling_station_id=request.calling_station_id)

    async def wait_in_flight(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    # -- accounting ----------------------------------------------------------------------------------

    def accounting(self, ex: Exchange) -> None:
        """An Accounting-Request as a record for the writer; acknowledged after its commit."""
        sub = self.subscribers.get(ex.request.user_name or "")
        try:
            entry = acct.record(ex.request, ex.nas.id, sub.service_id if sub else None, time.time())
        except acct.AcctError as e:
            # RFC 2866 4.1: no reply for what cannot be recorded.
            metrics.drop("unrecordable_accounting")
            self.transport.unanswered(ex)
            if self.unrecordable.first((ex.nas.name, str(e))):
                self.log.warning("accounting request not recordable", nas=ex.nas.name, problem=str(e))
            return
        if isinstance(entry, acct.NasEvent):
            self.restarts[entry.nas_id] = max(entry.event_time, self.restarts.get(entry.nas_id, 0.0))
        self.writer.submit(Item(entry, ex))

    def session_changes(self, changes: list[store.SessionChange], restarts: list[store.NasRestart]) -> None:
        """After a commit: the online index and the MQTT events (one per NAS restart, not one per
        session it closed)."""
        for c in changes:
            if c.service_id is None:
                continue
            if c.opened:
                self.online.opened(c.service_id, c.unique_id)
                self.events.publish(SessionStarted(c.unique_id, c.service_id, c.username, c.framed_ip,
                                                   c.started_at.isoformat(), c.nas_id))
            elif c.closed:
                self.online.closed(c.service_id, c.unique_id)
                if c.by_nas:
                    continue
                stopped = c.stopped_at.isoformat() if c.stopped_at else c.started_at.isoformat()
                self.events.publish(SessionStopped(c.unique_id, c.service_id, c.username, c.framed_ip,
                                                   c.started_at.isoformat(), stopped, c.nas_id))
        for r in restarts:
            nas = self.transport.nas.by_id.get(r.nas_id)
            self.events.publish(NasRestarted(
                r.nas_id, nas.name if nas else "", "on" if r.status == AcctStatus.ACCOUNTING_ON else "off",
                datetime.fromtimestamp(r.at, UTC).isoformat(), r.sessions_closed))

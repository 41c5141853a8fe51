"""radiusd's transport: datagrams in, replies out, on the auth and accounting ports.

``on_auth`` and ``on_acct`` run inside ``datagram_received`` and never await. An Access-Request
is answered right there from the caches; the two cases that need the database (an address
from a lastmile pool, and confirming a Simultaneous-Use reject against the database's count)
continue in a task, bounded by ``max_tasks``. An Accounting-Request is handed to the writer,
which acknowledges it after COMMIT.

Before anything is handled: the source must be a known NAS (else dropped and counted), the
packet must pass the codec's checks with that NAS's secret (else dropped with the codec's
reason), and the RFC 5080 duplicate cache answers retransmissions.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import structlog

from daemons import db, udp
from daemons.db import DB_DOWN
from daemons.events import EventPublisher, SessionStarted, SessionStopped
from radiusd import acct, logsummary, metrics, policy, store
from radiusd.cache import Nas, NasTable, OnlineSessions, SubscriberCache
from radiusd.codec import AttributeTable, Code, CodecError, Request, decode_request, default_table, encode_reply
from radiusd.dedup import DuplicateCache
from radiusd.leases import LeaseBatcher
from radiusd.logsummary import LogSummary
from radiusd.postauth import PostAuthLog
from radiusd.writer import AccountingWriter, Item

#: Codec drop reasons that mean "not from whoever holds the NAS's secret" (a spoofer, or a wrong secret).
_AUTHENTICATION_FAILURES = frozenset({"bad_message_authenticator", "bad_request_authenticator",
                                      "missing_message_authenticator", "proxy_state_without_ma"})


class RadiusServer:
    def __init__(self, *, nas: NasTable, subscribers: SubscriberCache, online: OnlineSessions,
                 writer: AccountingWriter, postauth: PostAuthLog, pool: asyncpg.Pool, events: EventPublisher,
                 leases: LeaseBatcher, policy_settings: policy.PolicySettings, duplicate_ttl: float,
                 max_attributes: int, db_deadline: float = 1.0, max_tasks: int = 1024,
                 table: AttributeTable | None = None) -> None:
        self.nas = nas
        self.subscribers = subscribers
        self.online = online
        self.writer = writer
        self.postauth = postauth
        self.pool = pool
        self.events = events
        self.policy = policy_settings
        self.max_attributes = max_attributes
        #: the dictionary requests are decoded with (and so their replies encoded with)
        self.table = table or default_table()
        self.leases = leases
        self.max_tasks = max_tasks
        #: Seconds a login waits for the database before it is decided from memory.
        self.db_deadline = db_deadline
        self.auth_dedup = DuplicateCache(duplicate_ttl)
        self.acct_dedup = DuplicateCache(duplicate_ttl)
        self.auth_endpoint: udp.UdpEndpoint | None = None
        self.acct_endpoint: udp.UdpEndpoint | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.log = structlog.get_logger("lastmile.radiusd")
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._drops: dict[str, Any] = {}
        self._latency = {t: metrics.LATENCY.labels(t) for t in ("access", "accounting", "status")}
        # Repeated log lines: the first in full, then a count a minute (logsummary.py; summarise()).
        self.unknown_sources = LogSummary(self.log.warning, "request from unknown client dropped", ("source",),
                                          group=0)
        self.auth_failures = LogSummary(self.log.warning, "request failed authentication", ("nas", "reason"))
        self.rejects = LogSummary(self.log.info, "access-reject", ("nas", "reason", "user"), group=2)
        self.without_db = LogSummary(self.log.warning, "login decided without the database", ("step", "answered"))
        self.unrecordable = LogSummary(self.log.warning, "accounting request not recordable", ("nas", "problem"),
                                       group=1)
        #: Cleared by the first drain step: datagrams are then dropped while in-flight work finishes.
        self.accepting = True

    # -- shared steps ------------------------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        counter = self._drops.get(reason)
        if counter is None:
            counter = self._drops[reason] = metrics.DROPPED.labels(reason)
        counter.inc()

    def _count(self, kind: str, nas: Nas, result: str, n: int = 1) -> None:
        key = (kind, nas.name, result)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = metrics.REQUESTS.labels(*key)
        counter.inc(n)

    def _decode(self, data: bytes, addr: udp.Address) -> tuple[Nas, Request] | None:
        if not self.accepting:
            self._drop("draining")
            return None
        nas = self.nas.lookup(addr[0])
        if nas is None:
            self._drop("unknown_client")
            if self.unknown_sources.first((addr[0],)):
                self.log.warning("request from unknown client dropped", source=addr[0])
            return None
        try:
            request = decode_request(data, nas.secret, require_ma=nas.require_ma,
                                     limit_proxy_state=nas.limit_proxy_state, max_attributes=self.max_attributes,
                                     table=self.table)
        except CodecError as e:
            self._drop(e.reason)
            if e.reason in _AUTHENTICATION_FAILURES and self.auth_failures.first((nas.name, e.reason)):
                self.log.warning("request failed authentication", nas=nas.name, reason=e.reason)
            return None
        return nas, request

    # -- authentication ------------------------------------------------------------------------------

    def on_auth(self, data: bytes, addr: udp.Address) -> None:
        received = time.perf_counter()
        decoded = self._decode(data, addr)
        if decoded is None:
            return
        nas, request = decoded
        if request.code == Code.STATUS_SERVER:  # RFC 5997 section 3: Access-Accept on the auth port
            self._send_auth(encode_reply(request, Code.ACCESS_ACCEPT), addr)
            self._count("status", nas, "accept")
            return
        if request.code != Code.ACCESS_REQUEST:
            self._drop("wrong_port")
            return
        key = (addr[0], addr[1], request.identifier)
        cached = self.auth_dedup.check(key, request.authenticator, received)
        if cached is not None:
            self._resend(cached, addr, self._send_auth)
            return
        sub = self.subscribers.get(request.user_name or "")
        online = self.online.count(sub.service_id) if sub else 0
        decision = policy.authorize(request, sub, online, self.policy)
        if decision.pool_id is not None and sub is not None:  # an address from memory when that is safe (leases.py)
            address = self.leases.take(decision.pool_id, sub.service_id, sub.simultaneous_use == 1)
            if address is not None:
                decision.attributes.insert(2, ("Framed-IP-Address", address))
                decision.pool_id = None
        if decision.pool_id is None and decision.reason != policy.SIMULTANEOUS_USE:
            self._answer(nas, request, sub, decision, addr, key, received)
            return
        if len(self.tasks) >= self.max_tasks:
            self._drop("overloaded")
            self.auth_dedup.forget(key, request.authenticator)
            return
        task = asyncio.get_running_loop().create_task(
            self._answer_after_db(nas, request, sub, decision, addr, key, received))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer_after_db(self, nas: Nas, request: Request, sub: Any, decision: policy.Decision,
                               addr: udp.Address, key: tuple[str, int, int], received: float) -> None:
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
                decision = policy.authorize(request, sub, online, self.policy)
                if decision.pool_id is not None:  # memory first, as on_auth does for the others
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
            answer = self._without_database(request, sub, decision, e)
            if answer is None:
                self._drop("database_unreachable")
                self.auth_dedup.forget(key, request.authenticator)
                return
            decision = answer
        self._answer(nas, request, sub, decision, addr, key, received)

    async def _count_online(self, service_id: int) -> int:
        async with self.pool.acquire() as conn:
            return await store.count_online(conn, service_id)

    def _without_database(self, request: Request, sub: Any, decision: policy.Decision,
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
                             user=request.user_name, late=late, error=str(error) or type(error).__name__)
        return answer

    def _answer(self, nas: Nas, request: Request, sub: Any, decision: policy.Decision, addr: udp.Address,
                key: tuple[str, int, int], received: float) -> None:
        code = Code.ACCESS_ACCEPT if decision.accept else Code.ACCESS_REJECT
        reply = encode_reply(request, code, decision.attributes)
        self._send_auth(reply, addr)
        self.auth_dedup.answered(key, request.authenticator, reply, received)
        result = "accept" if decision.accept else "reject"
        self._count("access", nas, result)
        self._latency["access"].observe(time.perf_counter() - received)
        service_id = sub.service_id if sub else None
        framed_ip = next((v for n, v in decision.attributes if n == "Framed-IP-Address"), None)
        self.postauth.add(time.time(), request.user_name or "", service_id, nas.id, decision.accept,
                          decision.reason, request.calling_station_id, framed_ip)
        if not decision.accept and self.rejects.first((nas.name, decision.reason, request.user_name)):
            self.log.info("access-reject", user=request.user_name, nas=nas.name, reason=decision.reason,
                          calling_station_id=request.calling_station_id)

    def _send_auth(self, data: bytes, addr: udp.Address) -> None:
        assert self.auth_endpoint is not None
        self.auth_endpoint.send(data, addr)

    def _send_acct(self, data: bytes, addr: udp.Address) -> None:
        assert self.acct_endpoint is not None
        self.acct_endpoint.send(data, addr)

    def _resend(self, cached: bytes, addr: udp.Address, send: Any) -> None:
        if cached:
            send(cached, addr)
            metrics.DUPLICATES.inc()
        else:
            self._drop("duplicate_in_flight")

    # -- accounting ----------------------------------------------------------------------------------

    def on_acct(self, data: bytes, addr: udp.Address) -> None:
        received = time.perf_counter()
        decoded = self._decode(data, addr)
        if decoded is None:
            return
        nas, request = decoded
        if request.code == Code.STATUS_SERVER:  # RFC 5997 section 3: Accounting-Response on the acct port
            self._send_acct(encode_reply(request, Code.ACCOUNTING_RESPONSE), addr)
            self._count("status", nas, "ok")
            return
        if request.code != Code.ACCOUNTING_REQUEST:
            self._drop("wrong_port")
            return
        key = (addr[0], addr[1], request.identifier)
        cached = self.acct_dedup.check(key, request.authenticator, received)
        if cached is not None:
            self._resend(cached, addr, self._send_acct)
            return
        sub = self.subscribers.get(request.user_name or "")
        try:
            entry = acct.record(request, nas.id, sub.service_id if sub else None, time.time())
        except acct.AcctError as e:
            # RFC 2866 4.1: no reply for what cannot be recorded.
            self._drop("unrecordable_accounting")
            self.acct_dedup.forget(key, request.authenticator)
            if self.unrecordable.first((nas.name, str(e))):
                self.log.warning("accounting request not recordable", nas=nas.name, problem=str(e))
            return
        self.writer.submit(Item(entry, (request, addr, key, received, nas)))

    def acct_saved(self, items: list[Item]) -> None:
        """After the commit: an Accounting-Response for each record of the batch (writer.on_saved)."""
        assert self.acct_endpoint is not None
        send = self.acct_endpoint.send
        answered = self.acct_dedup.answered
        observe = self._latency["accounting"].observe
        per_nas: dict[int, list[Any]] = {}  # NAS id -> [NAS, answers]: counted once per batch
        for item in items:
            request, addr, key, received, nas = item.waiter
            reply = encode_reply(request, Code.ACCOUNTING_RESPONSE)
            send(reply, addr)
            answered(key, request.authenticator, reply, received)
            observe(time.perf_counter() - received)
            seen = per_nas.get(nas.id)
            if seen is None:
                per_nas[nas.id] = [nas, 1]
            else:
                seen[1] += 1
        for nas, n in per_nas.values():
            self._count("accounting", nas, "ok", n)

    def acct_unsaved(self, items: list[Item]) -> None:
        """Nothing saved (writer.on_unsaved): no reply, so the NAS retransmits and is handled again."""
        for item in items:
            request, _, key, _, _ = item.waiter
            self.acct_dedup.forget(key, request.authenticator)

    def close(self) -> None:
        for endpoint in (self.auth_endpoint, self.acct_endpoint):
            if endpoint:
                endpoint.close()

    async def summarise(self) -> None:
        """Every minute, the counts of repeated log lines; a last time when cancelled (the drain)."""
        summaries = (self.unknown_sources, self.auth_failures, self.rejects, self.unrecordable, self.without_db)
        try:
            while True:
                await asyncio.sleep(logsummary.PERIOD)
                for summary in summaries:
                    summary.flush()
        finally:
            for summary in summaries:
                summary.flush()

    async def wait_in_flight(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def session_changes(self, changes: list[store.SessionChange]) -> None:
        """After a commit: the online index and the MQTT session events."""
        for c in changes:
            if c.service_id is None:
                continue
            if c.opened:
                self.online.opened(c.service_id, c.unique_id)
                self.events.publish(SessionStarted(c.unique_id, c.service_id, c.username, c.framed_ip,
                                                   c.started_at.isoformat()))
            elif c.closed:
                self.online.closed(c.service_id, c.unique_id)
                stopped = c.stopped_at.isoformat() if c.stopped_at else c.started_at.isoformat()
                self.events.publish(SessionStopped(c.unique_id, c.service_id, c.username, c.framed_ip,
                                                   c.started_at.isoformat(), stopped))

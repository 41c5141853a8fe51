"""Addresses from lastmile pools for Access-Requests: from memory when that is safe, else leased
in batches.

Three ways a login gets its address, fastest first (:meth:`LeaseBatcher.take`, no await):

* **held**: a single-session service whose address this instance reserved a moment ago (the NAS
  asks again before any Accounting-Start) gets it back, while the reservation's committed
  expiry is still at least ``reserve_s`` ahead;
* **stock**: a service without a previous address known here gets one from this instance's
  stock: addresses already taken out of circulation in the database for this instance (state
  ``stock``, ``holder`` = this instance, committed before any of them is handed out and
  renewed in the background). Which service got it is recorded after the reply, in batches;
* **database**: a service that may have a previous address to get back (stickiness), or when
  the stock is empty, waits for ``lease()``: all the logins waiting at one moment share one
  ``store.lease`` call and one commit, so a reconnect storm after a BRAS reboot costs a commit
  per batch, not per subscriber.

The crash rule: an address is handed out from memory only while the committed expiry of its
row is at least ``reserve_s`` ahead, so if this instance dies (or PostgreSQL does), the address
stays out of circulation long enough for the Accept that carried it to be followed by its
Accounting-Start (which binds it). The deadlines are measured on this host's monotonic clock
from before the statement that set the expiry was sent, so they are never later than the
database's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass

import asyncpg

from daemons import db, log
from radiusd import metrics, store


@dataclass(slots=True)
class _Held:
    pool_id: int
    address: str
    deadline: float  # monotonic: hand it out again only before this


class LeaseBatcher:
    def __init__(self, pool: asyncpg.Pool, reserve_s: int, *, lease_ttl: int = 720, stock: int = 64,
                 batch: int = 256, holder: str | None = None) -> None:
        self.pool = pool
        self.reserve_s = reserve_s
        #: How long a reservation or a stock address is committed for: the first ``reserve_s``
        #: of it may be handed out from memory, the last ``reserve_s`` is the crash grace.
        self.hold_s = 2 * reserve_s
        self.lease_ttl = lease_ttl
        self.stock_size = stock
        self.batch = batch
        self.holder = holder or f"radiusd-{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._queue: list[tuple[tuple[int, int, bool], asyncio.Future[str | None]]] = []
        self._wake = asyncio.Event()
        self._keep = asyncio.Event()
        #: pool id → addresses in this instance's stock, with their hand-out deadline
        self._stock: dict[int, deque[tuple[str, float]]] = {}
        self._held: dict[int, _Held] = {}
        #: service id → (pool id, address) of its last address, as far as this instance knows
        self._previous: dict[int, tuple[int, str]] = {}
        #: stock addresses handed out and not yet recorded: (address, service id)
        self._handed: list[tuple[str, int]] = []
        self._renewed_at = time.monotonic()
        self._exhausted: dict[int, float] = {}
        self._refill_lock = asyncio.Lock()
        self.log = log.get("lastmile.radiusd.leases")
        self._outage = log.Outage(self.log, "address stock not kept")
        self._count = {k: metrics.LEASES.labels(k) for k in ("held", "stock", "database", "unrecorded")}

    # -- the hot path (no await) ---------------------------------------------------------------

    def take(self, pool_id: int, service_id: int, single_session: bool, sticky: bool = True) -> str | None:
        """An address for this login from memory, or None: ask :meth:`lease` (the database).
        ``sticky=False``: from the stock even if the service may get its previous address back
        from the database (when the database cannot be asked)."""
        now = time.monotonic()
        if single_session:
            held = self._held.get(service_id)
            if held is not None and held.pool_id == pool_id and held.deadline > now:
                self._count["held"].inc()
                return held.address
        previous = self._previous.get(service_id)
        if sticky and previous is not None and previous[0] == pool_id:
            return None  # it may get its previous address back: the database knows
        stock = self._stock.get(pool_id)
        if stock is None:
            self._stock[pool_id] = deque()
            self._keep.set()
            return None
        while stock:
            address, deadline = stock.popleft()
            if deadline > now:
                break
        else:
            self._keep.set()
            return None
        self._handed.append((address, service_id))
        self._previous[service_id] = (pool_id, address)
        if single_session:
            self._held[service_id] = _Held(pool_id, address, deadline)
        self._count["stock"].inc()
        self._keep.set()  # record the hand-out; the keeper also refills a stock below half
        return address

    def forget(self, service_id: int) -> None:
        """A session of the service opened or closed: what this instance held for it is stale."""
        self._held.pop(service_id, None)

    async def from_stock(self, pool_id: int, service_id: int, single_session: bool) -> str | None:
        """After the database found no free address: one from the stock (filled first, if it
        is low: the free addresses may just have gone into it), or None: the pool is full."""
        self._previous.pop(service_id, None)
        self._stock.setdefault(pool_id, deque())
        async with self._refill_lock:
            await self._refill(pool_id)
        return self.take(pool_id, service_id, single_session)

    # -- the database path ---------------------------------------------------------------------

    async def lease(self, pool_id: int, service_id: int, single_session: bool, timeout: float) -> str | None:
        """An address reserved for this login, or None if the pool is full; raises if the
        database cannot be reached, TimeoutError after ``timeout`` seconds (the login is then
        given up here: a batch still waiting for the database leaves it out, or ignores what
        it got for it). A ``single_session`` service gets back an address still reserved for
        its previous, unstarted login."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._queue.append(((pool_id, service_id, single_session), future))
        self._wake.set()
        address = await asyncio.wait_for(future, timeout)  # a plain future: cancelled at once
        self._count["database"].inc()
        return address

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                wants, self._queue = self._queue[: self.batch], self._queue[self.batch:]
                wants = [w for w in wants if not w[1].done()]  # given up while waiting for their turn
                if not wants:
                    continue
                sent = time.monotonic()
                try:
                    async with self.pool.acquire() as conn:
                        addresses = await store.lease(conn, [w for w, _ in wants], self.hold_s)
                except Exception as e:  # the waiters decide what a failure means
                    for _, future in wants:
                        if not future.done():
                            future.set_exception(e)
                    continue
                deadline = sent + self.hold_s - self.reserve_s
                for ((pool_id, service_id, single), future), address in zip(wants, addresses, strict=True):
                    if address is not None and not future.done():
                        self._previous[service_id] = (pool_id, address)
                        if single:
                            self._held[service_id] = _Held(pool_id, address, deadline)
                    if not future.done():
                        future.set_result(address)

    # -- the stock, in the background ----------------------------------------------------------

    async def load(self) -> None:
        """At start: every service's last address, for stickiness."""
        async with self.pool.acquire() as conn:
            self._previous = await store.previous_addresses(conn)

    @property
    def previous(self) -> dict[int, tuple[int, str]]:
        """service id → (pool id, address) of its last address as far as this instance knows (a
        copy, for the cache snapshot); set it at a start without the database."""
        return dict(self._previous)

    @previous.setter
    def previous(self, previous: dict[int, tuple[int, str]]) -> None:
        self._previous = dict(previous)

    async def keep(self, interval: float = 1.0) -> None:
        """Record hand-outs, refill and renew the stock; retries while the database is away."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._keep.wait(), interval)
            self._keep.clear()
            try:
                await self.keep_once()
            except Exception as e:  # the database is away: hand-outs stay queued, the stock runs down
                self._outage.failed(e, unrecorded=len(self._handed))
                await asyncio.sleep(interval)
            else:
                self._outage.ok()

    async def keep_once(self) -> None:
        await self._record()
        now = time.monotonic()
        if now - self._renewed_at > self.reserve_s / 4:
            await self._renew()
        for pool_id in list(self._stock):
            if self._exhausted.get(pool_id, 0.0) > time.monotonic():
                continue
            async with self._refill_lock:
                if not await self._refill(pool_id):
                    self._exhausted[pool_id] = time.monotonic() + 1.0  # ask again in a second

    async def _refill(self, pool_id: int) -> bool:
        """Top the pool's stock up if it is below half; False if the pool had nothing for it."""
        stock = self._stock[pool_id]
        if len(stock) >= self.stock_size // 2:
            return True
        sent = time.monotonic()
        async with self.pool.acquire() as conn:
            got = await store.stock_take(conn, pool_id, self.holder, self.stock_size - len(stock), self.hold_s)
        deadline = sent + self.hold_s - self.reserve_s
        stock.extend((a, deadline) for a in got)
        return bool(got)

    async def _record(self) -> None:
        while self._handed:
            handed, self._handed = self._handed[: self.batch], self._handed[self.batch:]
            sent = time.monotonic()
            try:
                async with self.pool.acquire() as conn:
                    recorded = await store.stock_handed(conn, self.holder, handed, self.hold_s, self.lease_ttl)
            except BaseException:
                self._handed = handed + self._handed
                raise
            deadline = sent + self.hold_s - self.reserve_s
            missing = len(handed) - len(recorded)
            if missing:  # only if the stock ran out of its time first (the database was away)
                self._count["unrecorded"].inc(missing)
                self.log.warning("stock addresses handed out after their time", count=missing)
            for address, service_id in handed:
                held = self._held.get(service_id)
                if held is not None and held.address == address and address in recorded:
                    held.deadline = deadline

    async def _renew(self) -> None:
        sent = time.monotonic()
        async with self.pool.acquire() as conn:
            kept = set(await store.stock_renew(conn, self.holder, self.hold_s))
        deadline = sent + self.hold_s - self.reserve_s
        for pool_id, stock in self._stock.items():
            self._stock[pool_id] = deque((a, deadline) for a, _ in stock if a in kept)
        self._renewed_at = sent

    async def close(self, timeout: float) -> None:
        """On shutdown: record what was handed out and give the rest of the stock back, within
        ``timeout`` seconds (else the stock expires on its own, and hand-outs not recorded yet
        are bound by their sessions' Accounting-Start or freed by expiry)."""
        try:
            await db.bounded(self._release(), timeout)
        except Exception as e:
            self.log.warning("address stock not released", error=str(e) or type(e).__name__)
        self._stock.clear()

    async def _release(self) -> None:
        await self._record()
        async with self.pool.acquire() as conn:
            await store.stock_release(conn, self.holder)

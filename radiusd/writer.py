"""Accounting writes: grouped commits, acknowledgements after the commit, a spool for outages.

``submit()`` queues a record with the callback that sends its Accounting-Response. One task
takes everything queued (up to ``batch`` records), writes it in one transaction, and only after
COMMIT calls the callbacks: while one transaction is in flight the next batch gathers, so many
requests share an fsync and throughput follows the load (group commit, no fixed delay).

When PostgreSQL cannot be reached, or a commit does not return within ``deadline`` seconds and
the server does not answer a ``SELECT 1`` either (a hung server answers nothing, and a NAS gives
up after a few retransmissions), the batch goes to the spool (fsync'ed) and is acknowledged from
there. A commit that is late while the server answers is slow, not stuck (an Accounting-On that
closes a BRAS's 100,000 sessions takes seconds): it is waited for, up to ``SLOW_COMMIT_S``
(the NAS retransmits meanwhile, and the transport drops the duplicates), and only then spooled.
While the spool holds anything, new batches are appended behind it so the order is kept, and a
replay task feeds it to the database as soon as it answers again. A commit that was too late
is left to finish on its own: if it does, the replay writes the same records again, and the
idempotent upserts make that a no-op.
If even the spool cannot be written (a full disk) nothing is acknowledged: the NAS keeps the
records and retransmits. Upserts are idempotent, so a batch whose COMMIT outcome was lost with
the connection is safely written again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from daemons import channels, db, log
from daemons.db import DB_DOWN
from radiusd import acct, metrics, store
from radiusd.acct import NasEvent, SessionRecord
from radiusd.codec import AcctStatus
from radiusd.spool import Entry, Spool

SLOW_COMMIT_S = 10.0
"""How long a commit may run while the database still answers before its batch is spooled
anyway (a lock held elsewhere must not hold every NAS's accounting for longer)."""
LATE_WAIT_S = 10.0
"""How long a replay waits for commits that were too late to finish first, so the two do not
fight over the same rows; past that it goes ahead (the upserts agree either way)."""


@dataclass(slots=True)
class Item:
    """A record waiting for its commit, and what its acknowledgement needs (``waiter``: opaque
    here; the server keeps the request it answers there)."""

    entry: Entry
    waiter: Any


def _nobody(_items: list[Item]) -> None:
    pass


class AccountingWriter:
    """``on_saved(items)`` runs once per batch after the commit (or the spool's fsync): the
    Accounting-Responses go out there; ``on_unsaved(items)`` when nothing could be saved."""

    def __init__(self, pool: asyncpg.Pool, spool: Spool, *, batch: int, lease_ttl: int, deadline: float = 1.0,
                 origin: str = "",
                 on_changes: Callable[[list[store.SessionChange], list[store.NasRestart]], None] = (
                     lambda _changes, _restarts: None),
                 on_saved: Callable[[list[Item]], None] = _nobody,
                 on_unsaved: Callable[[list[Item]], None] = _nobody) -> None:
        self.pool = pool
        self.on_saved = on_saved
        self.on_unsaved = on_unsaved
        self.origin = origin
        self.spool = spool
        self.batch = batch
        self.lease_ttl = lease_ttl
        self.deadline = deadline
        #: Commits that did not return within the deadline and go on in the background.
        self._late: set[asyncio.Future[None]] = set()
        self.on_changes = on_changes
        self.log = log.get("lastmile.radiusd.acct")
        self._queue: list[Item] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._spool_lock = asyncio.Lock()
        self._replay_wake = asyncio.Event()
        metrics.SPOOL_DEPTH.set(spool.depth)

    def submit(self, item: Item) -> None:
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                items, self._queue = self._queue[: self.batch], self._queue[self.batch:]
                await self._handle(items)
            self._idle.set()

    async def drain(self) -> None:
        """Wait until everything submitted is committed or spooled (and acknowledged)."""
        await self._idle.wait()

    async def _handle(self, items: list[Item]) -> None:
        started = time.perf_counter()
        entries = [i.entry for i in items]
        try:
            if self.spool.depth:
                await self._to_spool(entries)
            else:
                try:
                    await self._commit_in_time(entries)
                except db.Late as late:
                    self._late.add(late.task)
                    late.task.add_done_callback(self._late_done)
                    self.log.warning("commit did not return in time: spooling accounting", waited_s=late.timeout,
                                     records=len(entries))
                    await self._to_spool(entries)
                except DB_DOWN as e:
                    self.log.warning("database unreachable: spooling accounting", error=str(e) or type(e).__name__)
                    await self._to_spool(entries)
        except OSError as e:
            metrics.ACCT_UNRECORDED.inc(len(items))
            self.log.error("accounting not recorded: the spool cannot be written", error=str(e),
                           records=len(items))
            self.on_unsaved(items)
            return
        metrics.ACCT_BATCH.observe(len(items))
        metrics.ACCT_COMMIT_SECONDS.observe(time.perf_counter() - started)
        self.on_saved(items)

    async def _commit_in_time(self, entries: list[Entry]) -> None:
        """Commit, or raise :class:`db.Late` (the commit goes on): when ``deadline`` passes and the
        database does not answer a probe within it (hung), or when ``SLOW_COMMIT_S`` passes
        although it answers (slow)."""
        started = time.monotonic()
        task = asyncio.ensure_future(self.commit(entries))
        half = self.deadline / 2
        slow = False
        while True:
            done, _ = await asyncio.wait({task}, timeout=half)
            if done:
                task.result()
                return
            if not await db.answers(self.pool, half):
                break
            if not slow:
                slow = True
                metrics.SLOW_COMMITS.inc()
                self.log.info("commit is slow but the database answers: waiting", records=len(entries))
            if time.monotonic() - started >= SLOW_COMMIT_S:
                break
        metrics.DB_DEADLINE.labels("commit").inc()
        raise db.Late(task, round(time.monotonic() - started, 1))

    async def _to_spool(self, entries: list[Entry]) -> None:
        async with self._spool_lock:
            await asyncio.to_thread(self.spool.append, entries)
        metrics.SPOOLED.inc(len(entries))
        metrics.SPOOL_DEPTH.set(self.spool.depth)
        self._replay_wake.set()

    async def commit(self, entries: list[Entry]) -> None:
        """Write entries in order in one transaction; session changes are announced after COMMIT."""
        changes: list[store.SessionChange] = []
        restarts: list[store.NasRestart] = []
        async with self.pool.acquire() as conn, conn.transaction():
            run: list[SessionRecord] = []
            for entry in entries:
                if isinstance(entry, SessionRecord):
                    run.append(entry)
                    continue
                changes += await self._write_run(conn, run)
                run = []
                closed = await store.close_nas_sessions(conn, entry.nas_id, entry.event_time, _nas_cause(entry))
                changes += closed
                restarts.append(store.NasRestart(entry.nas_id, entry.status, entry.event_time, len(closed)))
            changes += await self._write_run(conn, run)
            await notify_changes(conn, changes, self.origin)
        if changes or restarts:
            self.on_changes(changes, restarts)

    async def _write_run(self, conn: Any, run: list[SessionRecord]) -> list[store.SessionChange]:
        if not run:
            return []
        return await store.write_sessions(conn, acct.merge_batch(run), self.lease_ttl)

    def _late_done(self, task: asyncio.Future[None]) -> None:
        self._late.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is None:
            self.log.info("a late commit went through; the spool replays its records again (a no-op)")
        else:
            self.log.info("a late commit failed; its records are in the spool",
                          error=str(error) or type(error).__name__)

    async def replay(self) -> None:
        """Feed the spool to the database whenever it holds anything and the database answers."""
        while True:
            if not self.spool.depth:
                self._replay_wake.clear()
                await self._replay_wake.wait()
            if self._late:  # let them finish first: the same rows, each waiting for the other's locks
                await asyncio.wait(set(self._late), timeout=LATE_WAIT_S)
            try:
                async with self._spool_lock:
                    entries, offset = await asyncio.to_thread(self.spool.read, self.batch * 4)
                if entries:
                    await self.commit(entries)
                    async with self._spool_lock:
                        await asyncio.to_thread(self.spool.consume, offset, len(entries))
                    metrics.REPLAYED.inc(len(entries))
                    metrics.SPOOL_DEPTH.set(self.spool.depth)
                    if not self.spool.depth:
                        self.log.info("spool replayed: accounting goes to the database again")
            except (*DB_DOWN, asyncpg.TransactionRollbackError):  # away, or a deadlock with a late commit
                await asyncio.sleep(1.0)


def _nas_cause(event: NasEvent) -> str:
    return "NAS-Reboot" if event.status == AcctStatus.ACCOUNTING_ON else "NAS-Request"


async def notify_changes(conn: Any, changes: list[store.SessionChange], origin: str = "") -> None:
    """Tell every radiusd (Simultaneous-Use) and flowcollector (address → service) which sessions
    opened or closed (``channels.SESSIONS``, sent with the commit); ``origin`` lets this instance
    skip its own (``channels.own_sessions``)."""
    notices = [channels.SessionNotice(c.unique_id, c.service_id, c.framed_ip, c.started_at.timestamp(),
                                      c.stopped_at.timestamp() if c.stopped_at else None)
               for c in changes if c.opened or c.closed]
    await store.notify(conn, channels.SESSIONS, list(channels.session_payloads(origin, notices)))

"""The ACS's batched writes: every Inform's device upsert (group commit), and the access log.

:class:`InformWriter` is the hot path: each Inform awaits the commit of the batch that holds
its row, and a batch is one statement (acs/store.py ``upsert_informs``) in one transaction.
A batch leaves when it holds ``max_batch`` rows or its first row has waited ``max_wait``
seconds, and at most ``concurrency`` batches are in flight: while they are, the next one
gathers, so under load many Informs share a commit and its fsync, and an idle ACS adds at most
``max_wait`` to an Inform. Rows of one device twice in a batch go to successive statements of
the same transaction (a statement cannot upsert a row twice). A batch the database refuses for
its content (not for being away) is written again row by row, so only the bad row fails.

:class:`SessionLog` never makes a session wait: lines are buffered and COPYed into
acs_sessions every ``max_wait`` seconds (or as soon as ``batch`` are waiting). While the
database is away they stay buffered, up to ``limit``; past that each new line is dropped and
counted (``dropped``), as the design's rule for bad input says: a counted drop, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import asyncpg

from acs import store
from acs.store import InformResult, InformRow, SessionLine
from daemons import log
from daemons.db import DB_DOWN

INFORM_LOG = log.get("lastmile.acs.store")


class InformWriter:
    """``await inform(row)``: the device after its Inform, once committed. ``batches`` and
    ``rows`` count what was written (the mean batch size is their ratio)."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 500, max_wait: float = 0.002,
                 concurrency: int = 2) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.batches = 0
        self.rows = 0
        self._queue: list[tuple[InformRow, asyncio.Future[InformResult]]] = []
        self._first_at = 0.0
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    async def inform(self, row: InformRow) -> InformResult:
        if self._closed:
            raise RuntimeError("the inform writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InformResult] = loop.create_future()
        if not self._queue:
            self._first_at = loop.time()
            self._wake.set()
        self._queue.append((row, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="acs-inform-writer")
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                delay = self._first_at + self.max_wait - loop.time()
                if delay > 0 and len(self._queue) < self.max_batch:
                    await asyncio.sleep(delay)
                await self._slots.acquire()
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                self._first_at = loop.time() - self.max_wait  # what is left has waited: it goes next
                task = asyncio.create_task(self._send(batch))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _send(self, batch: list[tuple[InformRow, asyncio.Future[InformResult]]]) -> None:
        try:
            await self._commit(batch)
        finally:
            self._slots.release()

    async def _commit(self, batch: list[tuple[InformRow, asyncio.Future[InformResult]]]) -> None:
        try:
            results = await self.write([row for row, _ in batch])
        except Exception as e:  # the database is away, or refused a row: the Informs fail
            if len(batch) > 1 and isinstance(e, asyncpg.PostgresError) and not isinstance(e, DB_DOWN):
                INFORM_LOG.warning("a batch of Informs was refused: writing its rows one by one", error=str(e),
                                   rows=len(batch))
                for item in batch:
                    await self._commit([item])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def write(self, rows: Sequence[InformRow]) -> list[InformResult]:
        """Upsert ``rows`` in one transaction: the results in their order. Rows of distinct
        devices (the usual batch) are one statement, which is its own transaction: no BEGIN and
        COMMIT round trips around it."""
        if len({row.cwmp_id for row in rows}) == len(rows):
            async with self.pool.acquire() as conn:
                written = await store.upsert_informs(conn, rows)
        else:
            written = await self._rounds(rows)
        self.batches += 1
        self.rows += len(rows)
        return written

    async def _rounds(self, rows: Sequence[InformRow]) -> list[InformResult]:
        """A batch with a device twice: one statement per occurrence, in one transaction."""
        rounds: list[list[int]] = []
        seen: dict[str, int] = {}
        for i, row in enumerate(rows):
            k = seen.get(row.cwmp_id, 0)
            seen[row.cwmp_id] = k + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(i)
        results: list[InformResult | None] = [None] * len(rows)
        async with self.pool.acquire() as conn, conn.transaction():
            for indexes in rounds:
                for i, result in zip(indexes, await store.upsert_informs(conn, [rows[i] for i in indexes]),
                                     strict=True):
                    results[i] = result
        return [r for r in results if r is not None]

    async def close(self) -> None:
        """Write what is queued, wait for the batches in flight, and stop."""
        self._closed = True
        while self._queue or self._inflight:
            self._wake.set()
            await asyncio.sleep(self.max_wait or 0.001)
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None


class SessionLog:
    """``add(line)``: a line of the access log, written within ``max_wait`` seconds."""

    def __init__(self, pool: asyncpg.Pool, *, max_wait: float = 0.5, batch: int = 5_000,
                 limit: int = 50_000) -> None:
        self.pool = pool
        self.max_wait = max_wait
        self.batch = batch
        self.limit = limit
        self.written = 0
        self.dropped = 0
        self._lines: list[SessionLine] = []
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._outage = log.Outage(log.get("lastmile.acs.sessions"), "access log not written; buffering")

    def add(self, line: SessionLine) -> None:
        if len(self._lines) >= self.limit:
            self.dropped += 1
            return
        self._lines.append(line)
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="acs-session-log")
        if len(self._lines) >= self.batch:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.max_wait)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> bool:
        """Write what is buffered; False if the database is away (the lines stay buffered)."""
        while self._lines:
            lines = self._lines[:self.batch]
            try:
                async with self.pool.acquire() as conn:
                    await store.copy_sessions(conn, lines)
            except DB_DOWN as e:
                self._outage.failed(e, lines=len(self._lines))
                return False
            except asyncpg.PostgresError as e:  # a line the table refuses: the batch is lost, counted
                log.get("lastmile.acs.sessions").error("access log lines refused", error=str(e), lines=len(lines))
                self.dropped += len(lines)
            else:
                self._outage.ok()
                self.written += len(lines)
            del self._lines[:len(lines)]
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Stop, and write what is buffered (within ``timeout``; what cannot be is dropped, counted)."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout)
        if self._lines:
            log.get("lastmile.acs.sessions").warning("access log lines lost at close", lines=len(self._lines),
                                                     seconds=round(time.monotonic() - started, 1))
            self.dropped += len(self._lines)
            self._lines.clear()

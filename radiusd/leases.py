"""Addresses from lastmile pools for Access-Requests, leased in batches.

A login that needs a pool address waits for ``lease()``; all the logins waiting at one moment
share one database call and one commit (``store.lease``), so a reconnect storm after a BRAS
reboot costs a commit per batch, not per subscriber.
"""

from __future__ import annotations

import asyncio

import asyncpg

from radiusd import store


class LeaseBatcher:
    def __init__(self, pool: asyncpg.Pool, reserve_s: int, batch: int = 256) -> None:
        self.pool = pool
        self.reserve_s = reserve_s
        self.batch = batch
        self._queue: list[tuple[tuple[int, int, bool], asyncio.Future[str | None]]] = []
        self._wake = asyncio.Event()

    async def lease(self, pool_id: int, service_id: int, single_session: bool) -> str | None:
        """An address reserved for this login, or None if the pool is full; raises if the
        database cannot be reached. A ``single_session`` service gets back an address still
        reserved for its previous, unstarted login."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._queue.append(((pool_id, service_id, single_session), future))
        self._wake.set()
        return await future

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                wants, self._queue = self._queue[: self.batch], self._queue[self.batch:]
                try:
                    async with self.pool.acquire() as conn:
                        addresses = await store.lease(conn, [w for w, _ in wants], self.reserve_s)
                except Exception as e:  # the waiters decide what a failure means
                    for _, future in wants:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for (_, future), address in zip(wants, addresses, strict=True):
                    if not future.done():
                        future.set_result(address)

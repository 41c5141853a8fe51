"""When each router is reconciled: changes, a period, and retries with backoff.

``mark(ids)`` (``None``: every router) makes routers dirty for a full run; ``mark_services``
for a targeted run over the objects of some services only (a block or an unblock: a handful of
keyed reads, not a read of everything), which a full run of that router follows within
``FOLLOW_UP_S``, coalesced, for what a targeted run cannot see (an object a service had under an
old key). One task starts a reconcile for each dirty router, at most ``concurrency`` at once and
one at a time per router. A router marked while its run is under way runs again right after it,
so nothing marked is missed and a burst of changes costs one more run, not one each. A router
that cannot be reached is tried again after 1, 2, 4 ... s (up to ``backoff_max``, with jitter),
whatever marks it meanwhile; its first run that gets through is a full one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable

from daemons import log
from daemons.provisiond import store
from daemons.provisiond.reconcile import Outcome, Reconciler

LoadRouters = Callable[[set[int] | None], Awaitable[list[store.Router]]]
BUSY_RETRY_S = 1.0
FOLLOW_UP_S = 30.0  # a full run follows targeted ones this soon
MAX_TARGETED = 200  # more changed services than this on one router: a full run instead


class Scheduler:
    def __init__(self, reconciler: Reconciler, load: LoadRouters, concurrency: int, backoff_max: float) -> None:
        self.reconciler = reconciler
        self.load = load
        self.backoff_max = backoff_max
        self.semaphore = asyncio.Semaphore(concurrency)
        self.dirty: set[int] = set()
        self.targeted: dict[int, set[int]] = {}  # router id -> services, for a targeted run
        self.everything = False
        self.running: dict[int, asyncio.Task[None]] = {}
        self.again: set[int] = set()
        self.again_targeted: dict[int, set[int]] = {}
        self.not_before: dict[int, float] = {}  # router id -> monotonic time of its next attempt
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()  # set whenever nothing is dirty or running (tests, `sync`)
        self.log = log.get("lastmile.provisiond")
        self.outcomes: list[Outcome] = []  # the last few, for tests and the log
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._follow_ups: dict[int, asyncio.TimerHandle] = {}

    def mark(self, ids: Iterable[int] | None) -> None:
        if ids is None:
            self.everything = True
        else:
            self.dirty.update(ids)
        self.idle.clear()
        self.wake.set()

    def mark_services(self, by_router: dict[int, set[int]]) -> None:
        for router_id, services in by_router.items():
            self.targeted.setdefault(router_id, set()).update(services)
        self.idle.clear()
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            every, self.everything = self.everything, False
            full, self.dirty = self.dirty, set()
            targeted, self.targeted = self.targeted, {}
            routers = await self.load(None if every else full | set(targeted))
            now = time.monotonic()
            for router in routers:
                if not router.enabled:
                    await self.reconciler.forget(router.id)
                    continue
                services = None if every or router.id in full else targeted.get(router.id)
                if services is not None and len(services) > MAX_TARGETED:
                    services = None
                if router.id in self.running:
                    if services is None:
                        self.again.add(router.id)
                    else:
                        self.again_targeted.setdefault(router.id, set()).update(services)
                elif self.not_before.get(router.id, 0.0) > now:
                    continue  # its retry timer marks it
                else:
                    self.running[router.id] = asyncio.create_task(self._one(router, services),
                                                                  name=f"router-{router.name}")
            self._check_idle()

    async def _one(self, router: store.Router, services: set[int] | None) -> None:
        try:
            async with self.semaphore:
                outcome = await self.reconciler.run(router, services=services)
            self.outcomes = [*self.outcomes[-99:], outcome]
            state = self.reconciler.states.get(router.id)
            if outcome.result == "busy":
                self._retry(router.id, BUSY_RETRY_S)
            elif not outcome.reached and state is not None:
                delay = min(self.backoff_max, 2.0 ** (state.failures - 1)) * random.uniform(0.8, 1.2)
                self._retry(router.id, delay)
            else:
                self.not_before.pop(router.id, None)
                if outcome.targeted:
                    self._follow_up(router.id)
                elif (pending := self._follow_ups.pop(router.id, None)) is not None:
                    pending.cancel()  # this full run is the follow-up
        finally:
            del self.running[router.id]
            if router.id in self.again:
                self.again.discard(router.id)
                self.again_targeted.pop(router.id, None)
                self.mark([router.id])
            elif router.id in self.again_targeted:
                self.mark_services({router.id: self.again_targeted.pop(router.id)})
            self._check_idle()

    def _follow_up(self, router_id: int) -> None:
        if router_id in self._follow_ups:
            return

        def due() -> None:
            self._follow_ups.pop(router_id, None)
            self.mark([router_id])

        self._follow_ups[router_id] = asyncio.get_running_loop().call_later(FOLLOW_UP_S, due)

    def _retry(self, router_id: int, delay: float) -> None:
        self.not_before[router_id] = time.monotonic() + delay
        if (old := self._timers.pop(router_id, None)) is not None:
            old.cancel()

        def due() -> None:
            self._timers.pop(router_id, None)
            self.not_before.pop(router_id, None)
            self.mark([router_id])

        self._timers[router_id] = asyncio.get_running_loop().call_later(delay, due)

    def _check_idle(self) -> None:
        if not self.running and not self.dirty and not self.targeted and not self.everything:
            self.idle.set()

    async def stop(self) -> None:
        for timer in [*self._timers.values(), *self._follow_ups.values()]:
            timer.cancel()
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

"""How every daemon process runs: uvloop, signals, readiness, and an ordered drain.

A daemon is one coroutine ``main(rt)`` that opens what it needs and registers, for each
resource, how to close it (``rt.on_drain``) or a background task (``rt.spawn``). When it
returns, the daemon is ready: systemd is told ``READY=1`` and ``lastmile_ready`` becomes 1.
On SIGTERM or SIGINT the runtime tells systemd ``STOPPING=1`` and runs the drain steps in the
reverse order of registration (last opened, first closed, like an ``ExitStack``), all within
``drain_timeout`` seconds. So a daemon that opened "pool, then listener" stops taking
packets first, finishes what is in flight, and closes the pool last.

The steps share that one deadline. A step still running when it passes is abandoned (cancelled,
not waited for: cancelling a query on a hung PostgreSQL never completes), and the steps not
reached run only their ``abort``: an instant, synchronous close (terminate the pool's
connections, close a socket) given with ``on_drain``. So a drain never takes longer than
``drain_timeout``, whatever hangs.

A background task that dies with an exception stops the daemon with exit code 1, so that
systemd's ``Restart=on-failure`` restarts it rather than leaving a half-working process.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvloop

from daemons import http, log, metrics, sdnotify
from daemons.config import DaemonSettings, Settings

CANCEL_GRACE = 0.2
"""Seconds a cancelled background task gets to stop before the drain goes on without it."""


class StartError(Exception):
    """A daemon cannot start, for a reason its message says in full (logged without a traceback)."""


DrainStep = Callable[[], Awaitable[object]]
Abort = Callable[[], object]


class Runtime:
    """Handed to a daemon's ``main``: the stop signal, drain steps and supervised tasks."""

    def __init__(self, name: str, drain_timeout: float) -> None:
        self.name = name
        self.drain_timeout = drain_timeout
        self.stopping = asyncio.Event()
        self.failed = False
        self._steps: list[tuple[str, DrainStep, Abort | None]] = []
        self._abandoned: list[asyncio.Future[object]] = []
        #: Set when the drain ran out of time (a step timed out or was not reached).
        self.cut_off = False
        self.log = log.get("lastmile.runtime")

    def on_drain(self, name: str, step: DrainStep, abort: Abort | None = None) -> None:
        """Run ``step`` on shutdown; steps run last-registered first. ``abort`` runs instead
        when the drain's deadline passes before ``step`` is done (or reached)."""
        self._steps.append((name, step, abort))

    def spawn(self, name: str, coro: Coroutine[Any, Any, object], *, finite: bool = False) -> None:
        """Run ``coro`` until the drain reaches it; its crash stops the daemon, and so does its
        end unless it is ``finite`` (a task with a job to finish, not a loop)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_done if not finite else self._finite_done)

        async def cancel() -> None:
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_GRACE)
            if not task.done():  # stuck where a cancellation waits too (a query on a hung server)
                self._abandoned.append(task)
                self.cut_off = True
                self.log.warning("task left behind: it did not stop when cancelled", task=name)
            elif not task.cancelled() and (exc := task.exception()) is not None:
                self.log.error("task failed while stopping", task=name, exc_info=exc)

        self.on_drain(name, cancel, task.cancel)

    def every(self, name: str, interval: float, work: Callable[[], Awaitable[object]], *,
              first: float | None = None, tolerate: tuple[type[BaseException], ...] | None = None) -> None:
        """Run ``work`` every ``interval`` seconds (the first time after ``first``, default
        ``interval``), as a background task named ``name``. What ``tolerate`` names (by default
        the database's errors, ``db.DB_ERRORS``) is logged once when it starts, every minute
        while it lasts and when it ends (``log.Outage``), and the work is tried again at the next
        tick; anything else stops the daemon, as a crashed task does."""
        from daemons import db

        shrugged = db.DB_ERRORS if tolerate is None else tolerate
        outage = log.Outage(self.log.bind(task=name), f"{name} skipped")

        async def loop() -> None:
            await asyncio.sleep(interval if first is None else first)
            while True:
                try:
                    await work()
                except shrugged as e:
                    outage.failed(e)
                else:
                    outage.ok()
                await asyncio.sleep(interval)

        self.spawn(name, loop())

    def _task_done(self, task: asyncio.Task[object]) -> None:
        if task.cancelled() or self.stopping.is_set():
            return
        exc = task.exception()
        if exc is not None:
            self.log.error("task failed", task=task.get_name(), exc_info=exc)
        else:
            self.log.error("task ended unexpectedly", task=task.get_name())
        self.failed = True
        self.stop()

    def _finite_done(self, task: asyncio.Task[object]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self._task_done(task)

    def stop(self) -> None:
        self.stopping.set()

    async def drain(self) -> bool:
        """Run the drain steps in reverse order within one deadline; False if any failed, was
        cut off or was not reached."""
        deadline = time.monotonic() + self.drain_timeout
        clean = True
        while self._steps:
            name, step, abort = self._steps.pop()
            started = time.monotonic()
            if started >= deadline:
                clean = False
                self.cut_off = True
                self.log.error("drain step skipped: out of time", step=name, aborted=abort is not None)
                self._abort(name, abort)
                continue
            task: asyncio.Future[object] = asyncio.ensure_future(step())
            if isinstance(task, asyncio.Task):
                task.set_name(f"drain:{name}")
            done, _ = await asyncio.wait({task}, timeout=deadline - started)
            if not done:
                task.cancel()
                self._abandoned.append(task)  # its cancellation may never finish: not waited for
                self.log.error("drain step timed out", step=name, timeout_s=round(deadline - started, 2))
                self._abort(name, abort)
                clean = False
                self.cut_off = True
            elif (exc := task.exception()) is not None:
                self.log.error("drain step failed", step=name, exc_info=exc)
                clean = False
            else:
                self.log.info("drained", step=name, ms=round((time.monotonic() - started) * 1000, 1))
        return clean

    def _abort(self, name: str, abort: Abort | None) -> None:
        if abort is None:
            return
        try:
            abort()
        except Exception:
            self.log.exception("drain abort failed", step=name)


Main = Callable[[Runtime], Awaitable[None]]


def run(name: str, main: Main, settings: Settings, daemon: DaemonSettings) -> int:
    """Run one daemon to completion under uvloop; returns the process exit code.

    When the drain ran out of time, the process exits at once, without the event loop's own
    shutdown: that cancels every task left and waits for each, and a task stuck on a hung
    PostgreSQL (a late commit, an abandoned step) would hold it forever."""
    log.setup(settings.log, name)
    rt = Runtime(name, daemon.drain_timeout)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        code = runner.run(_serve(rt, main, settings, daemon))
        if rt.cut_off:
            stuck = [t.get_name() for t in rt._abandoned if isinstance(t, asyncio.Task) and not t.done()]
            rt.log.warning("exiting without waiting for what is stuck", steps=stuck)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code


async def _serve(rt: Runtime, main: Main, settings: Settings, daemon: DaemonSettings) -> int:
    from daemons import __version__

    loop = asyncio.get_running_loop()
    name = rt.name
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, rt.stop)
    loop.set_exception_handler(_log_loop_exception)
    metrics.set_build_info(__version__)
    metrics.UP_SINCE.labels(name).set(time.time())
    rt.log.info("starting", version=__version__, settings=settings.source)
    try:
        if daemon.metrics_port:
            await http.serve(rt, metrics.app(), daemon.metrics_bind, daemon.metrics_port, name="metrics")
            rt.log.info(
                "metrics listening", url=f"http://{daemon.metrics_bind}:{daemon.metrics_port}/metrics"
            )
        await main(rt)
    except Exception as e:
        rt.log.error("start failed", error=str(e) or type(e).__name__, exc_info=not isinstance(e, OSError | StartError))
        await rt.drain()
        return 1
    if not rt.stopping.is_set():
        # What start-up loaded (caches of 100,000 subscribers) lives as long as the process:
        # keep the cyclic GC from walking it again and again (latency spikes of tens of ms).
        gc.collect()
        gc.freeze()
        metrics.READY.labels(name).set(1)
        sdnotify.notify("READY=1\nSTATUS=serving")
        rt.log.info("ready")
        interval = sdnotify.watchdog_interval()
        if interval:
            rt.spawn("watchdog", _watchdog(interval))
        await rt.stopping.wait()
    metrics.READY.labels(name).set(0)
    sdnotify.notify("STOPPING=1\nSTATUS=draining")
    rt.log.info("draining", timeout_s=rt.drain_timeout)
    clean = await rt.drain()
    rt.log.info("stopped", clean=clean)
    return 1 if rt.failed or not clean else 0


async def _watchdog(interval: float) -> None:
    while True:
        sdnotify.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def _log_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    log.get("lastmile.runtime").error(
        "unhandled in event loop", message=context.get("message"), exc_info=context.get("exception")
    )

"""The worker: wiring only. ``lastmile worker`` runs ``main(settings)``.

pgqueuer does the queue: jobs are rows of ``pgqueuer`` (they survive restarts), picked with
``FOR UPDATE SKIP LOCKED`` and woken by NOTIFY, kept alive by a heartbeat (a job whose worker
died is picked again after ``heartbeat_timeout``), limited per entrypoint across every worker
(``concurrency_limit``: one billing run at a time). Retries are pgqueuer's
``DatabaseRetryEntrypointExecutor``: a failed job is re-queued in its own row, attempts counted,
``execute_after`` pushed out exponentially, each failure's traceback in ``pgqueuer_log``; with no
retry left it is held (``on_failure="hold"``: status ``failed``) for the admin's "Retry now".
Schedules are pgqueuer's too (``pgqueuer_schedules``, taken by one worker at a time); a schedule
does not run the job itself but enqueues it, so a scheduled run gets the same retries, limits
and visibility as any other.

SIGTERM: no new job is taken; the jobs running finish (within ``drain_timeout``; one still
running then is left as it is, picked, and runs again after ``heartbeat_timeout``), their
outcomes are written, then the pool closes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from datetime import timedelta

import asyncpg
from pgqueuer import DatabaseRetryEntrypointExecutor, PgQueuer
from pgqueuer.core.executors import EntrypointExecutorParameters
from pgqueuer.models import Job as QueuedJob
from pgqueuer.models import Schedule

from admin.worker import jobs, metrics, queue, store
from admin.worker.settings import WorkerSettings, modules
from daemons import db, log, runtime
from daemons.config import Settings
from daemons.metrics import REGISTRY

QUEUE_POOL = 5
"""Connections of pgqueuer's own pool: its listener, picking, heartbeats, outcomes, schedules."""
DEQUEUE_TIMEOUT = timedelta(seconds=30)
"""The longest a worker waits for a notification before it looks at the queue anyway."""
DEPTH_INTERVAL = 15.0


class JobTimeout(Exception):
    """A job ran past its declared timeout (it is cancelled, and counts as a failure)."""


class _Duplicates(logging.Filter):
    """pgqueuer's own lines for a job's failure and retry: the worker writes them itself, structured."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Exception while processing entrypoint/job-id",
                                               "Retry requested for entrypoint/job-id"))


def main(settings: Settings) -> int:
    return runtime.run("worker", lambda rt: serve(rt, settings), settings, settings.of(WorkerSettings))


async def serve(rt: runtime.Runtime, settings: Settings) -> None:
    ws = settings.of(WorkerSettings)
    logger = log.get("lastmile.worker")
    try:
        declared = jobs.discover(modules(ws.modules))
    except jobs.JobError as e:
        raise runtime.StartError(str(e)) from None
    pool = await db.create_pool(settings.database, max_size=max(settings.database.pool_max, ws.concurrency + 2))
    rt.on_drain("database", pool.close, pool.terminate)
    # pgqueuer's pool: plain connections, without lastmile's JSON codecs (it sends JSON as text).
    queue_pool = await asyncpg.create_pool(db.url_of(settings.database), min_size=1, max_size=QUEUE_POOL,
                                           timeout=settings.database.connect_timeout)
    rt.on_drain("queue database", queue_pool.close, queue_pool.terminate)
    logging.getLogger("pgqueuer").addFilter(_Duplicates())

    pgq = PgQueuer.from_asyncpg_pool(queue_pool)
    for spec in declared.values():
        _register(pgq, spec, pool, settings, ws, rt.stopping)
    async with pool.acquire() as conn:
        for spec in declared.values():
            await store.forget_schedules(conn, spec.entrypoint, spec.schedule)
    await pgq.qm.verify_structure()

    depth = metrics.QueueDepth(list(declared))
    REGISTRY.register(depth)

    async def read_depth() -> None:
        async with pool.acquire() as conn:
            depth.jobs = await store.depth(conn)

    task = asyncio.get_running_loop().create_task(pgq.run(
        dequeue_timeout=DEQUEUE_TIMEOUT, batch_size=max(1, ws.concurrency // 2), max_concurrent_tasks=ws.concurrency,
        shutdown_on_listener_failure=True, heartbeat_timeout=timedelta(seconds=ws.heartbeat_timeout)), name="jobs")

    def ended(t: asyncio.Task[None]) -> None:
        error = None if t.cancelled() else t.exception()
        if rt.stopping.is_set():
            if error is not None:
                logger.error("job queue failed while draining", exc_info=error)
            return
        logger.error("job queue stopped", exc_info=error)
        rt.failed = True
        rt.stop()

    task.add_done_callback(ended)

    async def drain() -> None:
        pgq.shutdown.set()  # no new job; pgqueuer waits for the running ones and writes their outcomes
        await asyncio.wait({task})  # not cancelled if the drain runs out of time: left picked, run again

    rt.on_drain("jobs", drain)
    rt.every("queue-depth", DEPTH_INTERVAL, read_depth, first=0)
    logger.info("worker started", jobs=list(declared), concurrency=ws.concurrency,
                schedules={s.entrypoint: s.schedule for s in declared.values() if s.schedule})


def _register(pgq: PgQueuer, spec: jobs.Job, pool: asyncpg.Pool, settings: Settings, ws: WorkerSettings,
              stopping: asyncio.Event) -> None:
    def executor(params: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
        return DatabaseRetryEntrypointExecutor(
            parameters=params, max_attempts=spec.retries, initial_delay=timedelta(seconds=ws.retry_delay),
            max_delay=timedelta(seconds=ws.retry_delay_max))

    pgq.entrypoint(spec.entrypoint, concurrency_limit=spec.concurrency, accepts_context=False, on_failure="hold",
                   executor_factory=executor)(functools.partial(execute, spec, pool, settings, ws, stopping))
    if spec.schedule is not None:
        async def tick(_: Schedule) -> None:
            async with pool.acquire() as conn:
                await queue.enqueue(conn, spec.entrypoint, dedupe_key=queue.schedule_key(spec.entrypoint))

        pgq.schedule(spec.entrypoint, spec.schedule, accepts_context=False)(tick)


async def execute(spec: jobs.Job, pool: asyncpg.Pool, settings: Settings, ws: WorkerSettings,
                  stopping: asyncio.Event, job: QueuedJob) -> None:
    """One run of a job: its context, its timeout, its metrics and log lines. An exception goes on to
    pgqueuer's retry executor, which re-queues the job (or holds it as failed)."""
    attempt = job.attempts + 1
    logger = log.get("lastmile.worker").bind(job=spec.entrypoint, job_id=job.id, attempt=attempt)
    metrics.STARTED.labels(spec.entrypoint).inc()
    started = time.monotonic()
    try:
        ctx = jobs.Context(job.id, spec.entrypoint, queue.decode(job.payload), attempt, pool, settings, logger,
                           stopping)
        deadline = asyncio.timeout(spec.timeout)
        try:
            async with deadline:
                await spec.run(ctx)
        except TimeoutError:
            if deadline.expired():
                raise JobTimeout(f"{spec.entrypoint} ran past its timeout of {spec.timeout:g} s") from None
            raise
    except Exception as e:
        seconds = time.monotonic() - started
        metrics.SECONDS.labels(spec.entrypoint).observe(seconds)
        error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if job.attempts < spec.retries:
            metrics.RETRIED.labels(spec.entrypoint).inc()
            delay = min(ws.retry_delay * 2 ** job.attempts, ws.retry_delay_max)
            logger.warning("job failed: will retry", error=error, retry_in_s=round(delay, 1),
                           retries_left=spec.retries - job.attempts, ms=round(seconds * 1000, 1))
        else:
            metrics.FAILED.labels(spec.entrypoint).inc()
            logger.error("job failed: no retry left, held as failed", error=error, ms=round(seconds * 1000, 1),
                         exc_info=e)
        raise
    seconds = time.monotonic() - started
    metrics.SECONDS.labels(spec.entrypoint).observe(seconds)
    metrics.SUCCEEDED.labels(spec.entrypoint).inc()
    logger.info("job done", ms=round(seconds * 1000, 1))


if __name__ == "__main__":
    from daemons import config

    sys.exit(main(config.load()))

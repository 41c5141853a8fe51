"""The worker's own housekeeping jobs.

(Partitions are not among them: radiusd and flowcollector make them at start and hourly, and
``lastmile db init`` does; admin sessions and login attempts are expired by the admin itself.)
"""

from __future__ import annotations

from admin.worker import store
from admin.worker.jobs import Context, job
from admin.worker.settings import WorkerSettings


@job("maintenance.job-log", schedule="17 * * * *", retries=5, timeout=600)
async def job_log(ctx: Context) -> None:
    """Delete the job log's lines older than `[worker] job_log_days` (not those of jobs still queued,
    running or failed)."""
    days = ctx.settings.of(WorkerSettings).job_log_days
    async with ctx.pool.acquire() as conn:
        deleted = await store.prune_log(conn, days)
    if deleted:
        ctx.log.info("job log pruned", lines=deleted, days=days)

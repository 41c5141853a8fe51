"""The SQL of the Jobs area: pgqueuer's tables as the worker leaves them (schema.sql, section 9).

``pgqueuer`` holds the jobs not done: queued (waiting, a retry's backoff included), picked
(running) and failed (held after its last retry); a job that ends otherwise leaves it.
``pgqueuer_log`` has a line per step of every job (queued, picked, then successful, exception,
canceled or failed; a retry is a new queued line carrying the failure's traceback), and
``pgqueuer_schedules`` the schedules the workers declared. Enqueueing and re-queueing are the
worker's (admin/worker/queue.py)."""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection

FINISHED = ("successful", "exception", "failed", "canceled", "deleted")
"""The log's last line of a job's run."""

_JOB = """
SELECT j.id, j.entrypoint, j.status::text AS status, j.priority, j.attempts, j.created, j.updated, j.heartbeat,
       j.execute_after, j.dedupe_key, j.payload, j.queue_manager_id::text AS worker, e.traceback AS error,
       e.created AS error_at
FROM pgqueuer j
LEFT JOIN LATERAL (SELECT l.traceback, l.created FROM pgqueuer_log l
                   WHERE l.job_id = j.id AND l.traceback IS NOT NULL ORDER BY l.id DESC LIMIT 1) e ON true
"""


async def counts(conn: Connection) -> dict[str, int]:
    """Jobs in the queue by status (queued, picked, failed)."""
    rows = await conn.fetch("SELECT status::text AS status, count(*) AS n FROM pgqueuer GROUP BY 1")
    return {r["status"]: int(r["n"]) for r in rows}


async def jobs(conn: Connection, status: str | None, entrypoint: str, after_id: int | None, limit: int, *,
               newest_first: bool) -> list[asyncpg.Record]:
    """Jobs of the queue (of one status, one entrypoint), keyset on the id, each with its last error."""
    order, compare = ("DESC", "<") if newest_first else ("ASC", ">")
    return await conn.fetch(
        _JOB + "WHERE ($1::text IS NULL OR j.status = $1::pgqueuer_status) AND ($2 = '' OR j.entrypoint = $2) "
        f"AND ($3::bigint IS NULL OR j.id {compare} $3) ORDER BY j.id {order} LIMIT {int(limit)}",
        status, entrypoint, after_id)


async def job(conn: Connection, job_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_JOB + "WHERE j.id = $1", job_id)


async def lock_job(conn: Connection, job_id: int) -> asyncpg.Record | None:
    """The job, locked for the rest of the transaction (a worker cannot pick it meanwhile)."""
    return await conn.fetchrow("SELECT id, entrypoint, status::text AS status, attempts, dedupe_key FROM pgqueuer "
                               "WHERE id = $1 FOR UPDATE", job_id)


async def holder(conn: Connection, dedupe_key: str, job_id: int) -> int | None:
    """Another job queued or running under ``dedupe_key`` (it keeps a failed one from being queued again)."""
    found = await conn.fetchval("SELECT id FROM pgqueuer WHERE dedupe_key = $1 AND id <> $2 "
                                "AND status IN ('queued', 'picked')", dedupe_key, job_id)
    return None if found is None else int(found)


_LOG = """
SELECT l.id, l.created, l.job_id, l.entrypoint, l.status::text AS status, l.priority, l.traceback AS error,
       extract(epoch FROM l.created - p.created)::float8 AS seconds
FROM pgqueuer_log l
LEFT JOIN LATERAL (SELECT p.created FROM pgqueuer_log p WHERE p.job_id = l.job_id AND p.id < l.id
                   AND p.status = 'picked' ORDER BY p.id DESC LIMIT 1) p
       ON l.status NOT IN ('queued', 'picked') OR l.traceback IS NOT NULL
"""


async def log(conn: Connection, entrypoint: str, status: str | None, before_id: int | None,
              limit: int) -> list[asyncpg.Record]:
    """How runs ended, newest first (keyset on the id): the last line of each run (retries included:
    a queued line with the failure's traceback), with how long it ran (since it was picked)."""
    return await conn.fetch(
        _LOG + "WHERE (l.status = ANY($1::pgqueuer_status[]) OR (l.status = 'queued' AND l.traceback IS NOT NULL)) "
        "AND ($2 = '' OR l.entrypoint = $2) AND ($3::text IS NULL OR (CASE WHEN l.status = 'queued' THEN 'retried' "
        "ELSE l.status::text END) = $3) "
        f"AND ($4::bigint IS NULL OR l.id < $4) ORDER BY l.id DESC LIMIT {int(limit)}",
        list(FINISHED), entrypoint, status, before_id)


async def history(conn: Connection, job_id: int) -> list[asyncpg.Record]:
    """Every line of one job's log, oldest first."""
    return await conn.fetch(_LOG + "WHERE l.job_id = $1 ORDER BY l.id", job_id)


async def entrypoints(conn: Connection) -> list[str]:
    """The entrypoints the queue, the schedules and the recent log know (for the filters)."""
    rows = await conn.fetch(
        "SELECT entrypoint FROM pgqueuer UNION SELECT entrypoint FROM pgqueuer_schedules "
        "UNION SELECT entrypoint FROM (SELECT entrypoint FROM pgqueuer_log ORDER BY id DESC LIMIT 1000) r "
        "ORDER BY 1")
    return [r["entrypoint"] for r in rows]


_SCHEDULE = ("SELECT id, entrypoint, expression, next_run, last_run, status::text AS status, heartbeat "
             "FROM pgqueuer_schedules ")


async def schedules(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch(_SCHEDULE + "ORDER BY entrypoint, expression")


async def schedule(conn: Connection, schedule_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_SCHEDULE + "WHERE id = $1", schedule_id)

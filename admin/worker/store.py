"""The SQL over pgqueuer's tables (schema.sql, section 9) that lastmile runs itself: enqueueing and
re-queueing on a lastmile connection (with pgqueuer's own statements, from its query builder), the
queue's depth for the metrics, the job log's retention, the job a dedupe key names.

Why not pgqueuer's ``Queries`` here: it passes JSON parameters as text, and lastmile's connections
encode ``json``/``jsonb`` parameters themselves (daemons/db.py), which would store them twice
encoded. The worker gives pgqueuer a pool of plain connections instead (admin/worker/__main__.py).
"""

from __future__ import annotations

import datetime as dt

from pgqueuer.adapters.persistence.qb import QueryQueueBuilder

from admin.auth.store import Connection

_PGQ = QueryQueueBuilder()
"""pgqueuer's statements, for its default table names (those of schema.sql)."""

PRUNE_BATCH = 10_000
"""Log lines deleted per statement: a short lock and WAL burst each, however long the backlog."""


async def enqueue(conn: Connection, entrypoint: str, payload: bytes | None, priority: int,
                  delay: dt.timedelta | None, dedupe_key: str | None) -> int | None:
    """pgqueuer's enqueue (it logs the job as queued too); None when ``dedupe_key`` is taken by a job
    queued or running. The headers are NULL (pgqueuer's tracing headers are not used)."""
    rows = await conn.fetch(_PGQ.build_enqueue_query("skip"), [priority], [entrypoint], [payload],
                            [delay or dt.timedelta(0)], [dedupe_key], [None])
    return int(rows[0]["id"]) if rows else None


async def requeue(conn: Connection, job_id: int) -> bool:
    """pgqueuer's re-queue of a job held as failed (attempts from 0, due now, logged as queued);
    False when the job is not held as failed."""
    status = await conn.execute(_PGQ.build_requeue_jobs_query(), [job_id])
    return status != "INSERT 0 0"


async def depth(conn: Connection) -> list[tuple[str, str, int]]:
    """(entrypoint, status, jobs) of the queue: queued, picked (running) and failed (held)."""
    rows = await conn.fetch("SELECT entrypoint, status::text AS status, count(*) AS n FROM pgqueuer GROUP BY 1, 2")
    return [(r["entrypoint"], r["status"], int(r["n"])) for r in rows]


async def active_job(conn: Connection, dedupe_key: str) -> int | None:
    """The job queued or running under ``dedupe_key`` (at most one: pgqueuer's unique index)."""
    found = await conn.fetchval(
        "SELECT id FROM pgqueuer WHERE dedupe_key = $1 AND status IN ('queued', 'picked')", dedupe_key)
    return None if found is None else int(found)


async def prune_log(conn: Connection, days: int) -> int:
    """Delete the job log's lines older than ``days``, except those of jobs still in the queue
    (queued, running or held as failed: their history and error stay), and the per-second
    statistics of the same age; the lines deleted."""
    deleted = 0
    while True:
        status = await conn.execute(
            "DELETE FROM pgqueuer_log WHERE id IN (SELECT l.id FROM pgqueuer_log l "
            "WHERE l.created < now() - make_interval(days => $1) "
            "AND NOT EXISTS (SELECT 1 FROM pgqueuer j WHERE j.id = l.job_id) "
            f"LIMIT {PRUNE_BATCH})", days)
        n = int(status.split()[-1])
        deleted += n
        if n < PRUNE_BATCH:
            break
    await conn.execute("DELETE FROM pgqueuer_statistics WHERE created < now() - make_interval(days => $1)", days)
    return deleted


async def forget_schedules(conn: Connection, entrypoint: str, expression: str | None) -> None:
    """Drop the schedules of ``entrypoint`` other than ``expression`` (None: all of them): those of an
    older declaration, which no worker runs any more."""
    await conn.execute("DELETE FROM pgqueuer_schedules WHERE entrypoint = $1 AND expression IS DISTINCT FROM $2",
                       entrypoint, expression)

"""Putting jobs on the queue, for any code of the admin: a form, an API call, another job.

``enqueue`` runs on the caller's connection, so a job enqueued inside the caller's transaction is
queued if and only if that transaction commits (an admin action and the job it starts commit
together, as its operations log line does); the workers wake on the commit's NOTIFY.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from admin.auth.store import Connection
from admin.worker import store

_ENCODER = msgspec.json.Encoder()


def schedule_key(entrypoint: str) -> str:
    """The dedupe key of a schedule's runs (the admin's "Run now" too): one queued or running at a time."""
    return f"schedule:{entrypoint}"


def encode(payload: dict[str, Any] | None) -> bytes | None:
    return None if payload is None else _ENCODER.encode(payload)


def decode(payload: bytes | None) -> dict[str, Any]:
    """A job's payload as its job reads it (``{}`` when it has none)."""
    if not payload:
        return {}
    value = msgspec.json.decode(payload)
    if not isinstance(value, dict):
        raise ValueError(f"a job's payload is a JSON object, not {type(value).__name__}")
    return value


async def enqueue(conn: Connection, entrypoint: str, payload: dict[str, Any] | None = None, *,
                  dedupe_key: str | None = None, execute_after: dt.datetime | dt.timedelta | None = None,
                  priority: int = 0) -> int:
    """Queue the job ``entrypoint`` (admin/worker/jobs.py) with ``payload`` (a JSON object); its id.

    ``dedupe_key``: while a job of that key is queued or running, enqueueing it again queues
    nothing and returns that job's id (a "run now" pressed twice, a schedule that comes round
    while the last run still runs). ``execute_after``: not before then (a time, or a delay from
    now). Higher ``priority`` runs first."""
    delay: dt.timedelta | None = None
    if isinstance(execute_after, dt.datetime):
        delay = max(execute_after - dt.datetime.now(dt.UTC), dt.timedelta(0))
    elif execute_after is not None:
        delay = max(execute_after, dt.timedelta(0))
    for _ in range(3):  # the job holding the key may end between the insert and the look-up
        job_id = await store.enqueue(conn, entrypoint, encode(payload), priority, delay, dedupe_key)
        if job_id is not None:
            return job_id
        assert dedupe_key is not None
        found = await store.active_job(conn, dedupe_key)
        if found is not None:
            return found
    raise RuntimeError(f"could not enqueue {entrypoint} (dedupe key {dedupe_key!r} kept changing hands)")


async def requeue(conn: Connection, job_id: int) -> bool:
    """Queue a failed (held) job again, now, with its retries counted afresh; False when the job is
    not held as failed (it is queued, running, or gone). An IntegrityError (UniqueViolation) when
    another job of its dedupe key is queued or running."""
    return await store.requeue(conn, job_id)

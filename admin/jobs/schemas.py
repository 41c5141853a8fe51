"""Request and response types of the Jobs area (they make its part of the OpenAPI document)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from admin.schemas import Limit

Entrypoint = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^\x00]*$", description=(
    "A job's entrypoint, `area.name` (`billing.run`); empty: every entrypoint."))]
Cursor = Annotated[str, msgspec.Meta(max_length=500, description="`next` of the previous page.")]
QueueStatus = Literal["queued", "picked", "failed"]
LogStatus = Literal["successful", "failed", "retried", "exception", "canceled", "deleted"]


class JobError(msgspec.Struct):
    """A failure as the worker recorded it: the exception and its traceback."""

    type: str
    message: str
    traceback: str
    at: dt.datetime | None


class Job(msgspec.Struct):
    """A job in the queue: `queued` (waiting, or waiting for a retry: see `execute_after`), `picked`
    (running) or `failed` (no retry left: held until retried)."""

    id: int
    entrypoint: str
    status: QueueStatus
    priority: int
    attempts: int
    created: dt.datetime
    updated: dt.datetime
    heartbeat: dt.datetime
    execute_after: dt.datetime
    dedupe_key: str | None
    payload: dict[str, Any] | None
    error: JobError | None


class LogEntry(msgspec.Struct):
    """A line of the job log: how a run ended (`retried`: it failed and was queued again)."""

    id: int
    at: dt.datetime
    job_id: int
    entrypoint: str
    status: str
    seconds: float | None
    error: JobError | None


class JobDetail(msgspec.Struct):
    """A job, in the queue (`job`) or not any more (null: it ended), and every line of its log."""

    id: int
    entrypoint: str
    status: str
    job: Job | None
    history: list[LogEntry]


class Schedule(msgspec.Struct):
    """A schedule a worker declared: it enqueues its job at each time of `expression` (cron, UTC).
    `status` is `picked` while a worker enqueues the run."""

    id: int
    entrypoint: str
    expression: str
    next_run: dt.datetime
    last_run: dt.datetime | None
    status: str


class Schedules(msgspec.Struct):
    items: list[Schedule]


class JobQuery(msgspec.Struct, kw_only=True):
    status: QueueStatus | None = None
    entrypoint: Entrypoint = ""
    after: Cursor | None = None
    limit: Limit | None = None


class LogQuery(msgspec.Struct, kw_only=True):
    status: LogStatus | None = None
    entrypoint: Entrypoint = ""
    after: Cursor | None = None
    limit: Limit | None = None


class Queued(msgspec.Struct):
    """The job a "run now" queued (`queued` false: one was queued or running already, this is it)."""

    job_id: int
    queued: bool

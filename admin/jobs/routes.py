"""Jobs (under Administration): what the worker (``lastmile worker``) has queued, is running and
has held as failed (with the error), how recent runs ended, the schedules and their next runs;
"Retry now" on a failed job and "Run now" on a schedule. The queue is the ISP's own, not a
partner's: a partner's administrator (or key) is refused it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg
from aiohttp import web

from admin import keys, listing, oplog_store, pages
from admin import schemas as common
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.jobs import queries
from admin.jobs import schemas as s
from admin.web import Area, path_id
from admin.worker import queue

AREA = Area("jobs", "Administration", nav=[("Jobs", "/jobs", "administration.view")], order=91)
OVERVIEW = 20
"""Rows of each list on the overview page (the lists themselves page through all)."""


def _guard(who: Principal) -> None:
    if who.partner_id is not None:
        raise web.HTTPForbidden(text="The job queue is the ISP's own: a partner's administrator does not see it.")


def to_error(record: Any, at: dt.datetime | None = None) -> s.JobError | None:
    """A traceback record of pgqueuer's log (a JSON object) as the API shows it."""
    if not isinstance(record, dict):
        return None
    when = at
    if when is None and isinstance(record.get("timestamp"), str):
        try:
            when = dt.datetime.fromisoformat(record["timestamp"])
        except ValueError:
            when = None
    return s.JobError(type=str(record.get("exception_type", "")), message=str(record.get("exception_message", "")),
                      traceback=str(record.get("traceback", "")), at=when)


def _payload(raw: bytes | None) -> dict[str, Any] | None:
    try:
        return queue.decode(raw) if raw else None
    except ValueError:
        return None


def to_job(row: asyncpg.Record) -> s.Job:
    return s.Job(id=row["id"], entrypoint=row["entrypoint"], status=row["status"], priority=row["priority"],
                 attempts=row["attempts"], created=row["created"], updated=row["updated"], heartbeat=row["heartbeat"],
                 execute_after=row["execute_after"], dedupe_key=row["dedupe_key"], payload=_payload(row["payload"]),
                 error=to_error(row["error"], row["error_at"]))


def to_entry(row: asyncpg.Record) -> s.LogEntry:
    status = "retried" if row["status"] == "queued" and row["error"] is not None else row["status"]
    return s.LogEntry(id=row["id"], at=row["created"], job_id=row["job_id"], entrypoint=row["entrypoint"],
                      status=status, seconds=row["seconds"], error=to_error(row["error"], row["created"]))


def to_schedule(row: asyncpg.Record) -> s.Schedule:
    return s.Schedule(id=row["id"], entrypoint=row["entrypoint"], expression=row["expression"],
                      next_run=row["next_run"], last_run=row["last_run"], status=row["status"])


async def _detail(conn: Connection, job_id: int) -> s.JobDetail:
    row = await queries.job(conn, job_id)
    history = [to_entry(r) for r in await queries.history(conn, job_id)]
    if row is None and not history:
        raise web.HTTPNotFound(text="No such job (or its log has been pruned).")
    if row is not None:
        return s.JobDetail(id=job_id, entrypoint=row["entrypoint"], status=row["status"], job=to_job(row),
                           history=history)
    return s.JobDetail(id=job_id, entrypoint=history[-1].entrypoint, status=history[-1].status, job=None,
                       history=history)


async def retry(request: web.Request) -> asyncpg.Record:
    """Queue a failed job again (the "Retry now" of the page and the API); its row."""
    who = keys.principal(request)
    _guard(who)
    job_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        async with conn.transaction():
            row = await queries.lock_job(conn, job_id)
            if row is None:
                raise web.HTTPNotFound(text="No such job in the queue (it ended).")
            if row["status"] != "failed":
                raise web.HTTPConflict(text=f"Job {job_id} is {row['status']}, not failed: there is nothing to retry.")
            if row["dedupe_key"] and (other := await queries.holder(conn, row["dedupe_key"], job_id)):
                raise web.HTTPConflict(text=f"Job {other} of the same key ({row['dedupe_key']}) is queued or running: "
                                            "retry this one when it has ended.")
            await queue.requeue(conn, job_id)
            await oplog_store.record(conn, who, keys.client_address(request), "retry", "job", job_id,
                                     summary=f"retried job {job_id} ({row['entrypoint']})",
                                     before={"status": "failed", "attempts": row["attempts"]},
                                     after={"status": "queued", "attempts": 0})
        after = await queries.job(conn, job_id)
    if after is None:  # picked and done in the instant since
        raise web.HTTPNotFound(text="No such job in the queue (it ended).")
    return after


async def run_now(request: web.Request) -> tuple[asyncpg.Record, int, bool]:
    """Enqueue a schedule's job now (the "Run now"): (the schedule, the job's id, whether it was
    queued now; false when a run was queued or running already)."""
    who = keys.principal(request)
    _guard(who)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.schedule(conn, path_id(request))
        if row is None:
            raise web.HTTPNotFound(text="No such schedule.")
        key = queue.schedule_key(row["entrypoint"])
        async with conn.transaction():
            waiting = await queries.holder(conn, key, 0)
            if waiting is not None:
                return row, waiting, False
            job_id = await queue.enqueue(conn, row["entrypoint"], dedupe_key=key)
            await oplog_store.record(conn, who, keys.client_address(request), "run", "job", job_id,
                                     summary=f"ran {row['entrypoint']} now (job {job_id}), outside its schedule "
                                             f"{row['expression']}", after={"entrypoint": row["entrypoint"]})
    return row, job_id, True


# --- pages ----------------------------------------------------------------------------------------

@AREA.page("/jobs", permission="administration.view")
async def overview(request: web.Request) -> web.StreamResponse:
    _guard(keys.principal(request))
    async with request.app[keys.POOL].acquire() as conn:
        counts = await queries.counts(conn)
        failed = [to_job(r) for r in await queries.jobs(conn, "failed", "", None, OVERVIEW + 1, newest_first=True)]
        running = [to_job(r) for r in await queries.jobs(conn, "picked", "", None, OVERVIEW + 1, newest_first=False)]
        queued = [to_job(r) for r in await queries.jobs(conn, "queued", "", None, OVERVIEW + 1, newest_first=False)]
        schedules = [to_schedule(r) for r in await queries.schedules(conn)]
        recent = [to_entry(r) for r in await queries.log(conn, "", None, None, OVERVIEW + 1)]
    return pages.render("jobs/jobs.html", request, {
        "counts": counts, "failed": failed, "running": running, "queued": queued, "schedules": schedules,
        "recent": recent, "limit": OVERVIEW, "now": dt.datetime.now(dt.UTC), "done": request.query.get("done", ""),
        "job_id": request.query.get("job", "")})


def _listing(request: web.Request, newest_first: bool) -> listing.Listing:
    return listing.Listing.of(request, {"id": "id"}, "id", default_direction="desc" if newest_first else "asc",
                              limit=request.app[keys.SETTINGS].page_size)


@AREA.page("/jobs/queue", permission="administration.view")
async def queue_page(request: web.Request) -> web.StreamResponse:
    """The queue, one status at a time: failed newest first, queued and running oldest first."""
    _guard(keys.principal(request))
    errors: dict[str, str] = {}
    try:
        q = common.query(request, s.JobQuery)
    except common.Invalid as e:
        errors, q = e.errors, s.JobQuery()
    newest_first = q.status == "failed"
    lst = _listing(request, newest_first)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.jobs(conn, q.status, q.entrypoint, lst.after[1] if lst.after else None, lst.limit + 1,
                                  newest_first=newest_first)
        entrypoints = await queries.entrypoints(conn)
    jobs = [to_job(r) for r in lst.take(list(rows), lambda r: [r["id"], r["id"]])]
    return pages.render("jobs/queue.html", request, {
        "listing": lst, "jobs": jobs, "q": q, "errors": errors, "entrypoints": entrypoints,
        "now": dt.datetime.now(dt.UTC)}, status=422 if errors else 200)


@AREA.page("/jobs/log", permission="administration.view")
async def log_page(request: web.Request) -> web.StreamResponse:
    """How runs ended, newest first."""
    _guard(keys.principal(request))
    errors: dict[str, str] = {}
    try:
        q = common.query(request, s.LogQuery)
    except common.Invalid as e:
        errors, q = e.errors, s.LogQuery()
    lst = _listing(request, True)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.log(conn, q.entrypoint, q.status, lst.after[1] if lst.after else None, lst.limit + 1)
        entrypoints = await queries.entrypoints(conn)
    entries = [to_entry(r) for r in lst.take(list(rows), lambda r: [r["id"], r["id"]])]
    return pages.render("jobs/log.html", request, {
        "listing": lst, "entries": entries, "q": q, "errors": errors, "entrypoints": entrypoints},
        status=422 if errors else 200)


@AREA.page("/jobs/{id}", permission="administration.view")
async def job_page(request: web.Request) -> web.StreamResponse:
    _guard(keys.principal(request))
    async with request.app[keys.POOL].acquire() as conn:
        detail = await _detail(conn, path_id(request))
    payload = detail.job.payload if detail.job is not None else None
    return pages.render("jobs/job.html", request, {
        "d": detail, "now": dt.datetime.now(dt.UTC), "done": request.query.get("done", ""),
        "payload": json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) if payload else ""})


@AREA.page("/jobs/{id}/retry", permission="administration.edit", method="POST")
async def retry_page(request: web.Request) -> web.StreamResponse:
    row = await retry(request)
    raise web.HTTPFound(f"/admin/jobs/{row['id']}?done=retried")


@AREA.page("/jobs/schedules/{id}/run", permission="administration.edit", method="POST")
async def run_page(request: web.Request) -> web.StreamResponse:
    _, job_id, queued = await run_now(request)
    raise web.HTTPFound(f"/admin/jobs?done={'queued' if queued else 'waiting'}&job={job_id}")


# --- the API --------------------------------------------------------------------------------------

@AREA.api("GET", "/jobs", permission="administration.view", summary="List the jobs in the queue",
          query=s.JobQuery, response=common.Page[s.Job])
async def api_jobs(request: web.Request) -> web.StreamResponse:
    """Queued, running (`picked`) and failed jobs, each with its last error; failed ones newest first,
    the others oldest first."""
    _guard(keys.principal(request))
    q = common.query(request, s.JobQuery)
    newest_first = q.status == "failed"
    lst = _listing(request, newest_first)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.jobs(conn, q.status, q.entrypoint, lst.after[1] if lst.after else None, lst.limit + 1,
                                  newest_first=newest_first)
    rows = lst.take(list(rows), lambda r: [r["id"], r["id"]])
    return common.json(common.Page(items=[to_job(r) for r in rows], next=lst.next))


@AREA.api("GET", "/jobs/log", permission="administration.view", summary="The job log: how runs ended",
          query=s.LogQuery, response=common.Page[s.LogEntry])
async def api_log(request: web.Request) -> web.StreamResponse:
    """The end of each run, newest first: `successful`, `retried` (failed, queued again with backoff),
    `failed` (no retry left), with how long it ran and the error."""
    _guard(keys.principal(request))
    q = common.query(request, s.LogQuery)
    lst = _listing(request, True)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.log(conn, q.entrypoint, q.status, lst.after[1] if lst.after else None, lst.limit + 1)
    rows = lst.take(list(rows), lambda r: [r["id"], r["id"]])
    return common.json(common.Page(items=[to_entry(r) for r in rows], next=lst.next))


@AREA.api("GET", "/jobs/schedules", permission="administration.view", summary="List the schedules",
          response=s.Schedules)
async def api_schedules(request: web.Request) -> web.StreamResponse:
    """The schedules the workers declared, with their next and last runs (UTC)."""
    _guard(keys.principal(request))
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.schedules(conn)
    return common.json(s.Schedules(items=[to_schedule(r) for r in rows]))


@AREA.api("POST", "/jobs/schedules/{id}/run", permission="administration.edit", summary="Run a schedule's job now",
          response=s.Queued)
async def api_run(request: web.Request) -> web.StreamResponse:
    """Enqueue the schedule's job now, outside its schedule; when a run is queued or running already,
    that one is the answer (`queued` false)."""
    _, job_id, queued = await run_now(request)
    return common.json(s.Queued(job_id=job_id, queued=queued))


@AREA.api("GET", "/jobs/{id}", permission="administration.view", summary="Get a job and its log",
          response=s.JobDetail)
async def api_job(request: web.Request) -> web.StreamResponse:
    """A job, in the queue or ended, with every line of its log (each failure's traceback)."""
    _guard(keys.principal(request))
    async with request.app[keys.POOL].acquire() as conn:
        return common.json(await _detail(conn, path_id(request)))


@AREA.api("POST", "/jobs/{id}/retry", permission="administration.edit", summary="Retry a failed job now",
          response=s.Job)
async def api_retry(request: web.Request) -> web.StreamResponse:
    """Queue a job held as failed again, due now, its retries counted afresh (409 when it is not failed,
    or another job of its dedupe key is queued or running)."""
    return common.json(to_job(await retry(request)))

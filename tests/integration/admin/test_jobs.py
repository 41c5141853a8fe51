"""The Jobs page and API (Administration): the queue (queued, running, failed with the error), the
log, the schedules; "Retry now" and "Run now", each in the operations log; permissions and the
partner refusal. The queue's state is made with pgqueuer's own calls, as a worker makes it."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from pgqueuer import AsyncpgDriver, Queries
from pgqueuer.models import CronExpressionEntrypoint, Job, TracebackRecord
from pgqueuer.ports.repository import EntrypointExecutionParameter
from pgqueuer.types import CronEntrypoint, CronExpression, QueueEntrypoint, QueueManagerId

from admin.worker import queue
from tests.integration.admin.conftest import Admin, api_key, call, logged_in, make_admin


@contextlib.asynccontextmanager
async def pgq(db_url: str) -> AsyncIterator[Queries]:
    """pgqueuer's queries over a plain connection (no lastmile codecs), as the worker runs them."""
    conn = await asyncpg.connect(db_url)
    try:
        yield Queries(AsyncpgDriver(conn))
    finally:
        await conn.close()


async def enqueue(admin: Admin, entrypoint: str, payload: dict[str, Any] | None = None, **kw: Any) -> int:
    async with admin.pool.acquire() as conn:
        return await queue.enqueue(conn, entrypoint, payload, **kw)


async def pick(db_url: str, entrypoint: str) -> Job:
    """A worker picks the job of ``entrypoint`` (it is running)."""
    async with pgq(db_url) as q:
        (job,) = await q.dequeue(batch_size=1, entrypoints={QueueEntrypoint(entrypoint): EntrypointExecutionParameter(
            concurrency_limit=0)}, queue_manager_id=QueueManagerId(uuid.uuid4()), global_concurrency_limit=None,
            heartbeat_timeout=dt.timedelta(seconds=30))
        return job


async def fail(db_url: str, entrypoint: str, message: str) -> None:
    """A worker picks the job of ``entrypoint`` and holds it as failed (no retry left), with its traceback."""
    job = await pick(db_url, entrypoint)
    try:
        raise ConnectionError(message)
    except ConnectionError as e:
        record = TracebackRecord.from_exception(e, job.id, {"entrypoint": entrypoint})
    async with pgq(db_url) as q:
        await q.log_jobs([(job, "failed", record)])


async def succeed(db_url: str, entrypoint: str) -> int:
    job = await pick(db_url, entrypoint)
    async with pgq(db_url) as q:
        await q.log_jobs([(job, "successful", None)])
    return int(job.id)


async def schedule(admin: Admin, db_url: str, entrypoint: str, expression: str) -> int:
    async with pgq(db_url) as q:
        await q.insert_schedule({CronExpressionEntrypoint(CronEntrypoint(entrypoint), CronExpression(expression)):
                                 dt.timedelta(minutes=5)})
    async with admin.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT id FROM pgqueuer_schedules WHERE entrypoint = $1", entrypoint))


async def oplog(admin: Admin) -> list[asyncpg.Record]:
    async with admin.pool.acquire() as conn:
        return await conn.fetch("SELECT action, object_type, object_id, summary, before, after FROM operations_log "
                                "WHERE object_type = 'job' ORDER BY id")


async def test_the_page_shows_the_queue_the_failures_with_their_error_and_the_schedules(admin: Admin,
                                                                                         db_url: str) -> None:
    await enqueue(admin, "billing.run", {"partner": 3}, execute_after=dt.timedelta(minutes=10))
    failed = await enqueue(admin, "notify.send", {"to": "a@example.net"})
    await fail(db_url, "notify.send", "smtp.example.net refused the connection")
    running = await enqueue(admin, "imports.csv")
    assert (await pick(db_url, "imports.csv")).id == running
    await schedule(admin, db_url, "maintenance.job-log", "17 * * * *")
    async with await logged_in(admin) as c:
        status, page = await c.get("/admin/jobs")
        assert status == 200
        assert "smtp.example.net refused the connection" in page and "ConnectionError" in page
        assert f'action="/admin/jobs/{failed}/retry"' in page and "Retry now" in page
        assert f'/admin/jobs/{running}"' in page and "imports.csv" in page
        assert "billing.run" in page and "in 9 min" in page  # due in ten minutes, a few seconds gone
        assert "maintenance.job-log" in page and "17 * * * *" in page and "Run now" in page
        assert page.count('<li class="area">Administration</li>') == 1  # Jobs sits under Administration
        assert 'href="/admin/jobs"' in page
        # The failed job's page: its error in full (the traceback), its payload, its history.
        status, page = await c.get(f"/admin/jobs/{failed}")
        assert status == 200 and "Traceback (most recent call last)" in page and "a@example.net" in page
        status, page = await c.get("/admin/jobs/queue?status=failed")
        assert status == 200 and '<td class="mono">notify.send</td>' in page
        assert '<td class="mono">billing.run</td>' not in page
        status, page = await c.get("/admin/jobs/log?status=failed")
        assert status == 200 and "smtp.example.net refused" in page
        assert (await c.get("/admin/jobs/queue?status=nonsense"))[0] == 422
        assert (await c.get("/admin/jobs/999999"))[0] == 404


async def test_retry_now_queues_a_failed_job_again_and_writes_the_operations_log(admin: Admin, db_url: str) -> None:
    failed = await enqueue(admin, "notify.send", {"to": "a@example.net"})
    await fail(db_url, "notify.send", "the server is away")
    queued = await enqueue(admin, "notify.other")
    async with await logged_in(admin) as c:
        await c.get("/admin/jobs")
        status, page, url = await c.post(f"/admin/jobs/{failed}/retry")
        assert status == 200 and url.endswith(f"/admin/jobs/{failed}?done=retried") and "Queued again" in page
        async with admin.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT status::text, attempts, execute_after <= now() AS due FROM pgqueuer "
                                      "WHERE id = $1", failed)
        assert row is not None and (row["status"], row["attempts"], row["due"]) == ("queued", 0, True)
        # Only a failed job is retried; without the CSRF token nothing is.
        status, page, _ = await c.post(f"/admin/jobs/{queued}/retry")
        assert status == 409 and "not failed" in page
        status, _, _ = await c.post(f"/admin/jobs/{failed}/retry", {"_csrf": "wrong"})
        assert status == 403
    (line,) = await oplog(admin)
    assert (line["action"], line["object_id"]) == ("retry", failed)
    assert line["before"] == {"status": "failed", "attempts": 0} and line["after"]["status"] == "queued"


async def test_a_failed_job_is_not_queued_again_beside_a_run_of_its_key(admin: Admin, db_url: str) -> None:
    key = queue.schedule_key("billing.daily")
    failed = await enqueue(admin, "billing.daily", dedupe_key=key)
    await fail(db_url, "billing.daily", "boom")
    later = await enqueue(admin, "billing.daily", dedupe_key=key)
    assert later != failed
    ak = await _key(admin)
    status, body = await call(admin, ak, "POST", f"/jobs/{failed}/retry")
    assert status == 409 and f"Job {later}" in body["detail"]


async def test_run_now_enqueues_a_schedules_job_once(admin: Admin, db_url: str) -> None:
    schedule_id = await schedule(admin, db_url, "maintenance.job-log", "17 * * * *")
    async with await logged_in(admin) as c:
        await c.get("/admin/jobs")
        status, page, url = await c.post(f"/admin/jobs/schedules/{schedule_id}/run")
        assert status == 200 and "done=queued" in url and "Queued:" in page
        status, page, url = await c.post(f"/admin/jobs/schedules/{schedule_id}/run")
        assert "done=waiting" in url and "queued or running already" in page
    async with admin.pool.acquire() as conn:
        jobs = await conn.fetch("SELECT id, dedupe_key FROM pgqueuer WHERE entrypoint = 'maintenance.job-log'")
    assert [j["dedupe_key"] for j in jobs] == ["schedule:maintenance.job-log"]
    (line,) = await oplog(admin)
    assert (line["action"], line["object_id"]) == ("run", jobs[0]["id"])
    assert "outside its schedule 17 * * * *" in line["summary"]


async def _key(admin: Admin, role: str = "super", partner_id: int | None = None) -> str:
    async with admin.pool.acquire() as conn:
        return await api_key(conn, role, partner_id=partner_id)


async def test_the_api(admin: Admin, db_url: str) -> None:
    failed = await enqueue(admin, "notify.send", {"to": "b@example.net"})
    await fail(db_url, "notify.send", "no route to host")
    waiting = [await enqueue(admin, "billing.run", {"i": i}) for i in range(3)]
    await enqueue(admin, "imports.csv")
    done = await succeed(db_url, "imports.csv")
    schedule_id = await schedule(admin, db_url, "maintenance.job-log", "17 * * * *")
    key = await _key(admin)

    status, body = await call(admin, key, "GET", "/jobs?status=failed")
    assert status == 200
    (job,) = body["items"]
    assert (job["id"], job["status"], job["payload"]) == (failed, "failed", {"to": "b@example.net"})
    assert job["error"]["type"] == "ConnectionError" and job["error"]["message"] == "no route to host"
    assert "Traceback" in job["error"]["traceback"]
    # Pages of the queue, oldest first.
    status, body = await call(admin, key, "GET", "/jobs?status=queued&limit=2")
    assert [j["id"] for j in body["items"]] == waiting[:2] and body["next"]
    status, body = await call(admin, key, "GET", f"/jobs?status=queued&limit=2&after={body['next']}")
    assert [j["id"] for j in body["items"]] == waiting[2:] and body["next"] is None
    # A job that ended: out of the queue, its log still there.
    status, body = await call(admin, key, "GET", f"/jobs/{done}")
    assert status == 200 and body["job"] is None and body["status"] == "successful"
    assert [h["status"] for h in body["history"]] == ["queued", "picked", "successful"]
    assert body["history"][-1]["seconds"] is not None
    status, body = await call(admin, key, "GET", "/jobs/log")
    assert status == 200 and {e["status"] for e in body["items"]} == {"successful", "failed"}
    status, body = await call(admin, key, "GET", "/jobs/log?status=failed&entrypoint=notify.send")
    assert [e["job_id"] for e in body["items"]] == [failed] and body["items"][0]["error"]["message"] == \
        "no route to host"
    status, body = await call(admin, key, "GET", "/jobs/schedules")
    assert [(sc["id"], sc["expression"]) for sc in body["items"]] == [(schedule_id, "17 * * * *")]
    status, body = await call(admin, key, "POST", f"/jobs/schedules/{schedule_id}/run")
    assert status == 200 and body["queued"] is True
    status, again = await call(admin, key, "POST", f"/jobs/schedules/{schedule_id}/run")
    assert again == {"job_id": body["job_id"], "queued": False}
    status, body = await call(admin, key, "POST", f"/jobs/{failed}/retry")
    assert status == 200 and body["status"] == "queued" and body["attempts"] == 0
    status, body = await call(admin, key, "POST", f"/jobs/{failed}/retry")
    assert status == 409
    assert (await call(admin, key, "GET", "/jobs/123456789"))[0] == 404
    assert (await call(admin, key, "GET", "/jobs?status=nonsense"))[0] == 422
    assert [line["action"] for line in await oplog(admin)] == ["run", "retry"]


async def test_viewing_needs_administration_view_and_acting_administration_edit(admin: Admin, db_url: str) -> None:
    failed = await enqueue(admin, "notify.send")
    await fail(db_url, "notify.send", "nope")
    schedule_id = await schedule(admin, db_url, "maintenance.job-log", "17 * * * *")
    async with admin.pool.acquire() as conn:
        await make_admin(conn, "tech", "technician")
        await make_admin(conn, "viewer", "technician", grants=["administration.view"])
    async with admin.client() as tech, admin.client() as viewer:
        await tech.login("tech")
        assert (await tech.get("/admin/jobs"))[0] == 403
        await viewer.login("viewer")
        status, page = await viewer.get("/admin/jobs")
        assert status == 200 and "nope" in page and "Retry now" not in page and "Run now" not in page
        assert (await viewer.post(f"/admin/jobs/{failed}/retry"))[0] == 403
        assert (await viewer.post(f"/admin/jobs/schedules/{schedule_id}/run"))[0] == 403
    assert await oplog(admin) == []


async def test_a_partners_administrator_is_refused_the_queue(admin: Admin, db_url: str) -> None:
    await enqueue(admin, "notify.send")
    async with admin.pool.acquire() as conn:
        partner_id = int(await conn.fetchval("INSERT INTO partners (name) VALUES ('Reseller') RETURNING id"))
        await make_admin(conn, "reseller", "admin", partner_id=partner_id)
    key = await _key(admin, "admin", partner_id)
    async with admin.client() as c:
        await c.login("reseller")
        assert (await c.get("/admin/jobs"))[0] == 403
    status, body = await call(admin, key, "GET", "/jobs")
    assert status == 403 and "the ISP's own" in body["detail"]

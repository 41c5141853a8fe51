"""The Jobs pages in a real browser: the overview with a failed job (its error), a running one, a
queued retry and the schedules, "Retry now" and "Run now" clicked as a person does, the job's page
with its traceback, and the overview on a phone. Screenshots in var/screenshots/jobs-*.png."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
from pgqueuer import AsyncpgDriver, Queries
from pgqueuer.models import CronExpressionEntrypoint, TracebackRecord
from pgqueuer.ports.repository import EntrypointExecutionParameter
from pgqueuer.types import CronEntrypoint, CronExpression, QueueEntrypoint, QueueManagerId

from admin.worker import queue
from tests.integration.admin.conftest import make_admin
from tests.integration.browser.conftest import PHONE, Browse, Tab


async def queue_state(conn: asyncpg.Connection, db_url: str) -> int:
    """A failed job (with a long error), a running one, one waiting for a retry, two queued and two
    schedules, made with pgqueuer's calls as a worker makes them; the failed job's id."""
    plain = await asyncpg.connect(db_url)
    q = Queries(AsyncpgDriver(plain))
    try:
        failed = await queue.enqueue(conn, "notify.send", {"to": "anna.berger@example.net", "template": "invoice"})
        await queue.enqueue(conn, "imports.csv", {"file": "customers-2026-11.csv"})
        for entrypoint in ("notify.send", "imports.csv"):
            (job,) = await q.dequeue(
                batch_size=1, entrypoints={QueueEntrypoint(entrypoint): EntrypointExecutionParameter(0)},
                queue_manager_id=QueueManagerId(uuid.uuid4()), global_concurrency_limit=None,
                heartbeat_timeout=dt.timedelta(seconds=30))
            if entrypoint == "notify.send":
                try:
                    raise ConnectionRefusedError("smtp.example.net:587 refused the connection after 3 attempts; the "
                                                 "mail server of the ISP may be down or blocking this host")
                except ConnectionRefusedError as e:
                    record = TracebackRecord.from_exception(e, job.id, {"entrypoint": entrypoint})
                await q.log_jobs([(job, "failed", record)])
        retry = await queue.enqueue(conn, "billing.dunning", execute_after=dt.timedelta(minutes=4))
        await conn.execute("UPDATE pgqueuer SET attempts = 2 WHERE id = $1", retry)
        for i in range(2):
            await queue.enqueue(conn, "notify.sms", {"to": f"+43 660 100 00{i}"})
        await q.insert_schedule({
            CronExpressionEntrypoint(CronEntrypoint("maintenance.job-log"), CronExpression("17 * * * *")):
                dt.timedelta(minutes=20),
            CronExpressionEntrypoint(CronEntrypoint("billing.daily"), CronExpression("0 2 * * *")):
                dt.timedelta(hours=9)})
    finally:
        await plain.close()
    return failed


async def test_the_jobs_pages(conn: asyncpg.Connection, db_url: str, tab: Tab, browse: Browse) -> None:
    await make_admin(conn, "root")
    failed = await queue_state(conn, db_url)
    await tab.login("root")
    await tab.page.locator("nav.side a", has_text="Jobs").click()
    await tab.page.wait_for_url("**/admin/jobs")
    assert await tab.h1() == "Jobs"
    current = tab.page.locator("nav.side a[aria-current=page]")
    assert (await current.inner_text()).strip() == "Jobs"
    assert await tab.page.locator("nav.side li.area", has_text="Administration").count() == 1
    assert "refused the connection" in await tab.page.locator("main table").first.inner_text()
    width = await tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, width
    await tab.shot("overview")

    # The failed job's page: the traceback opens, then "Retry now".
    await tab.page.locator(f'main a[href="/admin/jobs/{failed}"]').first.click()
    await tab.page.wait_for_url(f"**/admin/jobs/{failed}")
    await tab.page.locator("details.job-trace summary").first.click()
    await tab.page.locator("details.job-trace pre", has_text="Traceback").first.wait_for()
    await tab.shot("failed-job")
    await tab.submit("main form.actions button")
    assert "Queued again" in await tab.page.inner_text("main")
    assert await conn.fetchval("SELECT status::text FROM pgqueuer WHERE id = $1", failed) == "queued"

    # "Run now" on a schedule.
    await tab.goto("/admin/jobs")
    await tab.submit("main tr:has-text('maintenance.job-log') button:has-text('Run now')")
    assert "Queued:" in await tab.page.inner_text("main .notice")
    assert await tab.page.locator("main tr", has_text="maintenance.job-log").count() == 2  # its schedule, its job
    await tab.shot("run-now")
    await tab.goto("/admin/jobs/log")
    await tab.shot("log")

    phone = await browse(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    await phone.login("root")
    await phone.goto("/admin/jobs")
    assert await phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await phone.shot("phone")

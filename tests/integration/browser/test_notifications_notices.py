"""The issue's browser test, in a real browser: set the reminders, see the calendar, run the day,
read the message that the SMTP server received.

A partner's mail server is set to a real SMTP server on 127.0.0.1 (tests/fakes/smtpserver.py) on
Notifications → Settings, payment reminder #1 switched on on Notices; an unpaid invoice that is
overdue shows its reminder on today's square of the calendar; "Run today's notices now" queues
the day's schedule and the delivery, which run here as the worker runs them (the jobs' own
functions, in-process); the SMTP server has the reminder: its subject, the customer as the
recipient, the invoice's number in the body and the invoice's PDF attached. Both pages are
also looked at on a 390 px phone. Screenshots in
var/screenshots/set_the_reminders_*.png, with the message received (.eml)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import asyncpg
import structlog

from admin.billing import ledger
from admin.worker import jobs, queue
from daemons.config import Settings
from tests.fakes.smtpserver import SmtpServer
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import PHONE, SHOTS, Browse


async def run_job(admin: Admin, entrypoint: str) -> None:
    """Run a queued job's function as the worker does (its Context), and take it off the queue."""
    job = jobs.discover()[entrypoint]
    async with admin.pool.acquire() as conn:
        job_id = await conn.fetchval("SELECT id FROM pgqueuer WHERE entrypoint = $1", entrypoint)
        assert job_id is not None, f"{entrypoint} was not queued"
    await job.run(jobs.Context(int(job_id), entrypoint, {}, 1, admin.pool, Settings(), structlog.get_logger()))
    async with admin.pool.acquire() as conn:
        await conn.execute("DELETE FROM pgqueuer WHERE id = $1", job_id)


async def test_set_the_reminders_see_the_calendar_run_the_day_read_the_mail(conn: asyncpg.Connection, admin: Admin,
                                                                            browse: Browse) -> None:
    await make_admin(conn, "root")
    partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('Alpha Net') RETURNING id")
    await conn.execute("INSERT INTO partner_branding (partner_id, company_name, email) "
                       "VALUES ($1, 'Alpha Net GmbH', 'billing@alpha.example')", partner)
    customer = await conn.fetchval(
        "INSERT INTO customers (partner_id, number, name, email) VALUES ($1, 'A-1001', 'Anna Berger', "
        "'anna.berger@example.net') RETURNING id", partner)
    today = dt.datetime.now(dt.UTC).date()

    async with SmtpServer() as smtp:
        tab = await browse()
        page = tab.page
        await tab.login("root")

        # Settings: the partner's mail server, picked in the scope picker.
        await tab.goto("/admin/notifications/settings")
        assert await tab.h1() == "Notification settings"
        await page.select_option("#f-scope", str(partner))
        async with page.expect_navigation():
            await page.click("#scope button")
        assert "Alpha Net follows the default settings" in await page.inner_text("#source")
        await page.fill("#f-mail_from", "Alpha Net Billing <billing@alpha.example>")
        await page.fill("#f-smtp_host", smtp.host)
        await page.fill("#f-smtp_port", str(smtp.port))
        await page.select_option("#f-smtp_security", "none")
        await page.fill("#f-timezone", "UTC")
        await tab.submit("#settings button[type=submit]")
        assert "Settings saved" in await page.inner_text("main .notice")
        assert "Alpha Net's own settings" in await page.inner_text("#source")
        await tab.shot("settings")

        # Notices: reminder #1, three days after the due date, at midnight (so its hour has come).
        await page.click("main nav.tabs a")
        await page.wait_for_url("**/admin/notifications/notices?partner=*")
        assert await tab.h1() == "Notices of Alpha Net"
        await page.check("#f-reminder_1-enabled")
        await page.fill("#f-reminder_1-day", "3")
        await page.select_option("#f-reminder_1-send_hour", "0")
        await page.fill("#f-reminder_1-subject",
                        "Reminder: {{ invoices|length }} unpaid invoice from {{ brand.company_name }}")
        await tab.submit("#save-reminders")
        assert "Payment reminders saved" in await page.inner_text("#reminders")

        # An invoice due three days ago, unpaid: its reminder #1 is today's.
        async with conn.transaction():
            [invoice] = await ledger.issue(conn, [ledger.NewDocument(
                "invoice", customer, partner, "EUR", today - dt.timedelta(days=17), "manual",
                (ledger.NewLine("Fibre 100, November", Decimal("39.90")),), due_on=today - dt.timedelta(days=3))])
        await page.reload()
        cell = page.locator(f'.cal-day[data-day="{today.isoformat()}"]')
        assert await cell.get_attribute("aria-current") == "date"
        assert (await cell.locator('[data-reminder="1"]').inner_text()).replace("\xa0", " ") == "#1 1"
        assert "#1 at 00:00" in await page.inner_text("#calendar .legend")
        await page.evaluate("window.scrollTo(0, 0)")  # saved at #reminders: else the sticky header sits mid-shot
        await tab.shot("notices")

        # Run the day: the button queues the jobs; they run as the worker runs them.
        await tab.submit("#run-today button")
        assert "Today's notices are queued" in await page.inner_text("#run-queued")
        assert await conn.fetchval("SELECT count(*) FROM pgqueuer WHERE dedupe_key = ANY($1::text[])", [
            queue.schedule_key("notifications.schedule"), queue.schedule_key("notifications.deliver")]) == 2
        await run_job(admin, "notifications.schedule")
        await run_job(admin, "notifications.deliver")

        [got] = await smtp.wait_for(1, timeout=10)
        mail = got.message
        assert got.rcpt_tos == ("anna.berger@example.net",)
        assert mail["Subject"] == "Reminder: 1 unpaid invoice from Alpha Net GmbH"
        assert mail["From"] == "Alpha Net Billing <billing@alpha.example>"
        text = mail.get_body(("plain",))
        assert text is not None and invoice.number in text.get_content() and "Anna Berger" in text.get_content()
        pdfs = [p for p in mail.iter_attachments() if p.get_content_type() == "application/pdf"]
        assert len(pdfs) == 1 and invoice.number in (pdfs[0].get_filename() or "")
        assert pdfs[0].get_content().startswith(b"%PDF")
        (SHOTS / f"{tab.test}-reminder.eml").write_bytes(got.raw)  # the message as it came, beside the shots
        message = await conn.fetchrow("SELECT status, kind, cause, recipient FROM messages")
        assert message is not None and (message["status"], message["kind"], message["cause"]) == (
            "sent", "reminder_1", f"invoice:{invoice.id}")

        # Run again: nothing twice.
        await tab.submit("#run-today button")
        await run_job(admin, "notifications.schedule")
        await run_job(admin, "notifications.deliver")
        assert len(smtp.messages) == 1

    phone = await browse(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    await phone.login("root")
    for name, path in (("settings-phone", f"/admin/notifications/settings?partner={partner}"),
                       ("notices-phone", f"/admin/notifications/notices?partner={partner}")):
        await phone.goto(path)
        assert await phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
        await phone.shot(name)
    square = await phone.page.locator(f'.cal-day[data-day="{today.isoformat()}"]').bounding_box()
    assert square is not None and square["width"] >= 40, square  # seven days across the phone, each readable

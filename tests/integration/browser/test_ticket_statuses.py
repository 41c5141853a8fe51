"""Support → Ticket statuses and the shared deny list in Chromium: a status added through its
form and offered by a ticket's status select, a regular expression that backtracks refused with
its sentence, a line added and a pasted mail tested; screenshots of both pages at desktop and
phone width (var/screenshots/)."""

from __future__ import annotations

import asyncpg

from tests.integration.admin.conftest import make_admin
from tests.integration.browser.conftest import PHONE, Browse, Tab


async def test_a_status_is_added_and_offered(conn: asyncpg.Connection, tab: Tab, browse: Browse) -> None:
    await make_admin(conn, "root")
    ticket_id = await conn.fetchval("INSERT INTO tickets (subject, requester_email, source) "
                                    "VALUES ('No dial tone', 'a@b.example', 'admin') RETURNING id")
    page = tab.page
    await tab.login("root")
    await tab.goto("/admin/tickets/statuses")
    await page.fill("#f-code", "waiting_parts")
    await page.fill("#f-title", "Waiting on parts")
    await tab.submit("#add-status button[type=submit]")
    assert "Status added." in await page.inner_text("main .notice")
    assert await page.locator("#status-waiting_parts").count() == 1
    assert await page.locator("#delete-waiting_parts").count() == 1
    assert await page.locator("#status-new button.secondary").count() == 0  # built in: no delete
    await tab.shot("statuses")
    await tab.goto(f"/admin/tickets/{ticket_id}")
    assert "Waiting on parts" in await page.locator("#f-status option").all_inner_texts()

    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    await phone.goto("/admin/tickets/statuses")
    await phone.shot("statuses-phone")


async def test_a_shared_deny_line_is_refused_then_added_and_tested(conn: asyncpg.Connection, tab: Tab,
                                                                   browse: Browse) -> None:
    await make_admin(conn, "root")
    page = tab.page
    await tab.login("root")
    await tab.goto("/admin/tickets/denylist")
    await page.select_option("#f-field", "subject")
    await page.select_option("#f-match", "regex")
    await page.fill("#f-pattern", "(a+)+")
    tab.expect_error(r"status of 422 .*/admin/tickets/denylist")  # refused on purpose
    await tab.submit("#add-line button[type=submit]")
    assert "backtracks exponentially" in await page.inner_text("#e-pattern")
    await page.fill("#f-pattern", r"^\[?spam\]?")
    await tab.submit("#add-line button[type=submit]")
    assert "Line added." in await page.inner_text("main .notice")
    await page.fill("#f-address", "Anna <anna@example.at>")
    await page.fill("#f-subject", "[SPAM] cheap offer")
    await page.fill("#f-body", "Hello")
    await tab.submit("#test-mail button[type=submit]")
    said = await page.inner_text("#test-result")
    assert "Refused by the shared line" in said and r"^\[?spam\]?" in said
    await page.locator("h1").scroll_into_view_if_needed()  # the form's #test-result scrolled down
    await tab.shot("denylist")

    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    await phone.goto("/admin/tickets/denylist")
    await phone.shot("denylist-phone")

"""Tickets through the pages in Chromium: the list from the menu, filtered by priority, a ticket's
page with the customer's message and its attachments, a staff reply with a file and an internal
note posted through the form (each in its own style, the note marked internal; the reply's file
listed on it and downloadable), the status changed through
the fields form; screenshots of each (var/screenshots/, and /tmp/shots/tickets-*.png)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from playwright.async_api import FilePayload

from tests.integration.admin.conftest import make_admin
from tests.integration.admin.test_tickets import world
from tests.integration.browser.conftest import Tab

SHOTS = Path("/tmp/shots")


async def shot(tab: Tab, name: str, *, full_page: bool = True) -> None:
    """A screenshot kept with the others (var/screenshots/) and as /tmp/shots/tickets-<name>.png."""
    await tab.shot(name, full_page=full_page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    await tab.page.screenshot(path=str(SHOTS / f"tickets-{name}.png"), full_page=full_page)


async def test_a_ticket_is_found_answered_noted_and_resolved(conn: asyncpg.Connection, tab: Tab) -> None:
    await make_admin(conn, "root")
    w = await world(conn)
    page = tab.page
    await tab.login("root")
    async with page.expect_navigation():
        await page.click("nav.side a:text-is('Tickets')")
    assert page.url.endswith("/admin/tickets")
    assert await page.locator("main tbody tr").count() == 3
    # (a screenshot marks the inputs, which htmx's swap then copies: the list's is taken after the filter)
    await page.select_option("#f-priority", "high")  # htmx: the list swapped, the URL pushed
    await page.wait_for_url("**priority=high**")
    await page.locator("main tbody tr:nth-child(2)").wait_for(state="detached")
    assert await page.locator("main tbody tr").count() == 1
    await tab.goto("/admin/tickets")
    await shot(tab, "list")
    async with page.expect_navigation():
        await page.click("main tbody a:text('No internet since the storm')")
    assert "No internet since the storm" in await tab.h1()
    assert await page.locator(".msg-customer").count() == 1
    assert await page.locator(".msg-customer .attachments a").count() == 2

    await page.fill("#f-body", "A technician comes tomorrow between 8 and 12.\nPlease be at home.")
    await page.set_input_files("#f-files", [
        FilePayload(name="appointment.pdf", mimeType="application/pdf", buffer=b"%PDF-1.4\n%%EOF\n"),
        FilePayload(name="Wegbeschreibung ü.txt", mimeType="text/plain", buffer=b"Second door on the left.\n")])
    await tab.submit("#reply-button")
    assert (await page.locator(".notice").inner_text()).startswith("Reply sent to the customer")
    assert "Waiting on customer" in await tab.h1()
    staff = page.locator(".msg-staff")
    assert await staff.count() == 1 and "Please be at home." in await staff.inner_text()
    files = staff.locator(".attachments a")
    assert await files.all_inner_texts() == ["appointment.pdf", "Wegbeschreibung ü.txt"]
    async with page.expect_download() as download:
        await files.nth(1).click()
    got = await download.value
    assert got.suggested_filename == "Wegbeschreibung ü.txt"
    assert Path(await got.path()).read_bytes() == b"Second door on the left.\n"
    await page.fill("#f-body", "Street cabinet 5 was hit by lightning; more tickets likely.")
    await tab.submit("#note-button")
    note = page.locator(".msg-note")
    assert await note.count() == 1 and "internal" in (await note.inner_text()).lower()
    await shot(tab, "ticket")

    await page.select_option("#f-status", "resolved")
    await page.select_option("#f-priority", "medium")
    await tab.submit("#fields-form button")
    assert "Resolved" in await tab.h1()
    await shot(tab, "ticket-resolved", full_page=False)
    async with conn.transaction():
        status = await conn.fetchval("SELECT status FROM tickets WHERE id = $1", w.ticket_a)
        mailed = await conn.fetchval("SELECT count(*) FROM messages WHERE kind = 'ticket_reply'")
        kept = await conn.fetch("SELECT f.file_name, m.author FROM ticket_attachments f "
                                "JOIN ticket_messages m ON m.id = f.message_id WHERE m.author = 'staff' ORDER BY f.id")
    assert (status, mailed) == ("resolved", 1)
    assert [(r["file_name"], r["author"]) for r in kept] == [("appointment.pdf", "staff"),
                                                            ("Wegbeschreibung ü.txt", "staff")]


"""E-mail to ticket end to end, in Chromium on the admin with a real IMAP server (dovecot): a
customer's mail sent to the inbox becomes a ticket, an agent replies through the ticket's page,
the customer's answer to that reply (threaded by In-Reply-To) lands in the same ticket, and the
SLA report shows the first response; screenshots of the ticket and the report."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from admin.tickets import intake, intake_store
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import PHONE, Browse, Tab
from tests.integration.tickets.conftest import Dovecot, deliver, dovecot  # noqa: F401  (the fixture)

SHOTS = Path("/tmp/shots")


async def read(admin: Admin) -> dict[str, int]:
    async with admin.pool.acquire() as conn:
        row = (await intake_store.inboxes(conn))[0]
    done = await intake.read(admin.pool, intake.inbox_of(row, admin.keyring, timeout=5.0), stop=asyncio.Event(),
                             seconds=0)
    assert done.error == ""
    return dict(done.outcomes)


async def test_a_mail_becomes_a_ticket_the_reply_threads_and_the_sla_report_counts_it(
        conn: asyncpg.Connection, tab: Tab, browse: Browse, admin: Admin, dovecot: Dovecot) -> None:  # noqa: F811
    await make_admin(conn, "root")
    user = dovecot.user()
    pid = await conn.fetchval("INSERT INTO partners (name) VALUES ('Main Net') RETURNING id")
    await conn.execute("INSERT INTO customers (partner_id, number, name, email) "
                       "VALUES ($1, 'C000042', 'Anna Bauer', 'anna@example.at')", pid)
    await conn.execute(
        "INSERT INTO ticket_inboxes (partner_id, name, address, host, port, security, username, password) "
        "VALUES ($1, 'Support', 'support@isp.example', '127.0.0.1', $2, 'none', $3, $4)", pid, dovecot.port, user[0],
        admin.keyring.seal(user[1], intake_store.PASSWORD_PURPOSE))
    await deliver(dovecot, user, (
        b"From: Anna Bauer <anna@example.at>\r\nTo: support@isp.example\r\nSubject: No internet since the storm\r\n"
        b"Message-ID: <first@example.at>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0100\r\n\r\n"
        b"The router's light is red since last night.\r\n"))
    assert await read(admin) == {"created": 1}

    page = tab.page
    await tab.login("root")
    await tab.goto("/admin/tickets")
    async with page.expect_navigation():
        await page.click("main tbody a:text('No internet since the storm')")
    assert "No internet since the storm" in await tab.h1()
    assert "red since last night" in await page.locator(".msg-customer").inner_text()
    await page.fill("#f-body", "Please unplug the router for 30 seconds and tell us what the light does.")
    await tab.submit("#reply-button")
    assert "Waiting on customer" in await tab.h1()

    ours = await conn.fetchval("SELECT mail_id FROM ticket_messages WHERE author = 'staff'")
    subject = await conn.fetchval("SELECT subject FROM messages WHERE kind = 'ticket_reply'")
    await deliver(dovecot, user, (
        f"From: anna@example.at\r\nTo: support@isp.example\r\nSubject: {subject}\r\n"
        f"Message-ID: <second@example.at>\r\nIn-Reply-To: {ours}\r\nReferences: <first@example.at> {ours}\r\n"
        "Date: Tue, 01 Dec 2026 12:00:00 +0100\r\n\r\nIt is green now, thank you!\r\n\r\n"
        "On Tue, support wrote:\r\n> Please unplug the router\r\n").encode())
    assert await read(admin) == {"replied": 1}
    await tab.goto(page.url.split("?")[0].removeprefix(tab.base))  # again, without the last form's notice
    await page.evaluate("window.scrollTo(0, 0)")  # a full-page shot of a scrolled page draws the bar mid-page
    assert "Waiting on agent" in await tab.h1()
    messages = page.locator(".msg")
    assert await messages.count() == 3
    assert "It is green now" in await messages.nth(2).inner_text()
    assert "> Please unplug" not in await messages.nth(2).inner_text()  # the quoted history cut off
    await tab.shot("ticket")
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "tickets-mail-ticket.png"), full_page=True)

    async with page.expect_navigation():
        await page.click("nav.side a:text-is('Ticket reports')")
    sla = page.locator("table.sla tbody tr", has_text="root")
    cells = await sla.locator("td.num").all_inner_texts()
    assert cells == ["1", "0", "0", "0", "0", "0", "0", "1"]  # answered within 3 h
    await tab.shot("reports")
    await page.screenshot(path=str(SHOTS / "tickets-reports.png"), full_page=True)

    # on a phone: the thread and the report read without sideways scrolling of the page
    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    for path, name in (("/admin/tickets/1", "ticket-phone"), ("/admin/tickets/reports", "reports-phone")):
        await phone.goto(path)
        width = await phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, (path, width)
        await phone.page.screenshot(path=str(SHOTS / f"tickets-mail-{name}.png"), full_page=True)

"""The portal's support and profile pages in a real Chromium, at desktop and phone width (390 px:
nothing wider than the screen, document.documentElement.scrollWidth), with no console error nor
CSP violation: the tickets list (open first), a ticket's thread with staff's reply and files and
its reply form (a reply sent from it), a new ticket opened with a file, the profile with its
read-only and editable fields (an edit saved). Screenshots in var/screenshots/ and
/tmp/shots/portal-*.png."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from playwright.async_api import FilePayload

from admin.auth.store import Connection
from admin.tickets import store, uploads
from admin.tickets.automation import Author
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import PHONE, Browse, Tab, admin, browse, browser  # noqa: F401
from tests.integration.portal.conftest import PASSWORD, portal_customer

COPIES = Path("/tmp/shots")
NOTE = "Internal: check the splitter before calling back"


async def shot(tab: Tab, name: str) -> None:
    """The page's screenshot, once it passed the accessibility check (axe-core: no serious violations)."""
    await tab.axe()
    path = await tab.shot(name)
    COPIES.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, COPIES / f"portal-{name}.png")


async def tickets(conn: Connection, customer_id: int, partner_id: int) -> int:
    """Anna's tickets: one waiting on her with staff's reply, files and a note; one open; one closed."""
    agent = await make_admin(conn, "sarah", "technician")
    await conn.execute("UPDATE administrators SET name = 'Sarah from Support' WHERE id = $1", agent)
    now = dt.datetime.now(dt.UTC)

    async def new(subject: str, body: str, minutes: int, **kw: object) -> int:
        created = await store.create_ticket(conn, store.NewTicket(
            subject, body, "portal", partner_id=partner_id, customer_id=customer_id, requester_name="Anna Berger",
            **kw), now=now - dt.timedelta(minutes=minutes))  # type: ignore[arg-type]
        assert created is not None
        return created.ticket_id

    lights = uploads.attachment("router-lights.jpg", "image/jpeg", b"\xff\xd8\xff" + b"x" * 5000)
    main = await new("Internet drops every evening around 8 pm, the light on the router turns red",
                     "Since Monday the connection drops every evening.\nRestarting does not help.", 180,
                     priority="high", type="incident",
                     attachments=(lights,))
    await store.add_message(conn, main, store.NewMessage(
        Author.STAFF, "Thank you, Anna. We see errors on your line in the evening.\n\nCould you send us a photo "
                      "of the cable where it enters the house?", administrator_id=agent,
        attachments=(uploads.attachment("line-report.pdf", "application/pdf", b"%PDF-1.4 report"),)),
        now=now - dt.timedelta(minutes=90))
    await store.add_message(conn, main, store.NewMessage(Author.NOTE, NOTE, administrator_id=agent),
                            now=now - dt.timedelta(minutes=80))
    await new("Question about the invoice of March", "Why is it higher than usual?", 60)
    closed = await new("Move to a faster plan", "I would like 500 Mbit/s.", 3000)
    await store.set_fields(conn, closed, {"status": "resolved"}, now=now)
    return main


async def check(tab: Tab, size: str, main: int) -> None:
    await tab.portal_login("anna", PASSWORD)
    await tab.goto("/portal/tickets")
    assert await tab.h1() == "Support"
    opened = 0 if size == "desktop" else 1  # the ticket the desktop run opened
    assert await tab.page.locator("#t-open + .tickets li").count() == 2 + opened
    assert await tab.page.locator("#t-closed + .tickets li").count() == 1
    await tab.fits()
    await shot(tab, f"tickets-{size}")

    await tab.goto(f"/portal/tickets/{main}")
    body = await tab.page.inner_text("main")
    assert "Sarah from Support" in body and "line-report.pdf" in body and NOTE not in body
    assert await tab.page.locator("#reply-form textarea").is_visible()
    await tab.fits()
    await shot(tab, f"ticket-{size}")
    await tab.page.fill("#f-body", f"Here is the photo ({size}).")
    photo: FilePayload = {"name": "cable.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff" + b"y" * 3000}
    await tab.page.set_input_files("#f-files", files=[photo])
    await tab.submit("#reply-form button[type=submit]")
    assert "Your message is sent." in await tab.page.inner_text("[role=status]")
    assert "cable.jpg" in await tab.page.inner_text(".thread")
    assert "Waiting on agent" in await tab.page.inner_text(".ticket-facts")
    await tab.fits()
    await shot(tab, f"ticket-replied-{size}")

    await tab.goto("/portal/tickets/new")
    await tab.fits()
    await shot(tab, f"ticket-new-{size}")
    await tab.page.fill("#f-subject", f"Wi-Fi does not reach the garden ({size})")
    await tab.page.select_option("#f-type", "question")
    await tab.page.fill("#f-body", "Is there a repeater you can recommend?")
    await tab.submit("#new-ticket button[type=submit]")
    assert "Your ticket is open" in await tab.page.inner_text("[role=status]")

    await tab.goto("/portal/profile")
    assert await tab.h1() == "Profile"
    assert await tab.page.locator("#contact-view dd").count() >= 1
    await tab.fits()
    await shot(tab, f"profile-{size}")
    await tab.page.fill("#f-phone", "+43 660 123 45 67")
    await tab.submit("#contact-form button[type=submit]")
    assert "Your details are saved." in await tab.page.inner_text("[role=status]")
    await tab.fits()


async def test_support_and_profile_at_desktop_and_phone_width(admin: Admin, browse: Browse) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna", name="Anna Berger", email="anna.berger@example.net",
                                 phone="+43 1 555 0101", street="Hauptstraße 12/3", city="Linz", zip="4020")
    async with admin.pool.acquire() as conn:
        partner_id = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", anna)
        main = await tickets(conn, anna, partner_id)
    for size, options in (("desktop", {}), ("phone", {"viewport": PHONE, "is_mobile": True})):
        tab = await browse(**options)
        tab.expect_error(r"/favicon\.ico")  # base.html links no icon while the brand has no logo
        await check(tab, size, main)

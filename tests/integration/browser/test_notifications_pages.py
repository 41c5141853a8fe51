"""Notifications' pages in a real browser: the messages log with a failed message (it stands out,
says why, shows its email in a sandboxed frame) retried; the template editor: a broken template
checked (its line), the last invoice previewed (its number in the framed email; an SMS with its
count), the template saved; the announcement form counting who it reaches. Screenshots in
var/screenshots/notifications_pages-<page>.png, desktop and a 390 px phone."""

from __future__ import annotations

import asyncpg

from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.admin.notifications_pages import add_message, customer_of, invoice, two_partners
from tests.integration.browser.conftest import PHONE, SHOTS, Browse

EMAIL = ('<html><head><title>Invoice</title></head><body style="font-family:sans-serif">'
         '<p style="color:#1f5fbf">Dear {name},</p><p>your invoice {number} is attached.</p>'
         '<script>document.title = "owned"</script></body></html>')
TEMPLATE = ("<p>Dear {{ customer.name }},</p>\n<p style=\"font-weight:bold\">Invoice {{ document.number }} "
            "is ready.</p>")


async def test_notifications_pages(conn: asyncpg.Connection, admin: Admin, browse: Browse) -> None:
    """A failed message retried; a template checked, previewed and saved; an announcement counted."""
    await make_admin(conn, "root")
    demo_id, _ = await two_partners(conn)
    ann, bob = await customer_of(conn, demo_id), await customer_of(conn, demo_id, 1)
    doc = await invoice(conn, ann["id"])
    await add_message(conn, bob, kind="payment", body="<p>Thank you for your payment.</p>")
    await add_message(conn, bob, kind="reminder_1", channel="sms", body="Reminder: 40.00 EUR due. Thank you!")
    failed = await add_message(conn, ann, status="failed", document_id=doc["id"], attachments=[doc["id"]],
                               subject=f"Invoice {doc['number']}", bcc="books@isp.example",
                               body=EMAIL.format(name=ann["name"], number=doc["number"]))
    tab = await browse()
    page = tab.page
    sandboxed = r"Blocked script execution in 'about:srcdoc' because the document's frame is sandboxed"
    tab.expect_error(sandboxed)  # the failed email's <script>: the frame refuses it, as it must
    await tab.login("root")

    # The log: the failed one stands out, with why; its page frames the email, scriptless.
    await tab.goto("/admin/notifications/messages")
    assert "1 failed" in " ".join((await page.inner_text("#status-counts a.alarm")).split())
    assert "550 5.1.1 mailbox unavailable" in await page.inner_text("tr.st-failed")
    await tab.shot("messages")
    async with page.expect_navigation():
        await page.click(f"tr.st-failed a[href='/admin/notifications/messages/{failed}']")
    assert "Invoice" in await tab.h1() and "failed" in await tab.h1()
    assert "550 5.1.1 mailbox unavailable" in await page.inner_text("#last-error")
    frame = page.frame_locator("iframe.body")
    assert f"your invoice {doc['number']} is attached" in await frame.locator("body").inner_text()
    assert await frame.locator("body").evaluate("b => getComputedStyle(b.querySelector('p')).color") \
        == "rgb(31, 95, 191)"  # the email's own inline style applies inside its frame
    assert await page.title() != "owned"
    assert f"{doc['number']}.pdf" in await page.inner_text("#attachments")
    await tab.shot("message-failed")
    await page.locator("iframe.body").screenshot(path=str(SHOTS / "notifications_pages-message-frame.png"))
    await tab.submit("#retry button")
    assert "Scheduled again" in await page.inner_text("p.notice")
    assert "scheduled" in await tab.h1()
    assert await conn.fetchval("SELECT status FROM messages WHERE id = $1", failed) == "scheduled"
    await tab.shot("message-retried")

    # The editor: a broken template checked, the last invoice previewed, then saved.
    await tab.goto("/admin/notifications/templates")
    await tab.shot("templates")
    async with page.expect_navigation():
        await page.click("a[data-cell='invoice.email']")
    assert "Invoice" in await tab.h1()
    assert "the built-in one" in await page.inner_text("#template-source")
    assert "customer" in await page.inner_text("#variables")
    await page.fill("#f-body", TEMPLATE.replace("customer.name", "customer.nmae"))
    await tab.submit("#check")
    errors = await page.inner_text("#template-errors")
    assert "line 1" in errors and "nmae" in errors, errors
    await tab.shot("template-checked")
    await page.fill("#f-body", TEMPLATE)
    await tab.submit("#check")
    assert "No errors" in await page.inner_text("#check-ok")
    await tab.submit("#preview")
    assert "the last invoice" in await page.inner_text("#preview-result")
    shown = page.frame_locator("#preview-frame").locator("body")
    assert f"Invoice {doc['number']} is ready." in await shown.inner_text()
    assert ann["name"] in await shown.inner_text()
    assert doc["number"] in await page.inner_text("#preview-subject")
    await tab.shot("template-preview")
    # A full-page screenshot may leave the sandboxed frame blank (headless Chromium paints it apart): its own too.
    await page.locator("#preview-frame").screenshot(path=str(SHOTS / "notifications_pages-template-preview-frame.png"))
    await tab.submit("#save")
    assert "Template saved" in await page.inner_text("p.notice")
    assert "the default" in await page.inner_text("#template-source")
    assert await conn.fetchval("SELECT body FROM message_templates WHERE kind = 'invoice' AND channel = 'email' "
                               "AND partner_id IS NULL") == TEMPLATE
    await tab.shot("template-saved")
    async with page.expect_navigation():
        await page.click("nav.tabs a:text-is('SMS')")
    await tab.submit("#preview")
    assert "SMS" in await page.inner_text("#sms-count")
    await tab.shot("template-sms-preview")

    # The announcement form says whom it reaches before anything is sent.
    await tab.goto("/admin/notifications/announcements/new")
    await page.fill("#f-subject", "Faster fibre")
    await page.fill("#f-body", "Twice the speed, same price.")
    await page.check("input[name=marketing]")
    await tab.submit("#count")
    assert "customers match" in await page.inner_text("#reach")
    await tab.shot("announce")
    assert await conn.fetchval("SELECT count(*) FROM messages WHERE kind = 'announcement'") == 0

    phone = await browse(viewport=PHONE, is_mobile=True)
    phone.expect_error(sandboxed)
    await phone.login("root")
    for name, path in (("messages-phone", "/admin/notifications/messages"),
                       ("message-phone", f"/admin/notifications/messages/{failed}"),
                       ("templates-phone", "/admin/notifications/templates"),
                       ("template-phone", "/admin/notifications/templates/edit?kind=reminder_1&channel=sms"),
                       ("announce-phone", "/admin/notifications/announcements/new")):
        await phone.goto(path)
        await phone.shot(name)

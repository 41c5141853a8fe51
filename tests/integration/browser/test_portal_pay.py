"""Paying online from the portal in a real Chromium, at desktop and phone width, through
localstripe's own Stripe.js (tests/fakes/localstripe.py): the customer logs in, pays an invoice
with the test card 4242 4242 4242 4242 typed into the card element, sees it paid and its balance
change, saves another card on the cards page and turns autopay on. No console error, no CSP
violation (the page lets in the gateway's origin only). Screenshots in
var/screenshots/pay_an_invoice_and_save_a_card_in_the_browser-*.png."""

from __future__ import annotations

import re

from playwright.async_api import Page

from tests.db.test_payments_online import CARD_OK, localstripe, use_stripe
from tests.fakes.localstripe import LocalStripe
from tests.integration.admin.conftest import Admin
from tests.integration.browser.conftest import PHONE, Browse, Tab, admin, browse, browser  # noqa: F401
from tests.integration.portal.conftest import PASSWORD, portal_customer
from tests.integration.portal.test_dashboard import invoice

__all__ = ["localstripe"]  # a fixture


async def type_card(page: Page, number: str = CARD_OK) -> None:
    """The card into localstripe's card element (its inputs are named by their placeholders)."""
    box = page.locator("#card-element")
    for field, value in (("number", number), ("exp_month", "12"), ("exp_year", "30"), ("cvc", "123"),
                         ("postal_code", "10115")):
        await box.locator(f"input[placeholder={field}]").fill(value)


async def test_pay_an_invoice_and_save_a_card_in_the_browser(
        admin: Admin, browse: Browse, localstripe: LocalStripe) -> None:  # noqa: F811
    async with admin.pool.acquire() as conn:
        # Stripe.js in the browser talks to localstripe itself (it answers CORS; the idempotency
        # proxy in front of it does not pass those headers on)
        await use_stripe(conn, admin.keyring, localstripe.direct)
    for size, options in (("desktop", {}), ("phone", {"viewport": PHONE, "is_mobile": True})):
        name = f"pay-{size}"
        cid = await portal_customer(admin, login=name, name=f"Anna {size.title()}")
        async with admin.pool.acquire() as conn:
            doc = await invoice(conn, cid, "24.17", "4.83")
        tab = await browse(**options)
        tab.expect_error(r"/favicon\.ico")
        tab.expect_error(r"status of 422 .*/portal/finance/top-up")               # the amount refused, on purpose
        page = tab.page
        await tab.portal_login(name, PASSWORD)
        await tab.goto("/portal/finance")
        assert "29.00 EUR" in await page.inner_text(".balance .figure")
        await tab.fits()
        await tab.axe(exclude=("#card-element",))  # Stripe.js's own fields
        await tab.shot(f"finance-{size}")
        await page.click(f"a[href='/portal/finance/documents/{doc.id}/pay']")
        await page.wait_for_selector("#card-element input[placeholder=number]")
        assert await tab.h1() == f"Pay Invoice {doc.number}"
        await type_card(page)
        await tab.fits()
        await tab.axe(exclude=("#card-element",))  # Stripe.js's own fields
        await tab.shot(f"pay-{size}")
        async with page.expect_navigation(url=re.compile(r"/portal/finance/online/[0-9]+")):
            await page.click("#pay-button")
        assert (await page.inner_text("#result h2")).strip() == "Paid"
        result = await page.inner_text("#result")
        assert "29.00 EUR paid on Invoice" in result and "Your balance now: 0.00 EUR" in result, result
        await tab.fits()
        await tab.axe(exclude=("#card-element",))  # Stripe.js's own fields
        await tab.shot(f"paid-{size}")
        await tab.goto("/portal/finance")
        assert "0.00 EUR" in await page.inner_text(".balance .figure")
        assert await page.locator(f"a[href='/portal/finance/documents/{doc.id}/pay']").count() == 0

        await tab.goto("/portal/finance/cards")
        assert await page.locator(".saved-card").count() == 1                 # the card it paid with, kept
        await type_card(page)
        await page.check("input[name=autopay]")
        async with page.expect_navigation(url=re.compile(r"done=saved")):
            await page.click("#card-button")
        assert "Your card is saved." in await page.inner_text("main")
        assert await page.locator(".saved-card").count() == 2
        assert await page.locator(".autopay.on").count() == 1
        await tab.submit(".saved-card:first-child button:has-text('Turn autopay on')")
        assert "Autopay is on" in await page.inner_text("main .notice")
        assert await page.locator(".autopay.on").count() == 2
        await tab.fits()
        await tab.axe(exclude=("#card-element",))  # Stripe.js's own fields
        await tab.shot(f"cards-{size}")
        await tab.goto("/portal/finance/top-up")
        assert await page.locator("input[name=card]:checked").count() == 1      # a saved card, chosen
        assert await page.is_hidden("[data-new-card-box]")
        await page.check("input[value=new]")
        await page.wait_for_selector("#card-element input[placeholder=number]")
        await page.check(".cards-choice input[type=radio] >> nth=0")             # back to the saved card
        assert await page.is_hidden("[data-new-card-box]")
        await page.fill("#amount", "1.234")
        await tab.submit("#pay-button")
        assert "EUR has 2 decimals" in await page.inner_text("#pay-error")
        await tab.fits()
        await tab.axe(exclude=("#card-element",))  # Stripe.js's own fields
        await tab.shot(f"top-up-refused-{size}")
        await page.fill("#amount", "10.00")
        await tab.submit("#pay-button")
        result = await page.inner_text("#result")
        assert "10.00 EUR added to your balance" in result and "10.00 EUR in credit" in result, result
        async with admin.pool.acquire() as conn:
            rows = await conn.fetch("SELECT brand, last4, autopay FROM payment_methods WHERE customer_id = $1 "
                                    "AND removed_at IS NULL ORDER BY id", cid)
            paid = await conn.fetchval("SELECT count(*) FROM payments WHERE customer_id = $1", cid)
        assert [(r["brand"], r["last4"], r["autopay"]) for r in rows] == [("visa", "4242", True)] * 2
        assert paid == 2

"""Online payments in a real browser: Finance -> Payment gateways (save Stripe's keys, test the
connection against localstripe, find a customer's cards), and a customer's saved cards (autopay
on, an online payment refunded through Stripe), on a desktop and a phone. Screenshots in
var/screenshots/gateway_settings_and_a_customers_cards-*.png."""

from __future__ import annotations

from playwright.async_api import Dialog

from admin.payments import online
from tests.db.test_payments_online import CARD_OK, invoiced, localstripe, save_card, use_stripe
from tests.fakes.localstripe import LocalStripe
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import PHONE, Browse

__all__ = ["localstripe"]  # a fixture


async def test_gateway_settings_and_a_customers_cards(admin: Admin, browse: Browse, localstripe: LocalStripe) -> None:
    cid, invoice = await invoiced(admin.pool)
    async with admin.pool.acquire() as conn:
        await make_admin(conn, "root")
        await use_stripe(conn, admin.keyring, localstripe.url)
        gateways = online.Gateways(admin.keyring)
        stripe = await gateways.get(conn, "stripe")
        card = await save_card(conn, stripe, localstripe, cid, CARD_OK)
        paid = await online.start(conn, stripe, customer_id=cid, purpose="invoice", key="browser-1",
                                  document_id=invoice, method_id=card["id"])
        await gateways.close()
        number = await conn.fetchval("SELECT number FROM customers WHERE id = $1", cid)
    assert paid.status == "succeeded"
    tab = await browse()
    page = tab.page

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.on("dialog", accept)
    await tab.login("root")
    await tab.goto("/admin/finance/gateways")
    assert await tab.h1() == "Payment gateways"
    assert await page.is_visible("nav >> text=Payment gateways")
    assert f"{admin.url}/hooks/stripe" in await page.inner_text("#gateway-stripe")
    assert "sk_test_…mile" in await page.inner_text("#gateway-stripe")
    await tab.shot("gateways")
    await page.fill("#form-stripe #f-publishable_key", "pk_test_from_the_browser")
    await page.fill("#form-stripe #f-webhook_secret", "whsec_from_the_browser")
    await tab.submit("#form-stripe button[type=submit]")
    assert "Stripe: saved." in await page.inner_text("main")
    assert await page.input_value("#form-stripe #f-webhook_secret") == ""          # never written back
    assert "previous one still accepted" in await page.inner_text("#gateway-stripe")
    await tab.submit("#test-stripe button[type=submit]")
    assert "Stripe answered (test mode)" in await page.inner_text("#tested")
    await tab.shot("gateways-tested")

    await page.fill("#f-customer", number)
    await tab.submit("#find-cards button[type=submit]")
    assert await tab.h1() == "Saved cards"
    assert "visa •••• 4242, 12/2030" in await page.inner_text("#cards")
    await tab.submit("#cards button:has-text('Off: turn on')")
    assert "Autopay changed" in await page.inner_text("main")
    assert await page.is_visible("#cards button:has-text('On: turn off')")
    assert "succeeded" in await page.inner_text("#attempts")
    await tab.shot("cards")
    await page.fill("#attempts input[name=reason]", "asked by phone")
    await tab.submit("#attempts button:has-text('Refund')")
    assert "Refunded: the payment is taken back." in await page.inner_text("main")
    assert "refunded" in await page.inner_text("#attempts")
    await tab.shot("cards-refunded")
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT refund_ref FROM payment_reversals") is not None
        assert await conn.fetchval("SELECT autopay FROM payment_methods WHERE id = $1", card["id"]) is True

    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    for path, name in ((f"/admin/customers/{cid}/cards", "cards-phone"), ("/admin/finance/gateways", "gateways-phone")):
        await phone.goto(path)
        width = await phone.page.evaluate("() => [document.documentElement.scrollWidth, "
                                          "document.documentElement.clientWidth]")
        assert width[0] <= width[1], (path, width)                      # wide tables scroll in their own box
        await phone.shot(name)

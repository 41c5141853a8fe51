"""Percentage mode's commissions in a real browser (issue 18): the ISP's administrator sees the
commissions of a partner after its customer's payments, issues the month's statement, records
a payout against it, and sees what is owed go to zero; a phone shows the partner's page without
scrolling sideways. Screenshots in var/screenshots/partner_commissions-*.png."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import asyncpg

from admin.billing import ledger
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.admin.test_partner_commissions import MONTH, VAT, compute, customer, invoice, partner, pay
from tests.integration.browser.conftest import PHONE, Browse

TODAY = dt.datetime.now(dt.UTC).date()


async def test_partner_commissions(conn: asyncpg.Connection, admin: Admin, browse: Browse) -> None:
    reseller = await partner(conn, "Reseller Net")
    await partner(conn, "Quiet Partner")
    cid, service, _ = await customer(conn, reseller, "C00001")
    doc = await invoice(conn, cid, reseller, ledger.NewLine("Internet 100", Decimal("100.00"), VAT,
                                                            service_id=service))
    await pay(conn, cid, "50.00", doc)
    await pay(conn, cid, "70.00", doc)
    assert await compute(conn) == 2  # the worker's partners.commissions job
    await make_admin(conn, "root")

    tab = await browse()
    page = tab.page
    await tab.login("root")
    await tab.goto("/admin/partners/commissions")
    assert await tab.h1() == "Commissions"
    row = page.locator("#owed tbody tr", has_text="Reseller Net")
    assert "10.00" in await row.locator("td.owed").inner_text()
    await tab.axe()
    await tab.shot("owed")

    async with page.expect_navigation():
        await row.locator("a").click()
    assert await tab.h1() == "Commissions of Reseller Net"
    amounts = [t.strip() for t in await page.locator("#commissions tbody td:nth-child(6)").all_inner_texts()]
    assert amounts == ["4.17 EUR", "5.83 EUR"]
    assert "10.00 EUR" in await page.inner_text("#commissions tfoot")
    await tab.axe()
    await tab.shot("partner")

    await tab.submit("#issue")
    number = f"CS-{reseller}-{MONTH:%Y-%m}"
    assert await tab.h1() == f"Commission statement {number}"
    assert "10.00 EUR" in await page.inner_text("#statement-total")
    assert await page.locator("#statement-lines tbody tr").count() == 2
    await tab.axe()
    await tab.shot("statement")

    async with page.expect_navigation():
        await page.click("a:text-is('Reseller Net')")
    await page.fill("#f-amount", "10.00")
    await page.fill("#f-reference", "SEPA 2026-001")
    await page.select_option("#f-statement_id", label=f"{number} (10.00 EUR)")
    await tab.shot("payout-form")
    await tab.submit("#record-payout")
    assert "Payout recorded" in await page.inner_text("main")
    assert "SEPA 2026-001" in await page.inner_text("#payout-list")
    assert "0.00" in await page.inner_text("#partner-owed td.owed")
    assert number in await page.inner_text("#issued")
    assert await page.locator("#issue").count() == 0  # the month is issued
    await tab.axe()
    await tab.shot("paid")

    await tab.goto("/admin/partners/commissions")
    assert (await page.locator("#owed tbody tr", has_text="Reseller Net").locator("td.owed").inner_text()).strip() \
        == "0.00"
    await tab.shot("owed-zero")
    await tab.goto("/admin/partners/commissions/payouts")
    assert "SEPA 2026-001" in await page.inner_text("#payouts")
    await tab.goto("/admin/partners/commissions/statements")
    assert number in await page.inner_text("#statements")
    await tab.shot("statements")

    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    await phone.goto(f"/admin/partners/commissions/{reseller}")
    await phone.fits()
    await phone.shot("phone")

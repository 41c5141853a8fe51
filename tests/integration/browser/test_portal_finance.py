"""The portal's dashboard and finance pages in a real Chromium, at desktop and phone width (390
px: nothing wider than the screen, document.documentElement.scrollWidth), with no console error
nor CSP violation (the chart is CSS, no script); screenshots in var/screenshots/ and
/tmp/shots/portal-*.png."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

from admin.billing import ledger
from tests.integration.admin.conftest import Admin
from tests.integration.browser.conftest import PHONE, Browse, Tab, admin, browse, browser  # noqa: F401
from tests.integration.portal.conftest import PASSWORD, portal_customer
from tests.integration.portal.test_dashboard import invoice, pay, portal_message, service

TODAY = dt.datetime.now(dt.UTC).date()
COPIES = Path("/tmp/shots")


async def shot(tab: Tab, name: str) -> None:
    """The page's screenshot, once it passed the accessibility check (axe-core: no serious violations)."""
    await tab.axe()
    path = await tab.shot(name)
    COPIES.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, COPIES / f"portal-{name}.png")


async def customer_with_history(app: Admin) -> int:
    anna = await portal_customer(app, login="anna", name="Anna Berger")
    async with app.pool.acquire() as conn:
        await service(conn, anna, "anna-fibre")
        for months_ago in range(6, 0, -1):
            on = TODAY - dt.timedelta(days=30 * months_ago)
            bill = await invoice(conn, anna, "24.17", "4.83", on=on)
            await pay(conn, anna, "29.00" if months_ago != 2 else "15.00", on + dt.timedelta(days=3))
            if months_ago == 4:
                async with conn.transaction():
                    await ledger.credit_note(conn, bill.id, "outage of two days", "test", Decimal("2.00"))
        await invoice(conn, anna, "29.00", on=TODAY - dt.timedelta(days=2))
        await invoice(conn, anna, "12.00", kind="proforma")
        await portal_message(conn, anna, "Planned maintenance on Tuesday night")
    return anna


async def test_dashboard_and_finance_at_desktop_and_phone_width(admin: Admin, browse: Browse) -> None:  # noqa: F811
    await customer_with_history(admin)
    for size, options in (("desktop", {}), ("phone", {"viewport": PHONE, "is_mobile": True})):
        tab = await browse(**options)
        tab.expect_error(r"/favicon\.ico")  # base.html links no icon while the brand has no logo
        await tab.portal_login("anna", PASSWORD)
        await tab.goto("/portal/")
        assert "You owe" in await tab.page.inner_text(".balance .explained")
        await tab.fits()
        await shot(tab, f"dashboard-{size}")
        await tab.goto("/portal/finance")
        assert await tab.page.locator(".bars li").count() == 12
        await tab.fits()
        await shot(tab, f"finance-{size}")
        await tab.goto("/portal/finance/invoices")
        assert await tab.page.locator(".doclist li").count() == 7
        await tab.fits()
        await shot(tab, f"invoices-{size}")
        async with tab.page.expect_download() as download:
            await tab.page.click(".doclist li:first-child a.pdf")
        assert (await download.value).suggested_filename.startswith("invoice-")

"""Partners in a real browser: create a partner and a sub-partner under it, schedule percentage mode
from next month, choose the tariffs it sells; the tree and the partner's page on a desktop and a
phone. Screenshots in var/screenshots/partners_*.png."""

from __future__ import annotations

from decimal import Decimal

from admin.partners import partners
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import PHONE, Browse


async def test_partners(admin: Admin, browse: Browse) -> None:
    async with admin.pool.acquire() as conn:
        await make_admin(conn, "root")
        fibre = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps, price) "
                                    "VALUES ('Fibre 100', 100000, 20000, $1) RETURNING id", Decimal("29.90"))
        await conn.execute("INSERT INTO tariffs (name, download_kbps, upload_kbps, price) "
                           "VALUES ('Air 20', 20000, 5000, $1)", Decimal("19.90"))
    tab = await browse()
    page = tab.page
    await tab.login("root")
    await tab.goto("/admin/partners")
    assert await tab.h1() == "Partners"
    assert await page.is_visible("nav >> text=Partners")
    await page.click("text=New partner")
    await page.fill("#f-name", "Northwind Net")
    await page.fill("#f-legal_name", "Northwind Net GmbH")
    await page.fill("#f-city", "Graz")
    await page.fill("#f-country", "at")
    await page.fill("#f-iban", "DE89 3704 0044 0532 0130 00")
    await page.fill("#f-commission_percent", "12.5")
    await tab.shot("form")
    await tab.submit("#partner-form button[type=submit]")
    assert await tab.h1() == "Northwind Net"
    assert "Partner created." in await page.inner_text("main")
    assert "COBADEFFXXX" in await page.inner_text("#details")
    parent_url = page.url.split("?")[0]

    await page.click("text=New sub-partner")
    assert await page.input_value("#f-parent_id") != ""
    await page.fill("#f-name", "Northwind Valley")
    await page.fill("#f-city", "Leoben")
    await tab.submit("#partner-form button[type=submit]")
    assert await tab.h1() == "Northwind Valley"
    assert "Northwind Net" in await page.inner_text("#details")

    await page.goto(parent_url)
    assert "Northwind Valley" in await page.inner_text("#sub-partners")
    earliest = str(partners.earliest_change(partners.today()))
    assert await page.input_value("#f-starts_on") == earliest
    await page.select_option("#f-mode", "percentage")
    await tab.submit("#schedule-mode button[type=submit]")
    assert "Mode change scheduled." in await page.inner_text("main")
    history = await page.inner_text("#mode-history")
    assert earliest in history and "scheduled" in history
    await page.check(f"#t-{fibre}")
    await tab.submit("#tariffs-form button[type=submit]")
    assert "The tariffs it may sell are saved." in await page.inner_text("main")
    assert await page.is_checked(f"#t-{fibre}")
    assert "this partner" in await page.inner_text("#tariffs")
    await tab.shot("detail")
    await tab.axe()

    await tab.goto("/admin/partners")
    rows = await page.inner_text("#partners")
    assert rows.index("Northwind Net") < rows.index("Northwind Valley")
    assert f"percentage from {earliest}" in rows
    await tab.shot("list")

    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    for path, name in (("/admin/partners", "list-phone"), (parent_url.removeprefix(admin.url), "detail-phone")):
        await phone.goto(path)
        await phone.fits()
        await phone.shot(name)

"""Staff's portal pages in Chromium: a brand edited through its form (a colour, a section taken
off the menu, custom CSS refused then taken), its preview at desktop and phone width, publishing;
a customer's portal access page. Screenshots in var/screenshots/ (no CSP violation: the preview's
colours come from a stylesheet file, never an inline style)."""

from __future__ import annotations

import asyncpg

from tests.integration.admin.conftest import make_admin
from tests.integration.browser.conftest import PHONE, Browse, Tab

LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="32" viewBox="0 0 64 32">'
        '<rect width="64" height="32" rx="6" fill="#7a1fa2"/><circle cx="16" cy="16" r="8" fill="#fff"/></svg>')


async def _partner(conn: asyncpg.Connection) -> int:
    pid = int(await conn.fetchval("INSERT INTO partners (name) VALUES ('Violet Fibre') RETURNING id"))
    await conn.execute("INSERT INTO partner_branding (partner_id, company_name, logo_svg) VALUES ($1, $2, $3)",
                       pid, "Violet Fibre GmbH", LOGO)
    return pid


async def test_a_brand_is_edited_previewed_and_published(conn: asyncpg.Connection, tab: Tab, browse: Browse) -> None:
    await make_admin(conn, "root")
    pid = await _partner(conn)
    page = tab.page
    await tab.login("root")
    await tab.goto("/admin/portal/brands")
    await tab.shot("brands")
    await page.click(f"#brand-{pid} a")
    await page.wait_for_selector("#brand-form")
    await page.fill("#f-name", "Violet")
    await page.fill("#f-header_text", "Planned maintenance on Tuesday night, 01:00 to 03:00.")
    await page.fill("#f-footer_text", "Violet Fibre GmbH · Hauptstraße 1, 8010 Graz · +43 316 000000")
    await page.eval_on_selector("#f-accent_color", "(e, v) => { e.value = v; }", "#7a1fa2")
    await page.eval_on_selector("#f-background_color", "(e, v) => { e.value = v; }", "#f6f0fa")
    await page.uncheck("#menu-items input[value=usage]")
    await page.uncheck("#dashboard-items input[value=traffic]")
    await page.check("#access-phone-view")
    await page.fill("#f-custom_css", "@import url(https://fonts.example/violet.css);")
    tab.expect_error(r"status of 422 .*/admin/portal/brands/")  # refused on purpose
    await tab.submit("#save")
    assert "@import of https://fonts.example/violet.css is refused" in await page.inner_text("#e-custom_css")
    await tab.shot("brand-refused")
    await page.fill("#f-custom_css", ".card { border-radius: 18px; }\n.bar { border-bottom: 3px solid var(--accent); }")
    await tab.submit("#save")
    assert "Draft saved" in await page.inner_text("main .notice")
    await tab.shot("brand-editor")

    preview = await browse()
    await preview.login("root")
    await preview.goto(f"/admin/portal/brands/{pid}/preview")
    assert "preview of violet fibre" in (await preview.page.inner_text("#preview-banner")).lower()
    assert await preview.page.locator("[data-section=usage]").count() == 0
    assert await preview.page.locator("[data-item=traffic]").count() == 0
    accent = await preview.page.eval_on_selector(".menu a[aria-current=page]",
                                                 "e => getComputedStyle(e).borderBottomColor")
    assert accent == "rgb(122, 31, 162)", accent
    radius = await preview.page.eval_on_selector(".tiles .card", "e => getComputedStyle(e).borderTopLeftRadius")
    assert radius == "18px"
    await preview.axe()  # the portal's pages, in the brand (its colours: the contrast)
    await preview.shot("preview")

    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    await phone.goto(f"/admin/portal/brands/{pid}/preview")
    width = await phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width  # nothing wider than the phone
    await phone.axe()  # the portal's pages, in the brand (its colours: the contrast)
    await phone.shot("preview-phone")
    await phone.goto(f"/admin/portal/brands/{pid}")
    await phone.shot("brand-editor-phone")

    page.on("dialog", lambda d: d.accept())
    await tab.submit("#publish")
    assert "Published" in await page.inner_text("main .notice")
    row = await conn.fetchrow("SELECT published->>'accent_color' AS accent, updated_by FROM portal_brands "
                              "WHERE partner_id = $1", pid)
    assert row is not None and row["accent"] == "#7a1fa2" and row["updated_by"] == "root"


async def test_a_customer_s_portal_access_page(conn: asyncpg.Connection, tab: Tab, browse: Browse) -> None:
    await make_admin(conn, "root")
    pid = await conn.fetchval("INSERT INTO partners (name) VALUES ('Fibrenet') RETURNING id")
    customer_id = await conn.fetchval("INSERT INTO customers (partner_id, number, name) "
                                      "VALUES ($1, 'C0000001', 'Anna Berger') RETURNING id", pid)
    page = tab.page
    await tab.login("root")
    await tab.goto(f"/admin/customers/{customer_id}")
    await page.click("#portal-access-link")
    await page.wait_for_selector("#login-form")
    await page.fill("#f-login", "anna")
    await tab.submit("#login-form button[type=submit]")
    assert "Login saved." in await page.inner_text("main .notice")
    await page.fill("#f-password", "a password 123")
    await page.fill("#f-password2", "a password 123")
    await tab.submit("#password-form button[type=submit]")
    assert (await page.inner_text("#account-password")).startswith("set")
    await tab.shot("account")
    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    await phone.goto(f"/admin/portal/accounts/{customer_id}")
    await phone.shot("account-phone")

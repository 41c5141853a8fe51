"""The customer portal's login and security pages in a real browser, at desktop and phone width:
no console errors and no CSP violations (the brand's colours come as a stylesheet file), no serious
accessibility violations (axe-core), a login with a wrong then the right password, and the
two-factor QR code on the security page."""

from __future__ import annotations

from tests.integration.admin.conftest import Admin
from tests.integration.browser.conftest import PHONE, Browse, Tab
from tests.integration.portal.conftest import PASSWORD, partner, portal_customer

LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><circle cx="32" cy="32" r="28" '
        'fill="#0a7d4f"/><path d="M18 34l9 9 19-21" stroke="#fff" stroke-width="6" fill="none"/></svg>')


async def _brand(admin: Admin) -> None:
    pid = await partner(admin, "Fibrenet Regional")
    async with admin.pool.acquire() as conn:
        await conn.execute("INSERT INTO portal_brands (partner_id, published) VALUES ($1, $2)", pid,
                           {"accent_color": "#0a7d4f", "footer_text": "Fibrenet Regional GmbH · +43 732 123 456",
                            "header_text": "Planned maintenance on 12 March, 01:00-04:00."})
        await conn.execute("INSERT INTO partner_branding (partner_id, logo_svg) VALUES ($1, $2)", pid, LOGO)
    await portal_customer(admin, login="maria", name="Maria Huber", partner_id=pid)


async def _log_in(tab: Tab, login: str, password: str) -> None:
    await tab.goto("/portal/login")
    await tab.page.fill("#f-login", login)
    await tab.page.fill("#f-password", password)
    async with tab.page.expect_navigation():
        await tab.page.click("main button[type=submit]")


async def _check(tab: Tab, suffix: str) -> None:
    await tab.goto("/portal/login")
    assert await tab.h1() == "Log in"
    assert await tab.page.inner_text(".bar .brand .name") == "Fibrenet Regional"
    accent = await tab.page.eval_on_selector("main button[type=submit]", "b => getComputedStyle(b).backgroundColor")
    assert accent == "rgb(10, 125, 79)", accent  # the brand's colour, from /portal/brand.css
    width = await tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= tab.page.viewport_size["width"], width  # type: ignore[index]  # nothing wider than the screen
    await tab.axe()
    await tab.shot(f"login-{suffix}")
    await _log_in(tab, "maria", "not the password")
    assert "Wrong login or password." in await tab.page.inner_text("[role=alert]")
    tab.expect_error(r"status of 401")
    await tab.axe()
    await tab.shot(f"login-refused-{suffix}")
    await _log_in(tab, "maria", PASSWORD)
    await tab.goto("/portal/security")
    assert await tab.h1() == "Security"
    await tab.page.wait_for_selector(".qr svg")
    width = await tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= tab.page.viewport_size["width"], width  # type: ignore[index]
    await tab.axe()
    await tab.shot(f"security-{suffix}")
    await tab.submit(".bar .me button")  # log out
    assert "/portal/login" in tab.page.url


async def test_portal_login_and_security_pages(admin: Admin, browse: Browse) -> None:
    await _brand(admin)
    await _check(await browse(), "desktop")
    await _check(await browse(viewport=PHONE, is_mobile=True), "phone")

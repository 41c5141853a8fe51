"""The portal's services and usage pages in a real Chromium, at desktop and phone width (390 px:
nothing wider than the screen, document.documentElement.scrollWidth), with no console error nor
CSP violation: the usage charts are drawn (uPlot's canvases, not blank), a day of the daily chart
clicked opens its hours, the PPPoE password form changes the password. Screenshots in
var/screenshots/ and /tmp/shots/portal-*.png."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from admin.portal import usage
from tests.integration.admin.conftest import Admin
from tests.integration.browser.conftest import PHONE, Browse, Tab, admin, browse, browser  # noqa: F401
from tests.integration.portal.conftest import PASSWORD, portal_customer
from tests.integration.portal.test_usage import service, sessions, write

NOW = dt.datetime.now(dt.UTC)
COPIES = Path("/tmp/shots")


async def shot(tab: Tab, name: str) -> None:
    """The page's screenshot, once it passed the accessibility check (axe-core: no serious violations)."""
    await tab.axe()
    path = await tab.shot(name)
    COPIES.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, COPIES / f"portal-{name}.png")


async def customer_with_traffic(app: Admin) -> int:
    """Anna's two services; the first with traffic every hour of last month and this one (more in
    the evenings) and 30 sessions."""
    anna = await portal_customer(app, login="anna", name="Anna Berger")
    m = usage.months(NOW)
    async with app.pool.acquire() as conn:
        first = await service(conn, anna, "anna-fibre")
        await service(conn, anna, "anna-office")
        await conn.execute("UPDATE services SET ipv4 = '100.64.1.10/32' WHERE id = $1", first)
        await conn.execute("UPDATE tariffs SET price = 29.90, price_includes_tax = true")
        rows = []
        at = m.last
        while at <= NOW:
            evening = 4 if 18 <= at.hour <= 23 else 1
            day = (at - m.last).days
            rows.append((first, at, evening * (40_000_000 + (day * 7_000_000) % 90_000_000), evening * 4_000_000))
            at += dt.timedelta(hours=1)
        await write(conn, rows)
        await conn.execute("SELECT lastmile_rollup_traffic($1)", m.last)
        await sessions(conn, first, "anna-fibre", 30, prefix="a")
    return anna


async def drawn(tab: Tab, chart: str) -> None:
    """The chart's canvas is there, sized, and not blank (some pixel is painted)."""
    await tab.page.wait_for_selector(f"#{chart}[data-drawn] canvas")
    painted = await tab.page.evaluate(
        """(id) => { const c = document.querySelector('#' + id + ' canvas');
                     const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                     let n = 0; for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) { n += 1; } }
                     return [c.width, c.height, n]; }""", chart)
    width, height, pixels = painted
    assert width > 150 and height > 150 and pixels > 1000, (chart, painted)


async def test_services_and_usage_at_desktop_and_phone_width(admin: Admin, browse: Browse) -> None:  # noqa: F811
    await customer_with_traffic(admin)
    for size, options in (("desktop", {}), ("phone", {"viewport": PHONE, "is_mobile": True})):
        tab = await browse(**options)
        tab.expect_error(r"/favicon\.ico")  # base.html links no icon while the brand has no logo
        await tab.portal_login("anna", PASSWORD)
        await tab.goto("/portal/services")
        assert "Fibre" not in await tab.h1() and "Home anna-fibre" in await tab.page.inner_text("main")
        await tab.fits()
        await shot(tab, f"services-{size}")
        await tab.page.click("text=Details and PPPoE password >> nth=0")
        await tab.page.wait_for_selector("#password")
        await tab.fits()
        await shot(tab, f"service-{size}")
        await tab.goto("/portal/usage")
        await drawn(tab, "usage-days")
        await drawn(tab, "usage-hours")
        assert "In all:" in await tab.page.inner_text(".chart-note[data-for=usage-days]")
        await tab.fits()
        await shot(tab, f"usage-{size}")
    # desktop: a day of the daily chart clicked opens its hours; the password form works
    tab = await browse()
    tab.expect_error(r"/favicon\.ico")
    await tab.portal_login("anna", PASSWORD)
    await tab.goto("/portal/usage")
    await drawn(tab, "usage-days")
    box = await tab.page.locator("#usage-days .u-over").bounding_box()
    assert box is not None
    async with tab.page.expect_navigation():
        await tab.page.mouse.click(box["x"] + box["width"] * 0.05, box["y"] + box["height"] * 0.5)
    assert "day=" in tab.page.url and tab.page.url.endswith("#hours")
    await drawn(tab, "usage-hours")
    await tab.page.click("text=Services >> nth=0")
    await tab.page.click("text=Details and PPPoE password >> nth=0")
    await tab.page.fill("#password", "n3w-Secret!")
    await tab.page.fill("#repeat", "n3w-Secret!")
    await tab.submit("form.password button[type=submit]")
    assert "Your PPPoE password is changed" in await tab.page.inner_text("main")
    await shot(tab, "service-password-changed")

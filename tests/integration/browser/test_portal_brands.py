"""Two brands on one lastmile, told apart by the Host header, in a real browser: the ISP's own
portal on 127.0.0.1 and a partner's on localhost (both reach the same admin process), each with
its own name, logo and colours, at desktop and phone width; the partner's customer logs in on its
own host only. Screenshots in var/screenshots/two_brands_by_host_name-*.png."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.integration.admin.conftest import Admin
from tests.integration.browser.conftest import PHONE, Browse, Tab
from tests.integration.portal.conftest import PASSWORD, changed, partner, portal_customer

ISP_LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect x="6" y="6" width="52" height="52" '
            'rx="10" fill="#6b21a8"/></svg>')
PARTNER_LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><circle cx="32" cy="32" r="28" '
                'fill="#0a7d4f"/></svg>')
BRANDS = {"isp": ("Skyline ISP", "#6b21a8", "rgb(107, 33, 168)", ISP_LOGO),
          "partner": ("Valley Net", "#0a7d4f", "rgb(10, 125, 79)", PARTNER_LOGO)}


async def _brands(admin: Admin) -> str:
    """The ISP (the first partner, shown on any host nobody claims) and a partner on localhost:<port>;
    the partner's host name."""
    host = f"localhost:{urlsplit(admin.url).port}"
    ids = {"isp": await partner(admin, BRANDS["isp"][0]), "partner": await partner(admin, BRANDS["partner"][0],
                                                                                   host=host)}
    async with admin.pool.acquire() as conn:
        for which, (_, color, _, logo) in BRANDS.items():
            await conn.execute("INSERT INTO portal_brands (partner_id, published) VALUES ($1, $2)", ids[which],
                               {"accent_color": color, "footer_text": f"{BRANDS[which][0]} customer care"})
            await conn.execute("INSERT INTO partner_branding (partner_id, logo_svg) VALUES ($1, $2) "
                               "ON CONFLICT (partner_id) DO UPDATE SET logo_svg = EXCLUDED.logo_svg", ids[which], logo)
    changed(admin)
    await portal_customer(admin, login="vera", name="Vera Valley", partner_id=ids["partner"])
    return host


async def _shows(tab: Tab, base: str, which: str, shot: str) -> None:
    """The login page at ``base`` is ``which`` brand's: its name, its colour, its logo drawn."""
    name, _, rgb, _ = BRANDS[which]
    response = await tab.page.goto(f"{base}/portal/login")
    assert response is not None and response.status == 200
    assert await tab.page.inner_text(".bar .brand .name") == name
    accent = await tab.page.eval_on_selector("main button[type=submit]", "b => getComputedStyle(b).backgroundColor")
    assert accent == rgb, (which, accent)
    drawn = await tab.page.eval_on_selector(".bar .brand img.logo", "i => i.complete && i.naturalWidth > 0")
    assert drawn, f"{which}'s logo is not drawn"
    assert f"{name} customer care" in await tab.page.inner_text("footer")
    manifest = await tab.page.evaluate(
        "fetch(document.querySelector('link[rel=manifest]').href).then((r) => r.json())")
    assert manifest["name"] == name and manifest["theme_color"] == BRANDS[which][1]
    await tab.fits()
    await tab.axe()
    await tab.shot(shot)


async def _log_in(tab: Tab, base: str) -> str:
    await tab.page.goto(f"{base}/portal/login")
    await tab.page.fill("#f-login", "vera")
    await tab.page.fill("#f-password", PASSWORD)
    async with tab.page.expect_navigation():
        await tab.page.click("main button[type=submit]")
    return tab.page.url


async def test_two_brands_by_host_name(admin: Admin, browse: Browse) -> None:
    host = await _brands(admin)
    isp_base, partner_base = admin.url.rstrip("/"), f"http://{host}"
    for size, options in (("desktop", {}), ("phone", {"viewport": PHONE, "is_mobile": True})):
        tab = await browse(**options)
        await _shows(tab, isp_base, "isp", f"isp-{size}")
        await _shows(tab, partner_base, "partner", f"partner-{size}")
        # the partner's customer: not on the ISP's portal, logged in on its own
        assert "/portal/login" in await _log_in(tab, isp_base)
        assert "Wrong login or password." in await tab.page.inner_text("[role=alert]")
        tab.expect_error(r"status of 401")
        assert urlsplit(await _log_in(tab, partner_base)).path == "/portal/"
        assert await tab.page.inner_text(".bar .brand .name") == "Valley Net"
        await tab.shot(f"partner-dashboard-{size}")

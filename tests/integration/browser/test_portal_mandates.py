"""Direct-debit mandates in the portal in a real Chromium, at desktop and phone width: the
customer opens Finance → Direct debit, types a wrong IBAN (refused, said beside the field), signs
with the right one, sees it listed (masked), revokes it through the confirm page, and may sign
again. No console error, no CSP violation, no serious accessibility violation, nothing wider than
the window. Screenshots in var/screenshots/sign_and_revoke_a_mandate_in_the_browser-*.png."""

from __future__ import annotations

import re

from tests.integration.admin.conftest import Admin
from tests.integration.browser.conftest import PHONE, Browse, admin, browse, browser  # noqa: F401
from tests.integration.portal.conftest import PASSWORD, portal_customer
from tests.integration.portal.test_mandates import BAD_CHECKSUM, IBAN, creditor


async def test_sign_and_revoke_a_mandate_in_the_browser(admin: Admin, browse: Browse) -> None:  # noqa: F811
    await creditor(admin)
    for size, options in (("desktop", {}), ("phone", {"viewport": PHONE, "is_mobile": True})):
        name = f"dd-{size}"
        await portal_customer(admin, login=name, name=f"Anna {size.title()}")
        tab = await browse(**options)
        tab.expect_error(r"/favicon\.ico")
        tab.expect_error(r"status of 422 .*/portal/finance/direct-debit")  # the wrong IBAN, on purpose
        page = tab.page
        await tab.portal_login(name, PASSWORD)
        await tab.goto("/portal/finance")
        async with page.expect_navigation():
            await page.click("nav.subnav a[href='/portal/finance/direct-debit']")
        assert await tab.h1() == "Direct debit"
        assert "Lastmile Netz" in await page.inner_text("#sign")
        await tab.fits()
        await tab.axe()
        await tab.shot(f"form-{size}")

        await page.fill("#f-iban", BAD_CHECKSUM)
        await page.check("#f-consent")
        response = await tab.submit("#sign-button")
        assert response is not None and response.status == 422
        assert "check digits (88) do not match" in await page.inner_text("#e-iban")
        assert await page.get_attribute("#f-iban", "aria-invalid") == "true"
        await tab.fits()
        await tab.axe()
        await tab.shot(f"refused-{size}")

        await page.fill("#f-iban", IBAN)
        await page.check("#f-consent")
        await tab.submit("#sign-button")
        assert "Your mandate is signed" in await page.inner_text("main")
        row = page.locator(".mandate[data-status=active]")
        assert await row.count() == 1
        assert "DE •••• 3000" in await row.inner_text()
        assert await page.locator("#mandate-form").count() == 0
        await tab.fits()
        await tab.axe()
        await tab.shot(f"signed-{size}")

        async with page.expect_navigation(url=re.compile(r"/direct-debit/[0-9]+/revoke$")):
            await row.locator("a.revoke-link").click()
        assert (await tab.h1()).startswith("Revoke mandate LM-")
        await tab.fits()
        await tab.axe()
        await tab.shot(f"confirm-{size}")
        await tab.submit("#revoke-form button[type=submit]")
        assert "nothing more is collected" in await page.inner_text("main")
        assert await page.locator(".mandate[data-status=revoked]").count() == 1
        assert await page.locator("#mandate-form").count() == 1           # none active: a new one may be signed
        await tab.fits()
        await tab.axe()
        await tab.shot(f"revoked-{size}")

"""The portal's plan change in a real Chromium, at desktop and phone width (nothing wider than the
screen), with no console error nor CSP violation and no serious accessibility violation: the
customer opens its service, the plans it may move to, the preview of the amounts, confirms, and
sees the new plan with its credit note and invoice. Screenshots in var/screenshots/."""

from __future__ import annotations

import pytest

from admin.portal import plan
from tests.integration.admin.conftest import Admin
from tests.integration.browser.conftest import PHONE, Browse, Tab, admin, browse, browser  # noqa: F401
from tests.integration.portal.conftest import PASSWORD
from tests.integration.portal.test_plan import MID, setup


async def look(tab: Tab, name: str) -> None:
    await tab.fits()
    await tab.axe()
    await tab.shot(name)


async def test_the_customer_changes_its_plan_at_desktop_and_phone_width(
        admin: Admin, browse: Browse, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(plan, "today", lambda: MID)
    for size, name, options in (("desktop", "anna", {}), ("phone", "bob", {"viewport": PHONE, "is_mobile": True})):
        ids = await setup(admin, name, stop=True)
        tab = await browse(**options)
        tab.expect_error(r"/favicon\.ico")  # base.html links no icon while the brand has no logo
        await tab.portal_login(name, PASSWORD)
        await tab.goto(f"/portal/services/{ids['service']}")
        async with tab.page.expect_navigation():
            await tab.page.click("text=Change the plan, or stop for a while")
        main = await tab.page.inner_text("main")
        assert f"Small {name}" in main and "Stop for a while" in main
        await look(tab, f"plans-{size}")
        await tab.submit("text=See the amounts")
        main = await tab.page.inner_text("main")
        assert "120.00 EUR" in main and "66.00 EUR" in main and "You get 54.00 EUR back" in main, main
        await look(tab, f"preview-{size}")
        await tab.submit(f"text=Change to Small {name}")
        main = await tab.page.inner_text("main")
        assert f"Your plan: Small {name}" in main and "Your plan is changed" in main, main
        assert "Credit note" in main and "120.00 EUR" in main and "Invoice" in main and "66.00 EUR" in main
        await look(tab, f"changed-{size}")
        await tab.goto("/portal/services")
        assert f"Small {name}" in await tab.page.inner_text("main")

"""The layout itself: on a phone, from the keyboard, and under the Content-Security-Policy."""

from __future__ import annotations

import asyncpg

from daemons import demo
from tests.integration.admin.conftest import make_admin
from tests.integration.browser.conftest import PHONE, Browse, Tab
from tests.integration.conftest import eventually


async def test_on_a_phone_the_menu_opens_and_closes(conn: asyncpg.Connection, browse: Browse) -> None:
    await make_admin(conn, "root")
    await demo.load(conn, 5, seed=1)
    tab = await browse(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    await tab.login("root")
    assert await tab.h1() == "Dashboard"
    menu = tab.page.locator("nav.side ul")
    label = tab.page.locator("nav.side .menu-label")
    await label.wait_for(state="visible")
    await menu.wait_for(state="hidden")
    # Nothing wider than the phone: no sideways scrolling.
    width = await tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    box = await tab.page.locator("#search-box").bounding_box()
    assert box is not None and box["width"] > PHONE["width"] * 0.8  # the search box takes its own row
    await tab.shot("menu-closed")
    await label.tap()
    await menu.wait_for(state="visible")
    await tab.page.locator("nav.side a[aria-current=page]", has_text="Dashboard").wait_for(state="visible")
    await tab.shot("menu-open")
    await label.tap()
    await menu.wait_for(state="hidden")
    # A wide table scrolls inside its frame; the page itself still does not.
    await tab.goto("/admin/customers")
    await tab.page.locator("main table tbody tr").nth(4).wait_for()
    width = await tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    await tab.shot("customers")


async def test_slash_goes_to_the_search_box_and_escape_leaves_it(conn: asyncpg.Connection, tab: Tab) -> None:
    await make_admin(conn, "root")
    await tab.login("root")
    box = tab.page.locator("#search-box")
    assert not await box.evaluate("e => e === document.activeElement")
    await tab.page.keyboard.press("/")
    assert await box.evaluate("e => e === document.activeElement")
    await tab.page.keyboard.type("10.0.0.1/")  # in the box, "/" is just a character
    assert await box.input_value() == "10.0.0.1/"
    await tab.shot("search-focused", full_page=False)
    await tab.page.keyboard.press("Escape")
    assert not await box.evaluate("e => e === document.activeElement")


async def test_a_csp_violation_fails_the_page(conn: asyncpg.Connection, tab: Tab) -> None:
    """The check the other tests rely on: the policy blocks an inline script and the tab reports it."""
    await make_admin(conn, "root")
    await tab.login("root")
    assert tab.errors == []
    await tab.page.evaluate("""() => {
        const s = document.createElement("script"); s.textContent = "window.ran = true"; document.body.append(s);
        document.body.setAttribute("style", "background: red");
    }""")

    def seen(directive: str) -> bool:
        return any("CSP violation" in e and directive in e for e in tab.errors)

    await eventually(lambda: seen("script-src") and seen("style-src"))
    assert await tab.page.evaluate("window.ran === undefined")  # blocked
    assert tab.unexpected() != []  # what fails a test at its end...
    tab.expect_error("Content Security Policy|CSP violation")  # ...unless it said it provoked it, as here
    assert tab.unexpected() == []

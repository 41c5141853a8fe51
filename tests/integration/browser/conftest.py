"""A real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's async API) on the
admin app of tests/integration/admin/conftest.py.

Every tab collects the console's errors, uncaught exceptions and Content-Security-Policy
violations; a test whose pages produced any fails (at teardown), unless the test said it expects
that one (``tab.expect_error``: a 401 page after a wrong code, say). Screenshots go to
``var/screenshots/<test>-<page>.png``: the artefacts a reviewer looks at.

Without Chromium the tests skip with the reason; under CI a skip fails the run (tests/conftest.py),
and .ci/run installs the ``chromium`` package.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.resources
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, Request, Response, async_playwright

from tests.integration.admin import conftest as admin_fixtures
from tests.integration.admin.conftest import PASSWORD, Admin

admin = admin_fixtures.admin  # the admin app on 127.0.0.1 (a fixture), for the tests here

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path(os.environ.get("LASTMILE_CHROMIUM", "/usr/bin/chromium"))
SHOTS = ROOT / "var" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000

# Reported to the console as an error by the page itself, so a violation never passes unseen even
# where Chromium would only print its own warning. Init scripts run outside the page's CSP.
_CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the session (a launch costs ~0.5 s); each test gets its own context."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium; "
                    ".ci/run installs it)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                    args=["--no-sandbox"])  # we run as root
        try:
            yield chromium
        finally:
            await chromium.close()


class Tab:
    """One browser tab on the admin, with what went wrong in it and screenshots named after the test."""

    def __init__(self, page: Page, base: str, test: str) -> None:
        self.page = page
        self.base = base
        self.test = test
        self.errors: list[str] = []
        self.expected: list[re.Pattern[str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught exception: {e}"))
        page.on("requestfailed", self._failed)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.errors.append(f"console error: {message.text} ({where})")

    def _failed(self, request: Request) -> None:
        if request.failure != "net::ERR_ABORTED":  # cut short by the next navigation: not a fault
            self.errors.append(f"request failed: {request.method} {request.url} ({request.failure})")

    def expect_error(self, pattern: str) -> None:
        """An error this test provokes on purpose (a regular expression searched in the message)."""
        self.expected.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.expected)]

    async def goto(self, path: str, status: int = 200) -> Response:
        """Open ``path`` of the admin and check the status of the page it ends at."""
        response = await self.page.goto(self.base + path)
        assert response is not None, path
        assert response.status == status, f"{path}: {response.status} {await self.page.title()!r}"
        return response

    async def login(self, login: str, password: str = PASSWORD) -> None:
        """Log in through the login page, as a person does (the page it lands on is the caller's)."""
        await self.goto("/admin/login")
        await self.page.fill("#f-login", login)
        await self.page.fill("#f-password", password)
        async with self.page.expect_navigation():
            await self.page.click("button[type=submit]")

    async def portal_login(self, login: str, password: str) -> None:
        """Log in to the customer portal through its login page (it lands on the dashboard)."""
        await self.goto("/portal/login")
        await self.page.fill("#f-login", login)
        await self.page.fill("#f-password", password)
        async with self.page.expect_navigation():
            await self.page.click("button[type=submit]")

    async def fits(self) -> None:
        """The page is no wider than the window (nothing to scroll sideways on a phone)."""
        width = await self.page.evaluate("document.documentElement.scrollWidth")
        inner = await self.page.evaluate("window.innerWidth")
        assert width <= inner, f"{self.page.url}: {width} px wide on a {inner} px screen"

    async def submit(self, selector: str = "main button[type=submit]") -> Response | None:
        """Click a form's submit button and wait for the page the POST leads to."""
        async with self.page.expect_navigation() as navigation:
            await self.page.click(selector)
        return await navigation.value

    async def axe(self, *, exclude: tuple[str, ...] = ()) -> None:
        """Fail on the page's serious and critical accessibility violations (axe-core, WCAG 2.1 A
        and AA rules and axe's best practices), listed one per element. axe's source goes in
        through ``page.evaluate`` (run over CDP: the page's CSP, which forbids inline scripts,
        does not apply to it). ``exclude``: selectors axe leaves out (a third-party widget)."""
        if not await self.page.evaluate("typeof window.axe === 'object'"):
            await self.page.evaluate(_axe_source())
        found = await self.page.evaluate(
            "(exclude) => axe.run({exclude: exclude.map((s) => [s])}, {resultTypes: ['violations']})"
            "  .then((r) => r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,"
            "    nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + (n.failureSummary || '').split('\\n')"
            "      .slice(1).join('; '))})))", list(exclude))
        bad = [v for v in found if v["impact"] in ("serious", "critical")]
        lines = [f"{v['impact']} {v['id']} ({v['help']}): {node}" for v in bad for node in v["nodes"]]
        assert not bad, f"accessibility violations on {self.page.url}:\n" + "\n".join(lines)

    async def h1(self) -> str:
        return (await self.page.inner_text("h1")).strip()

    async def shot(self, name: str, *, full_page: bool = True) -> Path:
        """``var/screenshots/<test>-<name>.png`` of the page as it is now."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{self.test}-{name}.png"
        for attempt in range(3):
            try:
                await self.page.screenshot(path=str(path), full_page=full_page)
                return path
            except Error as e:
                # Chromium's compositor, busy beside the other test worker, now and then answers
                # "Unable to capture screenshot": the page is there, its picture is taken again
                if "Unable to capture screenshot" not in str(e) or attempt == 2:
                    raise
                await asyncio.sleep(0.5)
        return path


@functools.cache
def _axe_source() -> str:
    """axe-core's axe.min.js, as the axe-playwright-python package (a dev dependency) bundles it."""
    return (importlib.resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


Browse = Callable[..., Awaitable[Tab]]


@pytest.fixture
async def browse(browser: Browser, admin: Admin, request: pytest.FixtureRequest) -> AsyncIterator[Browse]:
    """Opens tabs (each in a fresh context: its own cookies) on the admin: ``await browse()``, or
    ``await browse(viewport=PHONE, is_mobile=True)``; fails the test when any of them logged an error."""
    contexts = []
    tabs: list[Tab] = []
    test = request.node.name.removeprefix("test_")

    async def open_tab(**options: Any) -> Tab:
        context = await browser.new_context(**{"viewport": DESKTOP, **options})
        context.set_default_timeout(TIMEOUT_MS)
        await context.add_init_script(_CSP_REPORTER)
        contexts.append(context)
        tab = Tab(await context.new_page(), admin.url, test)
        tabs.append(tab)
        return tab

    try:
        yield open_tab
    finally:
        for context in contexts:
            with contextlib.suppress(Error):  # already gone with the browser
                await context.close()
    problems = [e for t in tabs for e in t.unexpected()]
    assert problems == [], "errors in the browser:\n" + "\n".join(problems)


@pytest.fixture
async def tab(browse: Browse) -> Tab:
    """One desktop-sized tab."""
    return await browse()

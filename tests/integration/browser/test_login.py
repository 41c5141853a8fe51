"""Logging in through the pages: a password, then two-factor enrolment and a login with its code."""

from __future__ import annotations

import time

import asyncpg
import pyotp

from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import Browse, Tab


async def test_login_with_a_password(conn: asyncpg.Connection, admin: Admin, tab: Tab) -> None:
    await make_admin(conn, "root")
    await tab.goto("/admin/")  # not logged in: the login page
    assert tab.page.url.startswith(admin.url + "/admin/login")
    await tab.shot("login")
    await tab.login("root", "not the password")
    assert "Wrong login or password." in await tab.page.inner_text("[role=alert]")
    tab.expect_error(r"status of 401")
    await tab.login("root")
    assert tab.page.url == admin.url + "/admin/"
    assert await tab.h1() == "Dashboard"
    assert await tab.page.inner_text(".top .me a") == "root"
    await tab.page.wait_for_selector("nav.side a[aria-current=page]")
    await tab.shot("dashboard")


async def test_two_factor_enrolment_and_a_login_with_the_code(
        conn: asyncpg.Connection, admin: Admin, browse: Browse) -> None:
    await make_admin(conn, "ops")
    tab = await browse()
    await tab.login("ops")
    await tab.goto("/admin/profile/two-factor")
    await tab.page.wait_for_selector(".qr svg")
    secret = (await tab.page.inner_text("#totp-secret")).strip()
    await tab.shot("enrolment")
    await tab.page.fill("#f-code", pyotp.TOTP(secret).now())
    await tab.submit()
    codes = await tab.page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10 and all(len(c) == 11 for c in codes), codes
    await tab.shot("recovery-codes")
    await tab.submit(".top .me button")  # log out
    assert tab.page.url.startswith(admin.url + "/admin/login")

    await tab.login("ops")
    assert tab.page.url.startswith(admin.url + "/admin/login/code"), tab.page.url
    await tab.shot("code")
    await tab.goto("/admin/")  # nothing else opens before the code
    assert tab.page.url.startswith(admin.url + "/admin/login/code")
    totp = pyotp.TOTP(secret)
    now = time.time()
    valid = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    wrong = next(c for c in ("000000", "123456", "999999") if c not in valid)
    await tab.page.fill("#f-code", wrong)
    response = await tab.submit("main button[type=submit]")
    assert response is not None and response.status == 401
    assert "not valid" in await tab.page.inner_text("[role=alert]")
    tab.expect_error(r"status of 401")
    await tab.shot("code-refused")
    # The enrolment's code (this step) is spent; the next step's is within the valid window.
    await tab.page.fill("#f-code", totp.at(time.time() + 30))
    await tab.submit("main button[type=submit]")
    assert tab.page.url == admin.url + "/admin/"
    assert await tab.h1() == "Dashboard"
    assert await conn.fetchval("SELECT totp_secret IS NOT NULL FROM administrators WHERE login = 'ops'")

"""Logging in: passwords, sessions and their timeouts, throttling, CSRF, the second factor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, quote, urlsplit

import asyncpg
import pyotp
from aiohttp import web
from multidict import CIMultiDictProxy

from admin.app import create_app
from admin.auth import tokens, totp
from admin.settings import AdminSettings
from daemons import db
from daemons.config import DatabaseSettings
from daemons.secrets import Keyring
from tests.conftest import free_port
from tests.integration.admin.conftest import PASSWORD, Admin, Client, make_admin

ROOT = Path(__file__).resolve().parents[3]
WRONG = "wrong horse battery"
NEW_PASSWORD = "another correct horse"


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of ``pool``, typed as the helpers (conftest's make_admin) take it."""
    async with pool.acquire() as conn:
        yield cast(asyncpg.Connection, conn)


@contextlib.asynccontextmanager
async def serve(db_url: str, **settings: Any) -> AsyncIterator[Admin]:
    """The admin with these AdminSettings, as tests/integration/admin/conftest.py's ``admin`` fixture."""
    pool = await db.create_pool(DatabaseSettings(), db_url, max_size=4)
    keyring = Keyring(os.urandom(32))
    config = AdminSettings(port=free_port(), **settings)
    app = create_app(config, keyring, pool=pool)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", config.port)
    await site.start()
    try:
        yield Admin(f"http://127.0.0.1:{config.port}", pool, keyring, app)
    finally:
        await runner.cleanup()
        await pool.close()


async def raw(c: Client, method: str, path: str, data: dict[str, str] | None = None, *,
              headers: dict[str, str] | None = None) -> tuple[int, CIMultiDictProxy[str], str]:
    """One request, redirects not followed: (status, headers, body)."""
    async with c.session.request(method, c.url + path, data=data, headers=headers, allow_redirects=False) as r:
        return r.status, r.headers, await r.text()


async def login_raw(c: Client, login: str, password: str = PASSWORD, path: str = "/admin/login"
                    ) -> tuple[int, CIMultiDictProxy[str], str]:
    """Read the login form (for its CSRF cookie and token), then post it; redirects not followed."""
    await c.get("/admin/login")
    return await raw(c, "POST", path, {"login": login, "password": password, "_csrf": c.csrf})


async def session_count(admin: Admin, login: str) -> int:
    return int(await admin.pool.fetchval(
        "SELECT count(*) FROM admin_sessions s JOIN administrators a ON a.id = s.admin_id WHERE a.login = $1", login))


# --- passwords ------------------------------------------------------------------------------------------

async def test_a_super_administrator_logs_in_and_sees_the_dashboard(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        status, body = await c.get("/admin/")  # logged out: the login page
        assert status == 200 and 'name="password"' in body
        status, body, url = await c.login("root")
        assert status == 200 and url.endswith("/admin/"), body
        assert "Dashboard" in body and "root" in body
    assert await session_count(admin, "root") == 1
    assert await admin.pool.fetchval("SELECT last_login_at IS NOT NULL FROM administrators WHERE login = 'root'")


async def test_wrong_password_and_unknown_login_get_the_same_401(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        wrong_status, _, wrong = await login_raw(c, "root", WRONG)
        unknown_status, _, unknown = await login_raw(c, "nobody", PASSWORD)
        status, _, _ = await raw(c, "GET", "/admin/")
    assert wrong_status == unknown_status == 401
    message = "Wrong login or password."
    assert message in wrong and message in unknown
    assert status in (302, 303)  # not logged in
    assert await session_count(admin, "root") == 0


async def test_a_disabled_administrator_cannot_log_in_and_its_session_ends(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        assert (await login_raw(c, "root"))[0] == 302
        await admin.pool.execute("UPDATE administrators SET enabled = false WHERE login = 'root'")
        status, headers, _ = await raw(c, "GET", "/admin/")
        assert status == 302 and headers["Location"].startswith("/admin/login")
        status, _, body = await login_raw(c, "root")
        assert status == 401 and "Wrong login or password." in body


async def test_the_login_is_case_insensitive(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        status, headers, _ = await login_raw(c, " Root ")
    assert status == 302 and headers["Location"] == "/admin/"


# --- throttling -----------------------------------------------------------------------------------------

async def test_an_account_is_locked_after_its_failures_even_for_the_right_password(admin: Admin) -> None:
    limit = AdminSettings().login_failures_per_account
    assert limit == 5
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
        await make_admin(conn, "other")
    async with admin.client() as c:
        for _ in range(limit):
            assert (await login_raw(c, "root", WRONG))[0] == 401
        status, _, body = await login_raw(c, "root")
        assert status == 429 and "Too many failed logins" in body
        assert (await raw(c, "GET", "/admin/"))[0] == 302  # not logged in
        # Another account from the same address is not locked (the address limit is 20).
        assert (await login_raw(c, "other"))[0] == 302
    assert await session_count(admin, "root") == 0


async def test_a_success_resets_the_accounts_failures(admin: Admin) -> None:
    limit = AdminSettings().login_failures_per_account
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        for _ in range(limit - 1):
            assert (await login_raw(c, "root", WRONG))[0] == 401
        assert (await login_raw(c, "root"))[0] == 302
        for _ in range(limit - 1):  # 2 * (limit - 1) failures in the window, but not since the success
            assert (await login_raw(c, "root", WRONG))[0] == 401
        assert (await login_raw(c, "root"))[0] == 302


async def test_failures_older_than_the_window_no_longer_count(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        for _ in range(5):
            await login_raw(c, "root", WRONG)
        assert (await login_raw(c, "root"))[0] == 429
        await admin.pool.execute("UPDATE admin_login_attempts SET at = at - interval '16 minutes'")
        assert (await login_raw(c, "root"))[0] == 302


async def test_an_address_is_locked_after_its_failures_across_accounts(db_url: str) -> None:
    async with serve(db_url, login_failures_per_address=3) as admin:
        async with connection(admin.pool) as conn:
            for login in ("a", "b", "c", "d"):
                await make_admin(conn, login)
        async with admin.client() as c:
            for login in ("a", "b", "nobody"):  # one failure each: no account reaches its limit
                assert (await login_raw(c, login, WRONG))[0] == 401
            status, _, body = await login_raw(c, "d")
            assert status == 429 and "Too many failed logins" in body
            # Another address would still get in: the lock is this address's.
            await admin.pool.execute("UPDATE admin_login_attempts SET address = '192.0.2.1'")
            assert (await login_raw(c, "d"))[0] == 302


# --- CSRF -----------------------------------------------------------------------------------------------

async def test_the_login_form_needs_its_csrf_token(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        await c.get("/admin/login")
        assert c.csrf
        form = {"login": "root", "password": PASSWORD}
        assert (await raw(c, "POST", "/admin/login", form))[0] == 403
        assert (await raw(c, "POST", "/admin/login", {**form, "_csrf": tokens.new_token()}))[0] == 403
        assert (await raw(c, "POST", "/admin/login", {**form, "_csrf": ""}))[0] == 403
        assert await session_count(admin, "root") == 0
        status, headers, _ = await raw(c, "POST", "/admin/login", {**form, "_csrf": c.csrf})
        assert status == 302 and headers["Location"] == "/admin/"
    assert await session_count(admin, "root") == 1


async def test_the_login_form_is_refused_without_its_cookie(admin: Admin) -> None:
    """The token must match the browser's own cookie: a token read by another browser is worthless."""
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as attacker, admin.client() as victim:
        await attacker.get("/admin/login")
        await victim.get("/admin/login")
        form = {"login": "root", "password": PASSWORD, "_csrf": attacker.csrf}
        assert (await raw(victim, "POST", "/admin/login", form))[0] == 403


async def test_a_logged_in_form_needs_the_sessions_csrf_token(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    form = {"current": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD}
    async with admin.client() as c, admin.client() as other:
        await c.login("root")
        await other.login("root")  # another session of the same administrator: its token is not this one's
        await c.get("/admin/profile")
        assert c.csrf and other.csrf and c.csrf != other.csrf
        assert (await raw(c, "POST", "/admin/profile/password", form))[0] == 403
        assert (await raw(c, "POST", "/admin/profile/password", {**form, "_csrf": other.csrf}))[0] == 403
        assert (await raw(c, "POST", "/admin/profile/password", form, headers={"X-CSRF-Token": "nope"}))[0] == 403
        async with admin.client() as fresh:  # the login cookie's token is no session's token
            await fresh.get("/admin/login")
            assert (await raw(c, "POST", "/admin/profile/password", {**form, "_csrf": fresh.csrf}))[0] == 403
        assert (await login_raw(other, "root", NEW_PASSWORD))[0] == 401  # unchanged so far
        status, headers, _ = await raw(c, "POST", "/admin/profile/password", {**form, "_csrf": c.csrf})
        assert status == 302 and headers["Location"] == "/admin/profile?done=password"
    async with admin.client() as c:
        assert (await login_raw(c, "root", NEW_PASSWORD))[0] == 302


async def test_the_csrf_header_works_for_htmx(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        status, headers, _ = await raw(c, "POST", "/admin/logout", headers={"X-CSRF-Token": c.csrf})
        assert status == 302 and headers["Location"] == "/admin/login"
    assert await session_count(admin, "root") == 0


# --- cookies and headers --------------------------------------------------------------------------------

def cookie_of(headers: CIMultiDictProxy[str], name: str) -> str:
    found = [v for v in headers.getall("Set-Cookie", []) if v.startswith(name + "=")]
    assert len(found) == 1, headers.getall("Set-Cookie", [])
    return found[0]


async def test_the_session_cookie_is_httponly_and_samesite_lax(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        status, headers, _ = await raw(c, "GET", "/admin/login")
        assert status == 200
        login_cookie = cookie_of(headers, "lm_login")
        status, headers, _ = await raw(c, "POST", "/admin/login", {"login": "root", "password": PASSWORD,
                                                                   "_csrf": re.sub(r"^lm_login=([^;]*);.*$", r"\1",
                                                                                   login_cookie)})
        assert status == 302
        session = cookie_of(headers, "lm_session")
    for cookie in (login_cookie, session):
        attrs = [a.strip().lower() for a in cookie.split(";")]
        assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
        assert "secure" not in attrs
    token = session.split(";")[0].split("=", 1)[1]
    assert len(token) >= 40
    # Only the token's digest is stored.
    assert await admin.pool.fetchval("SELECT count(*) FROM admin_sessions WHERE token_hash = $1",
                                     tokens.digest(token)) == 1


async def test_behind_tls_the_cookies_are_secure_and_hsts_is_sent(db_url: str) -> None:
    async with serve(db_url, tls=True) as admin:
        async with connection(admin.pool) as conn:
            await make_admin(conn, "root")
        async with admin.client() as c:
            status, headers, body = await raw(c, "GET", "/admin/login")
            assert status == 200 and headers["Strict-Transport-Security"].startswith("max-age=")
            login_cookie = cookie_of(headers, "lm_login")
            csrf = re.search(r'name="_csrf" value="([^"]*)"', body)
            assert csrf is not None
            # The jar keeps a Secure cookie away from http://: send it by hand, as a TLS proxy would pass it.
            status, headers, _ = await raw(c, "POST", "/admin/login", {
                "login": "root", "password": PASSWORD, "_csrf": csrf.group(1)},
                headers={"Cookie": login_cookie.split(";")[0]})
            assert status == 302
            session = cookie_of(headers, "lm_session")
    for cookie in (login_cookie, session):
        attrs = [a.strip().lower() for a in cookie.split(";")]
        assert "secure" in attrs and "httponly" in attrs and "samesite=lax" in attrs


def assert_secure_headers(headers: CIMultiDictProxy[str]) -> None:
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in headers  # not behind TLS


async def test_every_response_carries_the_security_headers(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        for path in ("/admin/login", "/admin/", "/admin/no-such-page", "/api/v1/no-such-thing"):
            status, headers, _ = await raw(c, "GET", path)
            assert status in (200, 302, 401, 404), path
            assert_secure_headers(headers)
        await c.login("root")
        for path in ("/admin/", "/admin/profile", "/admin/profile/two-factor", "/admin/no-such-page"):
            status, headers, _ = await raw(c, "GET", path)
            assert status in (200, 404), path
            assert_secure_headers(headers)
        status, headers, _ = await raw(c, "POST", "/admin/profile/password", {"current": "x"})
        assert status == 403
        assert_secure_headers(headers)
        # Static files may be cached; they still get nosniff.
        status, headers, _ = await raw(c, "GET", "/admin/static/admin.css")
        assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
        assert headers.get("Cache-Control") != "no-store"


async def test_next_cannot_redirect_off_site(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    for target in ("https://evil.example", "//evil.example/admin/", "http:/admin/", "/\\evil.example",
                   "https://evil.example/admin/", "javascript:alert(1)", "/other"):
        async with admin.client() as c:
            status, headers, _ = await login_raw(c, "root", path="/admin/login?next=" + quote(target, safe=""))
            assert status == 302 and headers["Location"] == "/admin/", target
    async with admin.client() as c:  # a path of the admin is kept
        status, headers, _ = await login_raw(c, "root", path="/admin/login?next=" + quote("/admin/profile?x=1&y=2"))
        assert status == 302 and headers["Location"] == "/admin/profile?x=1&y=2"


async def test_a_page_asked_for_logged_out_comes_back_after_the_login(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        status, headers, _ = await raw(c, "GET", "/admin/profile?x=1")
        assert status == 302 and location(headers) == ("/admin/login", {"next": ["/admin/profile?x=1"]})
        await c.get(headers["Location"])
        status, _, url = await c.post(headers["Location"], {"login": "root", "password": PASSWORD})
        assert status == 200 and url.endswith("/admin/profile?x=1"), url


# --- timeouts and logging out ---------------------------------------------------------------------------

def location(headers: CIMultiDictProxy[str]) -> tuple[str, dict[str, list[str]]]:
    """A redirect's path and query."""
    parts = urlsplit(headers["Location"])
    assert not parts.scheme and not parts.netloc
    return parts.path, parse_qs(parts.query)


async def assert_expired(admin: Admin, c: Client) -> None:
    status, headers, _ = await raw(c, "GET", "/admin/profile")
    assert status == 302
    assert location(headers) == ("/admin/login", {"next": ["/admin/profile"], "expired": ["1"]})
    assert await session_count(admin, "root") == 0
    status, body = await c.get(headers["Location"])
    assert status == 200 and "Your session has ended" in body
    # The next request is simply logged out (no session left to expire).
    status, headers, _ = await raw(c, "GET", "/admin/")
    assert status == 302 and "expired" not in headers["Location"]


async def test_an_idle_session_ends(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root", idle_timeout_s=120)
    async with admin.client() as c:
        await c.login("root")
        # Seen 100 s ago: within the idle timeout (and the visit moves seen_at on).
        await admin.pool.execute("UPDATE admin_sessions SET seen_at = now() - interval '100 seconds'")
        assert (await raw(c, "GET", "/admin/"))[0] == 200
        assert await admin.pool.fetchval("SELECT now() - seen_at < interval '5 seconds' FROM admin_sessions")
        await admin.pool.execute("UPDATE admin_sessions SET seen_at = now() - interval '121 seconds'")
        await assert_expired(admin, c)


async def test_a_session_ends_at_its_absolute_timeout_even_when_active(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root", absolute_timeout_s=3600)
    async with admin.client() as c:
        await c.login("root")
        left = await admin.pool.fetchval("SELECT extract(epoch FROM expires_at - created_at) FROM admin_sessions")
        assert 3590 <= left <= 3610
        await admin.pool.execute("UPDATE admin_sessions SET expires_at = now() - interval '1 second'")
        await assert_expired(admin, c)


async def test_logging_out_deletes_the_session(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        token = next(m.value for m in c.session.cookie_jar if m.key == "lm_session")
        assert await session_count(admin, "root") == 1
        assert (await raw(c, "POST", "/admin/logout"))[0] == 403  # no CSRF token: not logged out
        status, headers, _ = await raw(c, "POST", "/admin/logout", {"_csrf": c.csrf})
        assert status == 302 and headers["Location"] == "/admin/login"
        assert await session_count(admin, "root") == 0
        assert (await raw(c, "GET", "/admin/"))[0] == 302
    async with admin.client() as thief:  # the old cookie is worth nothing now
        status, headers, _ = await raw(thief, "GET", "/admin/", headers={"Cookie": f"lm_session={token}"})
        assert status == 302 and headers["Location"].startswith("/admin/login")


async def test_changing_the_password_ends_the_other_sessions(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
        await make_admin(conn, "other")
    async with admin.client() as c, admin.client() as elsewhere, admin.client() as colleague:
        await c.login("root")
        await elsewhere.login("root")
        await colleague.login("other")
        await c.get("/admin/profile")
        status, body, url = await c.post("/admin/profile/password", {
            "current": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD})
        assert status == 200 and url.endswith("/admin/profile?done=password") and "Password changed" in body
        assert (await raw(c, "GET", "/admin/"))[0] == 200             # this session goes on
        assert (await raw(elsewhere, "GET", "/admin/"))[0] == 302     # the other one ended
        assert (await raw(colleague, "GET", "/admin/"))[0] == 200     # another administrator's did not
    assert await session_count(admin, "root") == 1
    async with admin.client() as c:
        assert (await login_raw(c, "root"))[0] == 401
        assert (await login_raw(c, "root", NEW_PASSWORD))[0] == 302


async def test_a_wrong_current_password_changes_nothing(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c, admin.client() as elsewhere:
        await c.login("root")
        await elsewhere.login("root")
        await c.get("/admin/profile")
        status, body, _ = await c.post("/admin/profile/password", {
            "current": WRONG, "new": NEW_PASSWORD, "again": NEW_PASSWORD})
        assert status == 422 and "is not your current password" in body
        assert (await raw(elsewhere, "GET", "/admin/"))[0] == 200


# --- the second factor ----------------------------------------------------------------------------------

def code_now(secret: str, ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at((int(time.time() // totp.STEP_S) + ahead) * totp.STEP_S)


async def enrol(c: Client) -> tuple[str, list[str]]:
    """Turn on two-factor login for the logged-in client: (the secret, the recovery codes)."""
    status, page = await c.get("/admin/profile/two-factor")
    assert status == 200 and "<svg" in page
    m = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
    assert m is not None, page
    secret = m.group(1)
    status, body, _ = await c.post("/admin/profile/two-factor", {"code": code_now(secret)})
    assert status == 200 and "Two-factor login is on" in body, body
    codes = re.findall(r"<li>([a-z2-7]{5}-[a-z2-7]{5})</li>", body)
    assert len(codes) == totp.RECOVERY_CODES
    return secret, codes


async def test_enrolment_needs_a_right_code(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        status, page = await c.get("/admin/profile/two-factor")
        m = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
        assert m is not None
        wrong = f"{(int(code_now(m.group(1))) + 1) % 1_000_000:06d}"
        status, body, _ = await c.post("/admin/profile/two-factor", {"code": wrong})
        assert status == 422 and "does not match" in body
        assert await admin.pool.fetchval("SELECT totp_secret FROM administrators WHERE login = 'root'") is None


async def test_two_factor_login_with_totp_and_replay_refused(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        secret, _ = await enrol(c)
    stored = await admin.pool.fetchval("SELECT totp_secret FROM administrators WHERE login = 'root'")
    assert stored.startswith("lm1:") and secret not in stored  # sealed
    async with admin.client() as c:
        status, headers, _ = await login_raw(c, "root")
        assert status == 302 and headers["Location"].startswith("/admin/login/code")
        # Before the code, every page sends to the code page; the password alone gets nothing.
        for path in ("/admin/", "/admin/profile", "/admin/profile/two-factor"):
            status, headers, _ = await raw(c, "GET", path)
            assert status == 302 and headers["Location"] == "/admin/login/code", path
        status, page = await c.get("/admin/login/code")
        assert status == 200 and 'name="code"' in page
        code = code_now(secret, ahead=1)  # the enrolment used this step's code
        status, headers, _ = await raw(c, "POST", "/admin/login/code?next=/admin/", {"code": code, "_csrf": c.csrf})
        assert status == 302 and headers["Location"] == "/admin/"
        assert (await raw(c, "GET", "/admin/"))[0] == 200
        # Verified: the code page is done with.
        status, headers, _ = await raw(c, "GET", "/admin/login/code")
        assert status == 302 and headers["Location"] == "/admin/"
    async with admin.client() as c:  # the same code, in a new login: a replay
        assert (await login_raw(c, "root"))[0] == 302
        await c.get("/admin/login/code")
        status, body, _ = await c.post("/admin/login/code", {"code": code}, allow_redirects=False)
        assert status == 401 and "not valid" in body
        status, headers, _ = await raw(c, "GET", "/admin/")
        assert status == 302 and headers["Location"] == "/admin/login/code"
        # An older step than the one used is refused too, and so is a code of other digits than ASCII's.
        status, _, _ = await c.post("/admin/login/code", {"code": code_now(secret, ahead=-1)}, allow_redirects=False)
        assert status == 401
        status, _, _ = await c.post("/admin/login/code", {"code": "١٢٣٤٥٦"}, allow_redirects=False)
        assert status == 401
    # The enrolling session and the first code's; the replaying one is still waiting for a code.
    assert await admin.pool.fetchval("SELECT count(*) FROM admin_sessions WHERE verified") == 2
    assert await admin.pool.fetchval("SELECT count(*) FROM admin_sessions WHERE NOT verified") == 1


async def test_a_recovery_code_logs_in_once(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        _, codes = await enrol(c)
    async with admin.client() as c:
        await c.login("root")
        await c.get("/admin/login/code")
        status, headers, _ = await raw(c, "POST", "/admin/login/code", {"code": codes[0].upper(), "_csrf": c.csrf})
        assert status == 302 and headers["Location"] == "/admin/"
        assert (await raw(c, "GET", "/admin/"))[0] == 200
        status, body = await c.get("/admin/profile")
        assert f"{totp.RECOVERY_CODES - 1} recovery codes left" in body
    async with admin.client() as c:
        await c.login("root")
        await c.get("/admin/login/code")
        status, body, _ = await c.post("/admin/login/code", {"code": codes[0]}, allow_redirects=False)
        assert status == 401 and "not valid" in body
        assert (await raw(c, "GET", "/admin/"))[0] == 302
        status, _, _ = await c.post("/admin/login/code", {"code": codes[1]}, allow_redirects=False)
        assert status == 302  # another one still works
    assert len(await admin.pool.fetchval("SELECT recovery_codes FROM administrators WHERE login = 'root'")) == 8


async def test_the_code_pages_cancel_logs_out(admin: Admin) -> None:
    """Waiting for the code, "Cancel" (POST /admin/logout) ends the half-open session."""
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        await enrol(c)
    async with admin.client() as c:
        await c.login("root")
        status, page = await c.get("/admin/login/code")
        assert status == 200 and 'action="/admin/logout"' in page
        status, headers, _ = await raw(c, "POST", "/admin/logout", {"_csrf": c.csrf})
        assert status == 302 and headers["Location"] == "/admin/login"
        assert await admin.pool.fetchval("SELECT count(*) FROM admin_sessions WHERE NOT verified") == 0


async def test_the_code_page_keeps_next_whole(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        secret, _ = await enrol(c)
    async with admin.client() as c:
        status, headers, _ = await login_raw(c, "root", path="/admin/login?next=" + quote("/admin/profile?x=1&y=2"))
        assert status == 302
        await c.get(headers["Location"])
        status, _, url = await c.post(headers["Location"], {"code": code_now(secret, ahead=1)})
        assert status == 200 and url.endswith("/admin/profile?x=1&y=2"), url


async def test_wrong_codes_are_throttled_and_a_new_password_login_does_not_reset_them(admin: Admin) -> None:
    """Guessing codes: the account's limit counts them, and logging in again with the password (a
    success of the first factor) does not give the guesser a new allowance."""
    limit = AdminSettings().login_failures_per_account
    async with connection(admin.pool) as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        secret, _ = await enrol(c)
    right = code_now(secret, ahead=1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    async with admin.client() as c:
        for _ in range(2):
            await c.login("root")
            await c.get("/admin/login/code")
            for _ in range(limit - 2):
                assert (await c.post("/admin/login/code", {"code": wrong}, allow_redirects=False))[0] == 401
        status, body, _ = await c.post("/admin/login/code", {"code": right}, allow_redirects=False)
        assert status == 401 and "Too many failed attempts" in body
        assert await admin.pool.fetchval("SELECT count(*) FROM admin_sessions WHERE verified") == 1  # enrolment's
        # The password alone still logs in (to the code page): wrong codes do not lock the password out ...
        status, headers, _ = await login_raw(c, "root")
        assert status == 302 and headers["Location"].startswith("/admin/login/code")
        # ... and once the window has passed, the right code works again.
        await admin.pool.execute("UPDATE admin_login_attempts SET at = at - interval '16 minutes'")
        await c.get("/admin/login/code")
        status, _, _ = await c.post("/admin/login/code", {"code": right}, allow_redirects=False)
        assert status == 302


async def test_a_role_requiring_two_factor_sends_to_the_enrolment(admin: Admin) -> None:
    async with connection(admin.pool) as conn:
        await make_admin(conn, "boss", "manager")
        await make_admin(conn, "root")
        await conn.execute("UPDATE admin_roles SET require_2fa = true WHERE builtin = 'manager'")
    async with admin.client() as c:
        status, headers, _ = await login_raw(c, "boss")
        assert status == 302 and headers["Location"] == "/admin/"
        for path in ("/admin/", "/admin/profile"):
            status, headers, _ = await raw(c, "GET", path)
            assert status == 302 and headers["Location"] == "/admin/profile/two-factor?required=1", path
        status, body = await c.get("/admin/profile/two-factor?required=1")
        assert status == 200 and "Your role requires two-factor login" in body
        await enrol(c)
        assert (await raw(c, "GET", "/admin/"))[0] == 200
    async with admin.client() as c:  # other roles are not concerned
        await login_raw(c, "root")
        assert (await raw(c, "GET", "/admin/"))[0] == 200
        # ... until a super administrator requires it of everyone.
        await admin.pool.execute("UPDATE admin_settings SET require_2fa = true")
        status, headers, _ = await raw(c, "GET", "/admin/")
        assert status == 302 and headers["Location"] == "/admin/profile/two-factor?required=1"
        await c.get("/admin/profile/two-factor?required=1")  # (its CSRF token: the last one was the login form's)
        status, headers, _ = await raw(c, "POST", "/admin/logout", {"_csrf": c.csrf})
        assert status == 302 and headers["Location"] == "/admin/login"


# --- lastmile create-admin ------------------------------------------------------------------------------

async def create_admin(db_url: str, password: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemons.cli", "create-admin", *args, "--password-stdin",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LASTMILE_DATABASE__URL": db_url}, cwd=ROOT)
    out, err = await asyncio.wait_for(process.communicate((password + "\n").encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_create_admin_makes_a_super_administrator_who_logs_in(admin: Admin, db_url: str) -> None:
    code, out, err = await create_admin(db_url, "a long boss password", "--login", "Boss")
    assert code == 0, err
    assert "created administrator 'boss'" in out
    row = await admin.pool.fetchrow("SELECT a.password_hash, r.builtin FROM administrators a "
                                    "JOIN admin_roles r ON r.id = a.role_id WHERE a.login = 'boss'")
    assert row is not None and row["builtin"] == "super" and row["password_hash"].startswith("$argon2id$")
    async with admin.client() as c:
        status, body, url = await c.login("boss", "a long boss password")
        assert status == 200 and url.endswith("/admin/") and "Dashboard" in body
    # The same login again, or a weak password: refused, nothing changes.
    code, _, err = await create_admin(db_url, "a long boss password", "--login", "boss")
    assert code == 1 and "exists already" in err
    code, _, err = await create_admin(db_url, "short", "--login", "boss2")
    assert code == 2 and "password" in err
    code, _, err = await create_admin(db_url, "a long enough password", "--login", "Not Valid!")
    assert code == 2 and "not a valid login" in err
    assert await admin.pool.fetchval("SELECT count(*) FROM administrators") == 1


async def test_create_admin_gives_the_role_asked_for(admin: Admin, db_url: str) -> None:
    code, _, err = await create_admin(db_url, "a long tech password", "--login", "tech", "--role", "technician")
    assert code == 0, err
    async with admin.client() as c:
        await c.login("tech", "a long tech password")
        status, _ = await c.get("/admin/")
        assert status == 200
    assert await admin.pool.fetchval("SELECT r.builtin FROM administrators a JOIN admin_roles r ON r.id = a.role_id "
                                     "WHERE a.login = 'tech'") == "technician"

"""The portal's login: passwords, throttling, e-mail logins, the second factor, password reset
codes, CSRF, cookie scope, brands by host name, the manifest, logging out, impersonation."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

import pyotp

from admin import keys
from admin.auth import tokens
from admin.portal import sessions
from tests.integration.admin.conftest import Admin, Client, logged_in
from tests.integration.portal.conftest import PASSWORD, admin, partner, portal_customer, portal_login

__all__ = ["admin"]
LOGO = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>'


async def _login(admin: Admin, login: str, password: str = PASSWORD, host: str | None = None,
                 ) -> tuple[Client, int, str, str]:
    c = Client(admin.url, {"Host": host} if host else None)
    await c.get("/portal/login")
    status, body, url = await c.post("/portal/login", {"login": login, "password": password})
    return c, status, body, url


async def test_login_lands_on_the_portal_and_a_wrong_password_is_refused(admin: Admin) -> None:
    await portal_customer(admin, login="anna", name="Anna Berger")
    c, status, body, _ = await _login(admin, "anna", "not it")
    async with c:
        assert status == 401 and "Wrong login or password." in body
    c, status, body, _ = await _login(admin, "nobody", "not it")  # the same answer for an unknown login
    async with c:
        assert status == 401 and "Wrong login or password." in body
    async with await portal_login(admin, "ANNA") as c:  # logins are not case sensitive
        status, body = await c.get("/portal/security")
        assert status == 200 and "Two-factor login" in body and "Log out" in body
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT last_login_at IS NOT NULL FROM portal_accounts WHERE login = 'anna'")
        assert await conn.fetchval("SELECT count(*) FROM portal_sessions") == 1


async def test_a_page_needs_a_login(admin: Admin) -> None:
    async with Client(admin.url) as c:
        status, _, _url = await c.post("/portal/login", {"login": "x", "password": "y"}, csrf=False)
        assert status == 403
        status, body = await c.get("/portal/security")
        assert status == 200 and "Log in" in body
    async with Client(admin.url) as c, c.session.get(admin.url + "/portal/security", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/portal/login?next=/portal/security"


async def test_throttled_after_repeated_failures(admin: Admin) -> None:
    await portal_customer(admin, login="anna")
    for _ in range(5):  # [admin] login_failures_per_account
        c, status, _, _ = await _login(admin, "anna", "wrong")
        await c.session.close()
        assert status == 401
    c, status, body, _ = await _login(admin, "anna")  # the right password, but locked for the window
    async with c:
        assert status == 429 and "Too many failed logins" in body


async def test_a_disabled_account_cannot_log_in(admin: Admin) -> None:
    customer_id = await portal_customer(admin, login="anna", enabled=False)
    c, status, body, _ = await _login(admin, "anna")
    async with c:
        assert status == 401 and "Wrong login or password." in body
    async with admin.pool.acquire() as conn:
        await conn.execute("UPDATE portal_accounts SET enabled = true WHERE customer_id = $1", customer_id)
    async with await portal_login(admin, "anna") as c:
        async with admin.pool.acquire() as conn:  # disabled while logged in: the session ends
            await conn.execute("UPDATE portal_accounts SET enabled = false WHERE customer_id = $1", customer_id)
        async with c.session.get(admin.url + "/portal/security", allow_redirects=False) as r:
            assert r.status == 302 and "expired=1" in r.headers["Location"]


async def test_login_by_email_and_a_shared_address_is_refused(admin: Admin) -> None:
    await portal_customer(admin, login="anna", email="anna@example.net")
    async with await portal_login(admin, "Anna@Example.net"):
        pass
    await portal_customer(admin, login="ben", email="family@example.net")
    await portal_customer(admin, login="cleo", email="family@example.net")
    c, status, body, _ = await _login(admin, "family@example.net")
    async with c:
        assert status == 401 and "use your login name" in body
    async with await portal_login(admin, "cleo"):
        pass


async def test_two_factor_login(admin: Admin) -> None:
    await portal_customer(admin, login="anna")
    secret = pyotp.random_base32()
    async with admin.pool.acquire() as conn:
        await conn.execute("UPDATE portal_accounts SET totp_secret = $1",
                           admin.keyring.seal(secret, "portal_accounts.totp").encode())
    c, status, body, url = await _login(admin, "anna")
    async with c:
        assert status == 200 and url.startswith(admin.url + "/portal/login/code"), url
        status, body = await c.get("/portal/security")  # nothing opens before the code
        assert "Login code" in body
        totp = pyotp.TOTP(secret)
        valid = {totp.at(time.time() + d) for d in (-60, -30, 0, 30, 60)}
        wrong = next(x for x in ("000000", "123456", "999999") if x not in valid)
        status, body, _ = await c.post("/portal/login/code", {"code": wrong})
        assert status == 401 and "not valid" in body
        now = totp.now()
        status, body, url = await c.post("/portal/login/code?next=/portal/security", {"code": now})
        assert status == 200 and url == admin.url + "/portal/security", url
        assert "On: logging in asks for a code" in body
    c, status, _, url = await _login(admin, "anna")  # the same code again: a replay, refused
    async with c:
        status, body, _ = await c.post("/portal/login/code", {"code": now})
        assert status == 401


async def test_turning_two_factor_on_and_off(admin: Admin) -> None:
    await portal_customer(admin, login="anna")
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get("/portal/security")
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', body)
        assert secret is not None
        status, body, _ = await c.post("/portal/security", {"action": "on", "password": "wrong",
                                                            "code": pyotp.TOTP(secret.group(1)).now()})
        assert status == 422 and "not your password" in body
        status, body = await c.get("/portal/security")
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', body)
        assert secret is not None
        status, body, _url = await c.post("/portal/security", {"action": "on", "password": PASSWORD,
                                                               "code": pyotp.TOTP(secret.group(1)).now()})
        assert status == 200 and "Two-factor login is on." in body, body
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT totp_secret IS NOT NULL FROM portal_accounts")
        status, body, _ = await c.post("/portal/security", {"action": "off", "password": PASSWORD})
        assert status == 200 and "Two-factor login is off." in body
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT totp_secret IS NULL FROM portal_accounts")


async def _ask_code(admin: Admin, login: str, channel: str = "email") -> tuple[int, str]:
    async with Client(admin.url) as c:
        await c.get("/portal/reset")
        status, body, _ = await c.post("/portal/reset", {"login": login, "channel": channel})
        return status, body


async def _sent_code(admin: Admin) -> str:
    async with admin.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT kind, channel, recipient, body FROM messages ORDER BY id DESC LIMIT 1")
    assert row is not None and row["kind"] == "portal_code"
    assert re.fullmatch(r"[0-9]{6}", row["body"])
    return str(row["body"])


async def _use_code(admin: Admin, login: str, code: str, new: str = "a new password 7") -> tuple[int, str, str]:
    async with Client(admin.url) as c:
        await c.get("/portal/reset/code?login=" + login)
        return await c.post("/portal/reset/code", {"login": login, "code": code, "new": new, "again": new})


async def test_a_reset_code_sets_a_new_password_once(admin: Admin) -> None:
    await portal_customer(admin, login="anna", email="anna@example.net", phone="+43 664 1234567")
    status, known = await _ask_code(admin, "anna")
    assert status == 200 and "we have sent it a 6-digit code" in known
    status, unknown = await _ask_code(admin, "nobody")  # the same answer for an unknown login
    def same(page: str) -> str:  # but the form's token, which is each client's own
        return re.sub(r'name="_csrf" value="[^"]*"', "", page)

    assert status == 200 and same(unknown.replace("nobody", "anna")) == same(known)
    code = await _sent_code(admin)
    async with admin.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT channel, recipient, customer_id IS NOT NULL AS c FROM messages")
        assert row is not None and (row["channel"], row["recipient"], row["c"]) == ("email", "anna@example.net", True)
        stored = await conn.fetchval("SELECT code_hash FROM portal_codes")
        assert bytes(stored) == hashlib.sha256(code.encode()).digest()
    status, body, _ = await _use_code(admin, "anna", code, "anna")
    assert status == 422  # too short, and the login
    status, body, _url = await _use_code(admin, "anna", code)
    assert status == 200 and "Your new password is set" in body, body
    status, body, _ = await _use_code(admin, "anna", code, "another password 8")  # used: refused
    assert status == 401 and "wrong or has expired" in body
    async with await portal_login(admin, "anna", "a new password 7"):
        pass
    status, body, _ = await _use_code(admin, "nobody", code)  # an unknown login: the same refusal
    assert status == 401 and "wrong or has expired" in body
    status, _ = await _ask_code(admin, "anna", "sms")
    async with admin.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT channel, recipient FROM messages ORDER BY id DESC LIMIT 1")
        assert row is not None and tuple(row) == ("sms", "+43 664 1234567")


async def test_a_reset_code_expires_and_allows_five_wrong_tries(admin: Admin) -> None:
    await portal_customer(admin, login="anna", email="anna@example.net")
    await _ask_code(admin, "anna")
    code = await _sent_code(admin)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        status, _, _ = await _use_code(admin, "anna", wrong)
        assert status == 401
    status, body, _ = await _use_code(admin, "anna", code)  # the right one, too late
    assert status == 401
    await _ask_code(admin, "anna")
    code = await _sent_code(admin)
    async with admin.pool.acquire() as conn:
        await conn.execute("UPDATE portal_codes SET expires_at = now() - interval '1 second'")
    status, body, _ = await _use_code(admin, "anna", code)
    assert status == 401 and "wrong or has expired" in body


async def test_a_form_without_its_csrf_token_is_refused(admin: Admin) -> None:
    await portal_customer(admin, login="anna")
    async with await portal_login(admin, "anna") as c:
        status, _, _ = await c.post("/portal/security", {"action": "off", "password": PASSWORD}, csrf=False)
        assert status == 403
        status, _, _ = await c.post("/portal/logout", {"_csrf": "forged"})
        assert status == 403
        status, body = await c.get("/portal/security")
        assert status == 200 and "Log out" in body  # still logged in


async def test_the_admin_and_portal_sessions_do_not_open_each_other(admin: Admin) -> None:
    await portal_customer(admin, login="anna")
    async with await logged_in(admin) as staff, \
            staff.session.get(admin.url + "/portal/security", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"].startswith("/portal/login")
    async with await portal_login(admin, "anna") as c:
        async with c.session.get(admin.url + "/admin/", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"].startswith("/admin/login")
        cookie = next(m for m in c.session.cookie_jar if m.key == sessions.COOKIE)
        assert cookie["path"] == "/portal" and cookie["httponly"] and cookie["samesite"] == "Lax"


async def test_the_brand_follows_the_host(admin: Admin) -> None:
    a = await partner(admin, "Alpha Net")
    b = await partner(admin, "Beta Fibre", host="portal.beta.example")
    await portal_customer(admin, login="anna", partner_id=a)
    await portal_customer(admin, login="bert", partner_id=b)
    async with Client(admin.url) as c:
        status, body = await c.get("/portal/login")
        assert "Alpha Net" in body and "Beta Fibre" not in body
    async with Client(admin.url, {"Host": "portal.beta.example"}) as c:
        status, body = await c.get("/portal/login")
        assert "Beta Fibre" in body and "Alpha Net" not in body
    c, status, body, _ = await _login(admin, "anna", host="portal.beta.example")  # A's customer on B's host
    async with c:
        assert status == 401 and "Wrong login or password." in body
    async with await portal_login(admin, "bert", host="portal.beta.example"):
        pass
    async with await portal_login(admin, "anna") as c:  # A's session carried to B's host: logged out
        token = next(m.value for m in c.session.cookie_jar if m.key == sessions.COOKIE)
        async with c.session.get(admin.url + "/portal/security", headers={"Host": "portal.beta.example"},
                                 allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"].startswith("/portal/login")
        async with admin.pool.acquire() as conn:
            assert not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM portal_sessions WHERE token_hash = $1)",
                                           tokens.digest(token))


async def test_the_manifest_and_the_stylesheet_are_the_brands(admin: Admin) -> None:
    a = await partner(admin, "Alpha Net")
    b = await partner(admin, "Beta Fibre", host="portal.beta.example")
    async with admin.pool.acquire() as conn:
        await conn.execute("INSERT INTO portal_brands (partner_id, published) VALUES ($1, $2)", b,
                           {"accent_color": "#aa0000", "custom_css": ".bar { border-color: red; }"})
        await conn.execute("INSERT INTO partner_branding (partner_id, logo_svg) VALUES ($1, $2)", b, LOGO)
    assert a
    async with Client(admin.url) as c, c.session.get(admin.url + "/portal/manifest.webmanifest") as r:
        doc = json.loads(await r.text())
        assert r.status == 200 and r.content_type == "application/manifest+json"
        assert doc["name"] == "Alpha Net" and doc["icons"] == [] and doc["start_url"] == "/portal/"
    async with Client(admin.url, {"Host": "portal.beta.example"}) as c:
        _status, page = await c.get("/portal/login")
        manifest = re.search(r'<link rel="manifest" href="([^"]+)"', page)
        css = re.search(r'<link rel="stylesheet" href="(/portal/brand.css[^"]+)"', page)
        logo = re.search(r'<img class="logo" src="([^"]+)"', page)
        assert manifest and css and logo
        async with c.session.get(admin.url + manifest.group(1)) as r:
            doc = json.loads(await r.text())
            assert doc["name"] == "Beta Fibre" and doc["theme_color"] == "#aa0000"
            assert doc["icons"][0]["sizes"] == "any" and doc["icons"][0]["type"] == "image/svg+xml"
            assert "immutable" in r.headers["Cache-Control"]
        async with c.session.get(admin.url + css.group(1)) as r:
            text = await r.text()
            assert "--accent: #aa0000" in text and ".bar { border-color: red; }" in text
            assert r.content_type == "text/css"
        async with c.session.get(admin.url + logo.group(1)) as r:
            assert r.content_type == "image/svg+xml"
            assert r.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    async with Client(admin.url) as c, c.session.get(admin.url + "/portal/logo.svg") as r:
        assert r.status == 404  # Alpha has no logo


async def test_logout_ends_the_session(admin: Admin) -> None:
    await portal_customer(admin, login="anna")
    async with await portal_login(admin, "anna") as c:
        status, _body, url = await c.post("/portal/logout")
        assert status == 200 and url.startswith(admin.url + "/portal/login")
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM portal_sessions") == 0
        async with c.session.get(admin.url + "/portal/security", allow_redirects=False) as r:
            assert r.status == 302


async def test_an_impersonated_session_shows_the_banner(admin: Admin) -> None:
    customer_id = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        staff = await conn.fetchval("INSERT INTO administrators (login, name, password_hash, role_id) "
                                    "SELECT 'ops', 'Olga Ops', 'x', id FROM admin_roles WHERE builtin = 'super' "
                                    "RETURNING id")
        token = await sessions.open_session(conn, customer_id, impersonator_id=staff, address=None, user_agent="t",
                                            verified=True)
    async with Client(admin.url) as c:
        c.session.cookie_jar.update_cookies({sessions.COOKIE: token})
        status, body = await c.get("/portal/security")
        assert status == 200 and "Staff view: Olga Ops is looking as this customer" in body
        status, body, _ = await c.post("/portal/security", {"action": "off", "password": PASSWORD})
        assert status == 403


async def test_root_goes_to_the_admin_by_default(admin: Admin) -> None:
    async with Client(admin.url) as c, c.session.get(admin.url + "/", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/admin/"


async def test_the_reset_code_goes_out_by_mail(admin: Admin) -> None:
    """The code's message is the outbox's: the delivery worker sends it to the address asked for."""
    from admin.notifications import deliver
    from tests.db.notifications_data import settings
    from tests.fakes.smtpserver import SmtpServer

    async with SmtpServer() as smtp:
        pid = await partner(admin, "Alpha Net")
        async with admin.pool.acquire() as conn:
            await settings(conn, None, smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none",
                           mail_from="Alpha <portal@alpha.example>")
        await portal_customer(admin, login="anna", partner_id=pid, email="anna@example.net")
        await _ask_code(admin, "anna")
        code = await _sent_code(admin)
        done = await deliver.deliver(admin.pool)
        assert (done.sent, done.failed) == (1, 0)
        [mail] = smtp.messages
        assert mail.message["To"] == "anna@example.net" and code not in mail.message["Subject"]
        text = mail.message.get_body(("plain",))
        assert text is not None and code in text.get_content()


async def test_the_portal_has_its_own_address_list_and_may_be_the_root(admin: Admin) -> None:
    """The admin's allow_from does not guard the portal (customers are on the internet);
    portal_allow_from does. ``default_page = "portal"`` sends / to the portal."""
    import dataclasses

    from aiohttp import web

    from admin.app import create_app
    from tests.conftest import free_port

    cases: list[tuple[dict[str, Any], int, int, str]] = [
        ({"allow_from": "192.0.2.0/24", "default_page": "portal"}, 200, 403, "/portal/"),
        ({"portal_allow_from": "192.0.2.0/24"}, 403, 302, "/admin/")]
    for changes, login_status, admin_status, root in cases:
        settings = dataclasses.replace(admin.app[keys.SETTINGS], port=free_port(),
                                       **changes)
        app = create_app(settings, admin.keyring, pool=admin.pool)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.port).start()
        url = f"http://127.0.0.1:{settings.port}"
        try:
            async with Client(url) as c:
                for path, status in (("/portal/login", login_status), ("/admin/", admin_status),
                                     ("/portal/no-such-page", 404 if login_status == 200 else 403)):
                    async with c.session.get(url + path, allow_redirects=False) as r:
                        assert r.status == status, (changes, path, r.status)
                async with c.session.get(url + "/", allow_redirects=False) as r:
                    assert r.status == 302 and r.headers["Location"] == root, changes
        finally:
            await runner.cleanup()

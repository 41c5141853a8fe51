"""Staff's side of a customer's portal account (admin/portal/accounts.py): the login (unique, not
case sensitive), a password set by staff (never in a response nor the operations log), cleared,
the account disabled (its sessions end), the second factor removed, "log in as" (a portal
cookie, a line in the log, customers.edit only), and partner scoping (404)."""

from __future__ import annotations

import json

from admin.auth import passwords
from admin.portal import sessions
from tests.integration.admin.conftest import Admin, api_key, call, logged_in, make_admin
from tests.integration.portal.conftest import PASSWORD, admin, partner, portal_customer, portal_login

__all__ = ["admin"]

STAFF_PASSWORD = "typed by staff 4711"


async def _customer(admin: Admin, name: str = "Anna Berger", partner_id: int | None = None) -> int:
    """A customer without a portal account (of the first partner, made if missing)."""
    if partner_id is None:
        async with admin.pool.acquire() as conn:
            partner_id = await conn.fetchval("SELECT min(id) FROM partners")
        if partner_id is None:
            partner_id = await partner(admin)
    async with admin.pool.acquire() as conn:
        return int(await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, $3) "
                                       "RETURNING id", partner_id, f"C-{name}", name))


async def _oplog(admin: Admin, customer_id: int) -> list[str]:
    async with admin.pool.acquire() as conn:
        rows = await conn.fetch("SELECT summary, before::text AS before, after::text AS after, action "
                                "FROM operations_log WHERE customer_id = $1 ORDER BY id", customer_id)
    return [json.dumps(dict(r)) for r in rows]


async def test_a_login_and_a_password_set_by_staff_which_nothing_shows(admin: Admin) -> None:
    customer_id = await _customer(admin)
    bodies: list[str] = []
    async with await logged_in(admin) as c:
        status, body = await c.get(f"/admin/customers/{customer_id}")
        assert status == 200 and "Portal access" in body and "No portal login yet." in body
        status, body = await c.get(f"/admin/portal/accounts/{customer_id}")
        assert status == 200 and "No portal account yet" in body
        status, body, url = await c.post(f"/admin/portal/accounts/{customer_id}", {"action": "login", "login": "Anna"})
        assert status == 200 and url.endswith("?done=login") and "Login saved." in body, body[:3000]
        status, body, _ = await c.post(f"/admin/portal/accounts/{customer_id}",
                                       {"action": "password", "password": "short", "password2": "short"})
        assert status == 422 and "at least 10 characters" in body
        bodies.append(body)
        status, body, _ = await c.post(f"/admin/portal/accounts/{customer_id}",
                                       {"action": "password", "password": STAFF_PASSWORD, "password2": "other 12345"})
        assert status == 422 and "the two passwords differ" in body
        bodies.append(body)
        status, body, url = await c.post(f"/admin/portal/accounts/{customer_id}", {
            "action": "password", "password": STAFF_PASSWORD, "password2": STAFF_PASSWORD})
        assert status == 200 and "Password set" in body and 'id="account-password">set' in body
        bodies.append(body)
        status, body = await c.get(f"/admin/customers/{customer_id}")
        assert "<dd>set" in body and "Anna" in body
        bodies.append(body)
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
        stored = await conn.fetchval("SELECT password_hash FROM portal_accounts WHERE customer_id = $1", customer_id)
    assert stored.startswith("$argon2id$") and passwords.verify(stored, STAFF_PASSWORD)
    status, out = await call(admin, key, "GET", f"/customers/{customer_id}/portal-account")
    assert status == 200 and out["login"] == "Anna" and out["password_set"] is True and out["exists"] is True
    bodies.append(json.dumps(out))
    status, out = await call(admin, key, "PUT", f"/customers/{customer_id}/portal-account",
                             {"password": "api password 42"})
    assert status == 200 and out["password_set"] is True
    bodies.append(json.dumps(out))
    log = await _oplog(admin, customer_id)
    assert any("password set by staff" in line and '\\"password\\": \\"set\\"' in line for line in log), log
    for text in bodies + log:
        assert STAFF_PASSWORD not in text and "api password 42" not in text and "$argon2" not in text
    async with await portal_login(admin, "anna", "api password 42") as p:  # not case sensitive
        status, _ = await p.get("/portal/security")
        assert status == 200


async def test_a_login_is_one_customer_s_whatever_its_case(admin: Admin) -> None:
    await portal_customer(admin, login="Anna")
    other = await _customer(admin, "Bert")
    async with await logged_in(admin) as c:
        status, body, _ = await c.post(f"/admin/portal/accounts/{other}", {"action": "login", "login": "anna"})
        assert status == 422 and "is taken by another customer&#39;s portal account" in body
        status, body, _ = await c.post(f"/admin/portal/accounts/{other}", {"action": "login", "login": "b e"})
        assert status == 422 and "without spaces or @" in body
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
    status, out = await call(admin, key, "PUT", f"/customers/{other}/portal-account", {"login": "ANNA"})
    assert status == 422 and "taken" in out["errors"]["login"]
    status, out = await call(admin, key, "PUT", f"/customers/{other}/portal-account", {"enabled": True})
    assert status == 422 and "no portal account yet" in out["errors"]["login"]
    status, out = await call(admin, key, "PUT", f"/customers/{other}/portal-account", {"login": "bert"})
    assert status == 200 and out["login"] == "bert" and out["password_set"] is False and out["enabled"] is True


async def test_disabling_ends_the_sessions_and_the_second_factor_is_removed(admin: Admin) -> None:
    customer_id = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        await conn.execute("UPDATE portal_accounts SET totp_secret = 'sealed' WHERE customer_id = $1", customer_id)
    async with admin.client() as p:
        await p.get("/portal/login")
        await p.post("/portal/login", {"login": "anna", "password": PASSWORD})
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM portal_sessions WHERE customer_id = $1", customer_id) == 1
    async with await logged_in(admin) as c:
        status, body = await c.get(f"/admin/portal/accounts/{customer_id}")
        assert "on (TOTP)" in body and "1 open" in body
        status, body, _ = await c.post(f"/admin/portal/accounts/{customer_id}", {"action": "disable"})
        assert status == 200 and "Portal access disabled" in body and "0 open" in body
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM portal_sessions WHERE customer_id = $1",
                                       customer_id) == 0
            assert not await conn.fetchval("SELECT enabled FROM portal_accounts WHERE customer_id = $1", customer_id)
        status, body, _ = await c.post(f"/admin/portal/accounts/{customer_id}", {"action": "remove_totp"})
        assert status == 200 and "Second factor removed" in body and 'id="account-totp">off' in body
        status, body, _ = await c.post(f"/admin/portal/accounts/{customer_id}", {"action": "enable"})
        assert status == 200 and "Portal access enabled" in body
        status, body, _ = await c.post(f"/admin/portal/accounts/{customer_id}", {"action": "clear_password"})
        assert status == 200 and "not set" in body
    log = await _oplog(admin, customer_id)
    assert [line for line in log if "disabled" in line and "1 session ended" in line], log
    assert [line for line in log if "second factor (TOTP) removed" in line], log
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT password_hash IS NULL AND totp_secret IS NULL AND enabled "
                                   "FROM portal_accounts WHERE customer_id = $1", customer_id)


async def test_log_in_as_opens_the_portal_with_a_staff_session(admin: Admin) -> None:
    customer_id = await portal_customer(admin, login="anna", name="Anna Berger")
    async with await logged_in(admin, "olga") as c:
        await c.get(f"/admin/portal/accounts/{customer_id}")
        status, _, _ = await c.post(f"/admin/portal/accounts/{customer_id}/view-as", allow_redirects=False)
        assert status == 302
        cookies = {m.key: m for m in c.session.cookie_jar}
        assert sessions.COOKIE in cookies and cookies[sessions.COOKIE]["path"] == "/portal"
        status, body = await c.get("/portal/")
        assert status == 200 and "Staff view: olga is looking as this customer" in body
    async with admin.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT s.impersonator_id, a.login FROM portal_sessions s "
                                  "JOIN administrators a ON a.id = s.impersonator_id WHERE s.customer_id = $1",
                                  customer_id)
        assert row is not None and row["login"] == "olga"
        assert await conn.fetchval("SELECT count(*) FROM operations_log WHERE action = 'view_as' AND actor = 'olga' "
                                   "AND summary = 'olga opened Anna Berger''s portal view' AND customer_id = $1",
                                   customer_id) == 1
    async with await logged_in(admin, "fiona", "finance") as c:  # customers.view, not customers.edit
        status, body = await c.get(f"/admin/portal/accounts/{customer_id}")
        assert status == 200 and 'id="view-as"' not in body and "Set password" not in body
        status, _, _ = await c.post(f"/admin/portal/accounts/{customer_id}/view-as", allow_redirects=False)
        assert status == 403
        status, _, _ = await c.post(f"/admin/portal/accounts/{customer_id}", {"action": "disable"})
        assert status == 403


async def test_log_in_as_a_customer_of_a_partner_this_host_does_not_serve(admin: Admin) -> None:
    await partner(admin, "First")
    other = await partner(admin, "Second", host="portal.second.example")
    customer_id = await portal_customer(admin, login="bert", partner_id=other)
    async with await logged_in(admin) as c:
        status, body = await c.get(f"/admin/portal/accounts/{customer_id}")
        assert status == 200 and "open the admin on portal.second.example" in body
        status, body, _ = await c.post(f"/admin/portal/accounts/{customer_id}/view-as", allow_redirects=False)
        assert status == 409 and "portal.second.example" in body


async def test_another_partner_s_customer_is_not_found(admin: Admin) -> None:
    mine = await partner(admin, "Mine")
    theirs = await partner(admin, "Theirs")
    customer_id = await portal_customer(admin, login="anna", partner_id=theirs)
    async with admin.pool.acquire() as conn:
        await make_admin(conn, "pat", "super", partner_id=mine)
        key = await api_key(conn, partner_id=mine)
    async with admin.client() as c:
        await c.login("pat")
        status, _ = await c.get(f"/admin/portal/accounts/{customer_id}")
        assert status == 404
        status, _, _ = await c.post(f"/admin/portal/accounts/{customer_id}", {"action": "disable"})
        assert status == 404
        status, _, _ = await c.post(f"/admin/portal/accounts/{customer_id}/view-as", allow_redirects=False)
        assert status == 404
    for method, body in (("GET", None), ("PUT", {"enabled": False})):
        status, _ = await call(admin, key, method, f"/customers/{customer_id}/portal-account", body)
        assert status == 404
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT enabled FROM portal_accounts WHERE customer_id = $1", customer_id)


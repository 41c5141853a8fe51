"""The customer portal on the admin app of tests/integration/admin/conftest.py: customers with a
portal login, and a client logged in through the portal's real login form (so it holds the
portal's cookie and the page's CSRF token, ``client.csrf``).

Another module's tests use them as::

    from tests.integration.portal.conftest import PASSWORD, admin, portal_customer, portal_login

    async def test_my_page(admin: Admin) -> None:
        await portal_customer(admin, login="anna")
        async with await portal_login(admin, "anna") as c:
            status, body = await c.get("/portal/finance")
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

from admin.auth import passwords
from admin.portal import brand_cache
from tests.integration.admin import conftest as admin_fixtures
from tests.integration.admin.conftest import Admin, Client

admin = admin_fixtures.admin  # the admin app on 127.0.0.1 (a fixture), for the tests here

PASSWORD = "portal password 42"
_numbers = itertools.count(1)


@functools.cache
def password_hash(password: str = PASSWORD) -> str:
    """One argon2 hash per password for every test customer (a hash costs ~0.1 s)."""
    return passwords.hash_password(password)


async def partner(admin: Admin, name: str = "Fibrenet", *, host: str | None = None) -> int:
    """The partner ``name`` (made if missing), answering on ``host`` if given."""
    async with admin.pool.acquire() as conn:
        partner_id = await conn.fetchval("INSERT INTO partners (name) VALUES ($1) ON CONFLICT (name) DO UPDATE "
                                         "SET name = EXCLUDED.name RETURNING id", name)
        if host is not None:
            await conn.execute("INSERT INTO portal_hosts (host, partner_id) VALUES ($1, $2)", host, partner_id)
    changed(admin)
    return int(partner_id)


def changed(admin: Admin) -> None:
    """Brands, hosts or partners were written in SQL: the app's brand cache forgets them (as a
    NOTIFY would have it do in ``lastmile admin``)."""
    admin.app[brand_cache.CACHE].invalidate()


async def portal_customer(admin: Admin, *, login: str = "anna", password: str | None = PASSWORD,
                          partner_id: int | None = None, name: str | None = None, email: str | None = None,
                          phone: str | None = None, enabled: bool = True, **columns: Any) -> int:
    """A customer with a portal account ``login`` / ``password`` (None: no password yet), of
    ``partner_id`` (default: the first partner, made if there is none, which is the portal of
    any host nobody claims); its id."""
    if partner_id is None:
        async with admin.pool.acquire() as conn:
            partner_id = await conn.fetchval("SELECT min(id) FROM partners")
        if partner_id is None:
            partner_id = await partner(admin)
    async with admin.pool.acquire() as conn:
        customer_id = int(await conn.fetchval(
            "INSERT INTO customers (partner_id, number, name, email, phone) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            partner_id, f"P-{login}-{next(_numbers)}", name or login.title(), email, phone))
        for column, value in columns.items():
            await conn.execute(f"UPDATE customers SET {column} = $2 WHERE id = $1", customer_id, value)
        await conn.execute(
            "INSERT INTO portal_accounts (customer_id, login, password_hash, enabled) VALUES ($1, $2, $3, $4)",
            customer_id, login, password_hash(password) if password is not None else None, enabled)
    return customer_id


async def portal_login(admin: Admin, login: str, password: str = PASSWORD, *, host: str | None = None) -> Client:
    """A client logged in to the portal as ``login`` through the login form (close it: ``async
    with``), holding the session's CSRF token (``c.csrf``); ``host``: the Host header it sends
    (a partner's portal host name)."""
    c = Client(admin.url, {"Host": host} if host else None)
    status, body = await c.get("/portal/login")
    assert status == 200, body
    status, body, _ = await c.post("/portal/login", {"login": login, "password": password}, allow_redirects=False)
    assert status == 302, (status, body[:500])
    status, body = await c.get("/portal/security")  # a page of the session: its CSRF token
    assert status == 200, body[:500]
    return c

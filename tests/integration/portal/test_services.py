"""The portal's services pages (/portal/services) over the real app and database: each service
with its plan, speeds, status, price, what it is invoiced until and its addresses; another
customer's service is 404 on every route; the PPPoE password change (its rules, CSRF, the
operations log without the password) stored so that radiusd authenticates the new password: at
the store radiusd reads, and over UDP with a real radiusd."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pyrad.packet import AccessAccept, AccessReject

from admin.auth.store import Connection
from admin.portal.services import password_problems
from radiusd import authproto, store
from radiusd.cache import Subscriber
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.portal.conftest import admin, portal_customer, portal_login  # noqa: F401
from tests.integration.radius_env import access_request, add_nas, client, eventually, send, start_radiusd

TODAY = dt.datetime.now(dt.UTC).date()
NEW = "n3w-Secret!"


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def service(conn: Connection, customer_id: int, login: str, *, price: str = "29.00", password: str = "old-pass-1",
                  **columns: Any) -> int:
    tariff = await conn.fetchval(
        "INSERT INTO tariffs (name, download_kbps, upload_kbps, price, price_includes_tax) "
        "VALUES ($1, 100000, 20000, $2, true) RETURNING id", f"Fibre {login}", Decimal(price))
    names = ["customer_id", "tariff_id", "login", "password", *columns]
    values = [customer_id, tariff, login, password, *columns.values()]
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    return int(await conn.fetchval(f"INSERT INTO services ({', '.join(names)}) VALUES ({marks}) RETURNING id",
                                   *values))


async def password_of(app: Admin, service_id: int) -> str:
    async with app.pool.acquire() as conn:
        return str(await conn.fetchval("SELECT password FROM services WHERE id = $1", service_id))


async def test_the_services_show_plan_speed_status_price_invoiced_until_and_addresses(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    bob = await portal_customer(admin, login="bob")
    async with admin.pool.acquire() as conn:
        fixed = await service(conn, anna, "anna-fibre", ipv4="100.64.1.10/32", ipv6_prefix="2001:db8:1::/64",
                              delegated_ipv6_prefix="2001:db8:100::/56")
        dynamic = await service(conn, anna, "anna-second", price="15.50")
        ended = await service(conn, anna, "anna-old", status="archived")
        other = await service(conn, bob, "bob-fibre", ipv4="100.64.1.99/32")
        # charged for November and December: invoiced until 31 December
        month = TODAY.replace(day=1)
        nxt = (month + dt.timedelta(days=32)).replace(day=1)
        await conn.execute(
            "INSERT INTO transactions (customer_id, direction, kind, amount, currency, posted_on, description, "
            "service_id, period_start, period_end) VALUES ($1, 'debit', 'charge', 29, 'EUR', $2, 'Fibre', $3, $4, $5), "
            "($1, 'debit', 'charge', 29, 'EUR', $2, 'Fibre', $3, $5, $6)",
            anna, TODAY, fixed, (month - dt.timedelta(days=1)).replace(day=1), month, nxt)
        await conn.execute(
            "INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, username, acct_session_id, "
            "framed_ip, updated_at) VALUES ('s1', now() - interval '1 hour', $1, 'anna-second', 'a1', "
            "'100.65.0.7', now()), ('s2', now() - interval '1 hour', $2, 'bob-fibre', 'b1', '100.64.1.99', now())",
            dynamic, other)
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get("/portal/services")
        assert status == 200, body[:500]
        words = text(body)
        assert "Fibre anna-fibre" in words and "Fibre anna-second" in words and "Fibre anna-old" in words
        assert "bob" not in words and "100.64.1.99" not in words
        assert "100 Mbit/s down · 20 Mbit/s up" in words
        assert "29.00 EUR a month incl. tax" in words and "15.50 EUR a month" in words
        last_day = nxt - dt.timedelta(days=1)
        assert f"Invoiced until {last_day.day} {last_day:%b %Y}" in words
        assert "not invoiced yet" in words
        assert "Fixed address 100.64.1.10" in words and "2001:db8:1::/64" in words and "2001:db8:100::/56" in words
        assert "online as 100.65.0.7" in words
        assert words.index("anna-old") > words.index("anna-second")  # ended last
        assert "Ended" in words
        assert "old-pass-1" not in body  # the password is never shown
        status, body = await c.get(f"/portal/services/{fixed}")
        assert status == 200 and "PPPoE password" in body and f'action="/portal/services/{fixed}/password"' in body
        assert "old-pass-1" not in body
        status, body = await c.get(f"/portal/services/{ended}")
        assert status == 200 and "This service has ended." in body and "/password" not in body
        for path in (f"/portal/services/{other}", "/portal/services/99999999"):
            assert (await c.get(path))[0] == 404, path
        status, _, _ = await c.post(f"/portal/services/{other}/password", {"password": NEW, "repeat": NEW})
        assert status == 404
        status, _, _ = await c.post(f"/portal/services/{ended}/password", {"password": NEW, "repeat": NEW})
        assert status == 409
    assert await password_of(admin, other) == "old-pass-1"
    assert await password_of(admin, ended) == "old-pass-1"


def test_the_password_rules() -> None:
    assert password_problems("short", "short", "anna") == {"password": "Use 8 to 64 characters."}
    assert "password" in password_problems("x" * 65, "x" * 65, "anna")
    assert "no spaces" in password_problems("with a space", "with a space", "anna")["password"]
    assert "no spaces" in password_problems("pässwörter", "pässwörter", "anna")["password"]
    assert password_problems("Anna-Fibre", "Anna-Fibre", "anna-fibre") == {
        "password": "The password must not be your login."}
    assert password_problems("good-pass-1", "good-pass-2", "anna") == {"repeat": "The two passwords differ."}
    assert password_problems("good-pass-1", "good-pass-1", "anna") == {}


async def test_a_new_pppoe_password_is_checked_logged_and_what_radiusd_authenticates(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        sid = await service(conn, anna, "anna-fibre")
        number = await conn.fetchval("SELECT number FROM customers WHERE id = $1", anna)
    async with await portal_login(admin, "anna") as c:
        await c.get(f"/portal/services/{sid}")
        for form, message in (({"password": "short", "repeat": "short"}, "Use 8 to 64 characters."),
                              ({"password": "anna-fibre", "repeat": "anna-fibre"}, "must not be your login"),
                              ({"password": NEW, "repeat": NEW + "x"}, "The two passwords differ.")):
            status, body, _ = await c.post(f"/portal/services/{sid}/password", form)
            assert status == 422 and message in body, (form, body[:300])
        assert await password_of(admin, sid) == "old-pass-1"
        # without the session's CSRF token, or with another: refused before anything is read
        status, _, _ = await c.post(f"/portal/services/{sid}/password", {"password": NEW, "repeat": NEW}, csrf=False)
        assert status == 403
        status, _, _ = await c.post(f"/portal/services/{sid}/password",
                                    {"password": NEW, "repeat": NEW, "_csrf": "x" * 43})
        assert status == 403
        assert await password_of(admin, sid) == "old-pass-1"
        status, body, url = await c.post(f"/portal/services/{sid}/password", {"password": NEW, "repeat": NEW})
        assert status == 200 and url.endswith(f"/portal/services/{sid}?done=password"), url
        assert "Your PPPoE password is changed" in body and NEW not in body
    assert await password_of(admin, sid) == NEW
    async with admin.pool.acquire() as conn:
        # the row radiusd's subscriber cache loads, and its PAP and CHAP checks
        rows = await store.load_subscribers_by(conn, "services", [sid])
        sub = Subscriber.from_row(rows[0])
        assert authproto.pap_verify(NEW.encode(), sub.password)
        assert not authproto.pap_verify(b"old-pass-1", sub.password)
        challenge = bytes(range(16))
        chap = bytes((7,)) + authproto.chap_response(7, NEW.encode(), challenge)
        assert authproto.chap_verify(chap, challenge, sub.password)
        line = await conn.fetchrow("SELECT * FROM operations_log WHERE object_type = 'service' AND object_id = $1", sid)
    assert line is not None
    assert line["actor"] == f"customer:{number}" and line["admin_id"] is None and line["api_key_id"] is None
    assert (line["action"], line["customer_id"]) == ("update", anna)
    assert "PPPoE password" in line["summary"]
    assert NEW not in str(dict(line)) and "old-pass-1" not in str(dict(line))


async def test_radiusd_accepts_the_password_set_in_the_portal(admin: Admin, db_url: str,  # noqa: F811
                                                              conn: asyncpg.Connection, tmp_path: Path) -> None:
    anna = await portal_customer(admin, login="anna")
    await add_nas(conn)
    sid = await service(conn, anna, "anna-fibre")
    radiusd = start_radiusd(db_url, tmp_path)
    try:
        nas = client(radiusd)
        assert (await send(nas, access_request(nas, "anna-fibre", "old-pass-1"))).code == AccessAccept
        async with await portal_login(admin, "anna") as c:
            await c.get(f"/portal/services/{sid}")
            status, _, _ = await c.post(f"/portal/services/{sid}/password", {"password": NEW, "repeat": NEW})
            assert status == 200

        async def accepted() -> bool:
            return bool((await send(nas, access_request(nas, "anna-fibre", NEW))).code == AccessAccept)

        await eventually(accepted, timeout=3.0)
        assert (await send(nas, access_request(nas, "anna-fibre", "old-pass-1"))).code == AccessReject
    finally:
        assert radiusd.stop() == 0, "\n".join(radiusd.output)


async def test_staff_looking_as_the_customer_cannot_change_the_password(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        sid = await service(conn, anna, "anna-fibre")
        staff = await make_admin(conn, "helpdesk")
    async with await portal_login(admin, "anna") as c:
        async with admin.pool.acquire() as conn:  # the session as an administrator's "log in as" makes it
            await conn.execute("UPDATE portal_sessions SET impersonator_id = $1 WHERE customer_id = $2", staff, anna)
        status, body = await c.get(f"/portal/services/{sid}")
        assert status == 200 and "you may read, not write" in body and 'name="password"' not in body
        status, _, _ = await c.post(f"/portal/services/{sid}/password", {"password": NEW, "repeat": NEW})
        assert status == 403
    assert await password_of(admin, sid) == "old-pass-1"


@pytest.mark.parametrize("path", ["/portal/services", "/portal/services/1"])
async def test_the_services_pages_need_a_portal_login(admin: Admin, path: str) -> None:  # noqa: F811
    async with admin.client() as c:
        status, _ = await c.get(path, allow_redirects=False)
        assert status == 302

"""The portal's dashboard (/portal/) over the real app and database: the balance and what it is
made of for a customer with invoices and a payment (issued through the ledger), the open
invoices, the next invoice as billing previews it, sessions online, the month's traffic, the
portal messages (opening one marks it read; another customer's is 404), the open tickets, a
prepaid customer's days left, and the items a brand hides left out."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from admin.auth.store import Connection
from admin.billing import ledger
from admin.filters import money
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.portal.conftest import admin, changed, portal_customer, portal_login  # noqa: F401

D = Decimal
TODAY = dt.datetime.now(dt.UTC).date()


async def invoice(conn: Connection, customer_id: int, *amounts: str, on: dt.date = TODAY,
                  due_days: int = 14, kind: str = "invoice") -> ledger.Issued:
    """An invoice (or proforma) of ``amounts`` (one line each, no tax) issued through the ledger."""
    partner_id = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", customer_id)
    async with conn.transaction():
        issued = await ledger.issue(conn, [ledger.NewDocument(
            kind=kind, customer_id=customer_id, partner_id=partner_id, currency="EUR", issued_on=on,
            origin="manual", due_on=on + dt.timedelta(days=due_days),
            lines=tuple(ledger.NewLine(f"Line {i}", D(a)) for i, a in enumerate(amounts, 1)), by="test")])
    return issued[0]


async def pay(conn: Connection, customer_id: int, amount: str, on: dt.date = TODAY) -> int:
    async with conn.transaction():
        return await ledger.record_payment(conn, customer_id, D(amount), on, method="bank transfer", by="test")


async def service(conn: Connection, customer_id: int, login: str, price: str = "29.00") -> int:
    tariff = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps, price) "
                                 "VALUES ($1, 100000, 20000, $2) RETURNING id", f"Fibre {login}", D(price))
    return int(await conn.fetchval(
        "INSERT INTO services (customer_id, tariff_id, login, password, start_date) VALUES ($1, $2, $3, 'x', $4) "
        "RETURNING id", customer_id, tariff, login, TODAY - dt.timedelta(days=40)))


async def portal_message(conn: Connection, customer_id: int, subject: str, body: str = "Hello") -> int:
    """A portal message as the notices' worker leaves it once delivered (status sent)."""
    partner_id = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", customer_id)
    return int(await conn.fetchval(
        "INSERT INTO messages (partner_id, customer_id, kind, channel, cause, subject, body, status, sent_at) "
        "VALUES ($1, $2, 'announcement', 'portal', $3, $4, $5, 'sent', now()) RETURNING id",
        partner_id, customer_id, f"test:{subject}", subject, body))


def main(html: str) -> str:
    """The page's own part (<main>: not the menu, which other sections' links join)."""
    return html.split("<main>", 1)[-1].split("</main>", 1)[0]


def text(html: str) -> str:
    """The words of the page's <main>, tags and runs of spaces gone."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main(html)))


async def test_the_dashboard_shows_the_balance_and_what_it_is_made_of(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        first = await invoice(conn, anna, "20.00", "9.00", on=TODAY - dt.timedelta(days=3))
        await pay(conn, anna, "5.00", TODAY - dt.timedelta(days=1))
        proforma = await invoice(conn, anna, "12.00", kind="proforma")
        svc = await service(conn, anna, "anna-fibre")
        await conn.execute(
            "INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, username, acct_session_id, "
            "framed_ip, updated_at) VALUES ('s1', now() - interval '2 hours', $1, 'anna-fibre', 'a1', '100.64.0.7', "
            "now())", svc)
        await conn.execute("INSERT INTO traffic_usage (service_id, minute, bytes_down, bytes_up, packets_down, "
                           "packets_up) VALUES ($1, date_trunc('minute', now()), 3000000000, 500000000, 1, 1)", svc)
        read = await portal_message(conn, anna, "Maintenance tonight")
        await conn.execute("UPDATE messages SET read_at = now() WHERE id = $1", read)
        unread = await portal_message(conn, anna, "Your new router", "It ships on Monday.")
        await conn.execute("INSERT INTO tickets (customer_id, subject, source) VALUES ($1, 'Slow', 'portal'), "
                           "($1, 'Old', 'portal')", anna)
        await conn.execute("UPDATE tickets SET status = 'resolved' WHERE subject = 'Old'")
    async with await portal_login(admin, "anna") as c:
        status, page = await c.get("/portal/")
        assert status == 200, page[:500]
        words = text(page)
        day = TODAY - dt.timedelta(days=3)
        paid_on = TODAY - dt.timedelta(days=1)
        assert (f"You owe 24.00 EUR: invoice {first.number} of {day.day} {day:%b %Y} (29.00 EUR) "
                f"less a payment of 5.00 EUR on {paid_on.day} {paid_on:%b %Y}.") in words
        assert f'href="/portal/finance/documents/{first.id}/pdf"' in page  # the invoice, still open
        assert f'href="/portal/finance/documents/{proforma.id}/pdf"' in page  # the proforma, asking for 12.00
        assert "24.00 EUR" in words and "12.00 EUR" in words
        assert "Next invoice" in words and "29.00 EUR" in words  # the service's month, as billing previews it
        assert "100.64.0.7" in words and "anna-fibre" in words and "up 02:0" in words
        assert "3.5 GB" in words  # 3.0 GB down + 0.5 GB up this month
        assert "1 new" in words
        assert words.index("Your new router") < words.index("Maintenance tonight")  # unread first
        assert 'href="/portal/tickets"' in main(page) and "1 open request" in words
        # opening the message marks it read
        status, opened = await c.get(f"/portal/messages/{unread}")
        assert status == 200 and "It ships on Monday." in opened
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT read_at IS NOT NULL FROM messages WHERE id = $1", unread)
        status, page = await c.get("/portal/")
        assert "new</span>" not in page


async def test_another_customers_message_is_not_found(admin: Admin) -> None:  # noqa: F811
    await portal_customer(admin, login="anna")
    bob = await portal_customer(admin, login="bob")
    async with admin.pool.acquire() as conn:
        theirs = await portal_message(conn, bob, "For Bob")
    async with await portal_login(admin, "anna") as c:
        for path in (f"/portal/messages/{theirs}", "/portal/messages/999999", "/portal/messages/x"):
            status, body = await c.get(path)
            assert status == 404, path
            assert "For Bob" not in body
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT read_at FROM messages WHERE id = $1", theirs) is None


async def test_a_prepaid_customer_sees_its_days_left(admin: Admin) -> None:  # noqa: F811
    pia = await portal_customer(admin, login="pia")
    async with admin.pool.acquire() as conn:
        await conn.execute("UPDATE customer_billing SET billing_type = 'prepaid_daily' WHERE customer_id = $1", pia)
        await service(conn, pia, "pia-fibre", "31.00")
        await pay(conn, pia, "10.00")
    days_in_month = ((TODAY.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - TODAY.replace(day=1)).days
    cost = D("31.00") / days_in_month
    async with await portal_login(admin, "pia") as c:
        status, page = await c.get("/portal/")
    words = text(page)
    assert status == 200 and "10.00 EUR in credit" in words
    assert f"At {money(cost, 'EUR')} a day your balance lasts {int(D(10) / cost)} days" in words
    assert "your account is prepaid" in words  # no next invoice


async def test_the_items_a_brand_hides_are_left_out(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        await invoice(conn, anna, "29.00")
        partner_id = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", anna)
        await conn.execute("INSERT INTO portal_brands (partner_id, published) VALUES ($1, $2)", partner_id,
                           {"dashboard": ["tickets", "balance"]})  # the pool's codec encodes jsonb
    async with await portal_login(admin, "anna") as c:
        status, page = await c.get("/portal/")
    assert status == 200, page[:500]
    words = text(page)
    assert "You owe 29.00 EUR" in words and "Support" in words
    for hidden in ("Open invoices", "Next invoice", "Online now", "Traffic this month", "Messages"):
        assert hidden not in words, hidden
    assert words.index("Balance") < words.index("Support")  # in the order of DASHBOARD, not the brand's list
    async with admin.pool.acquire() as conn:
        await conn.execute("UPDATE portal_brands SET published = '{\"dashboard\": []}' WHERE partner_id = $1",
                           partner_id)
    changed(admin)  # written in SQL: the brand cache is told, as a publish tells it
    async with await portal_login(admin, "anna") as c:
        status, page = await c.get("/portal/")
    assert status == 200 and "You owe" not in page and "Support" not in text(page)


async def test_staff_looking_as_the_customer_leave_a_message_unread(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        note = await portal_message(conn, anna, "Your new router", "It ships on Monday.")
        staff = await make_admin(conn, "helpdesk")
    async with await portal_login(admin, "anna") as c:
        async with admin.pool.acquire() as conn:  # the session as an administrator's "log in as" makes it
            await conn.execute("UPDATE portal_sessions SET impersonator_id = $1 WHERE customer_id = $2", staff, anna)
        status, page = await c.get(f"/portal/messages/{note}")
        assert status == 200 and "It ships on Monday." in page and "Staff view" in page
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT read_at FROM messages WHERE id = $1", note) is None

"""Every customer page of the portal, found from the app's routes (so a new page is covered the
day it lands), asked by customer Anna with the ids of Bruno's rows: each answers 404 (GET and
POST alike) and writes nothing. A path parameter this test cannot fill fails it: a new kind of
row needs its line in ROWS."""

from __future__ import annotations

import datetime as dt
import re

from admin import keys
from admin.tickets import store as tickets
from admin.tickets.automation import Author
from admin.tickets.inbound import Attachment
from admin.web import PERMISSIONS, PORTAL_CUSTOMER
from tests.integration.admin.conftest import Admin
from tests.integration.portal.conftest import admin, portal_customer, portal_login  # noqa: F401
from tests.integration.portal.test_dashboard import invoice, portal_message
from tests.integration.portal.test_equipment import device
from tests.integration.portal.test_services import service

PARAM = re.compile(r"\{(\w+)\}")
ROWS = {"services": "service", "documents": "document", "tickets": "ticket", "attachments": "attachment",
        "messages": "message", "equipment": "device", "cards": "card", "online": "intent",
        "direct-debit": "mandate"}
"""The segment before a path parameter -> which of the other customer's rows fills it."""
WATCHED = ("tickets", "ticket_messages", "ticket_attachments", "services", "customers", "messages",
           "operations_log", "acs_tasks", "acs_wakeups",
           "payment_methods", "payment_intents", "payments", "gateway_customers",
           "documents", "service_pauses", "sepa_mandates")
"""Tables whose rows must not change while the other customer's ids are tried."""
ATTACHMENT = Attachment("note.txt", "text/plain", "text/plain", b"hello")


async def rows_of(site: Admin, customer_id: int, login: str) -> dict[str, int]:
    """A service, an invoice, a ticket with a customer's message and its attachment, a portal message,
    a CPE, a saved card, a payment attempt and a direct-debit mandate."""
    async with site.pool.acquire() as conn:
        ids = {"service": await service(conn, customer_id, login),
               "document": (await invoice(conn, customer_id, "12.00")).id,
               "message": await portal_message(conn, customer_id, f"News for {login}")}
        ids["device"] = await device(conn, customer_id=customer_id, service_id=ids["service"], serial=f"SN-{login}",
                                     params={"Device.WiFi.SSID.1.SSID": f"{login}-wifi"})
        partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", customer_id)
        async with conn.transaction():
            made = await tickets.create_ticket(conn, tickets.NewTicket(
                partner_id=partner, customer_id=customer_id, subject=f"{login}'s line", body="It drops",
                source="portal", author=Author.CUSTOMER, attachments=(ATTACHMENT,)), now=dt.datetime.now(dt.UTC))
        assert made is not None
        ids["ticket"] = made.ticket_id
        ids["attachment"] = int(await conn.fetchval(
            "SELECT a.id FROM ticket_attachments a JOIN ticket_messages m ON m.id = a.message_id "
            "WHERE m.ticket_id = $1", made.ticket_id))
        ids["card"] = int(await conn.fetchval(
            "INSERT INTO payment_methods (customer_id, gateway, token, brand, last4, exp_month, exp_year) "
            "VALUES ($1, 'stripe', $2, 'visa', '4242', 12, 2030) RETURNING id", customer_id, f"pm_{login}"))
        ids["intent"] = int(await conn.fetchval(
            "INSERT INTO payment_intents (customer_id, gateway, purpose, document_id, payment_method_id, amount, "
            "currency, idempotency_key) VALUES ($1, 'stripe', 'invoice', $2, $3, 12, 'EUR', $4) RETURNING id",
            customer_id, ids["document"], ids["card"], f"isolation:{login}"))
        ids["mandate"] = int(await conn.fetchval(
            "INSERT INTO sepa_mandates (customer_id, reference, iban, holder, signed_on) "
            "VALUES ($1, $2, 'DE89370400440532013000', $3, current_date) RETURNING id",
            customer_id, f"ISO-{login}", login.title()))
    return ids


async def counts(site: Admin) -> dict[str, int]:
    async with site.pool.acquire() as conn:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in WATCHED}  # t: our constants


async def test_every_portal_page_answers_404_to_another_customers_ids(admin: Admin) -> None:  # noqa: F811
    await portal_customer(admin, login="anna")
    bruno = await portal_customer(admin, login="bruno")
    theirs = await rows_of(admin, bruno, "bruno")
    routes = [(method, path) for area in admin.app[keys.AREAS] for method, path, handler in area.routes
              if PERMISSIONS.get(handler) == PORTAL_CUSTOMER and PARAM.search(path)]
    assert len(routes) >= 8, routes
    before = await counts(admin)
    answers: dict[str, int] = {}
    async with await portal_login(admin, "anna") as c:
        for method, path in routes:
            segments = path.split("/")
            url = path
            for i, segment in enumerate(segments):
                if PARAM.fullmatch(segment):
                    assert segments[i - 1] in ROWS, f"{path}: which row fills {segment}? (ROWS)"
                    url = url.replace(segment, str(theirs[ROWS[segments[i - 1]]]), 1)
            if method == "GET":
                async with c.session.get(c.url + url, allow_redirects=False) as r:
                    answers[f"GET {url}"] = r.status
            else:
                status, _, _ = await c.post(url, {"body": "mine now", "subject": "x", "password": "Newpass-123",
                                                  "password2": "Newpass-123"}, allow_redirects=False)
                answers[f"{method} {url}"] = status
    assert answers and all(s == 404 for s in answers.values()), {k: s for k, s in answers.items() if s != 404}
    assert await counts(admin) == before

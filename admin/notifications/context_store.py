"""What a message is rendered from (admin/notifications/context.py's views), read for a whole
batch of messages in a few queries (customers, brands, then only the entities the batch's kinds
need: documents, payments, unpaid invoices, prepaid outlooks, cards, services), never a query
per message.

A message row here is any mapping with ``id``, ``partner_id``, ``customer_id``, ``kind``,
``cause``, ``document_id`` (and, for announcements, ticket replies and staff notices, ``subject``
and ``body``; for a ticket reply without a customer and a staff notice, ``channel`` and
``recipient``): the rows
store.claim() returns, or the made-up one :func:`latest` builds for the template editor's
"preview with the last entity".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.notifications import schedule
from admin.notifications.context import (
    BrandView,
    CardView,
    CustomerView,
    DocumentView,
    MessageContext,
    PaymentView,
    PrepaidView,
    ServiceView,
)
from admin.notifications.model import Attachment
from admin.payments import reference

Row = asyncpg.Record | Mapping[str, Any]
DOCUMENT_KINDS = ("invoice", "proforma", "credit_note", "payment")
REMINDERS = ("reminder_1", "reminder_2", "reminder_3")
PREPAID = ("prepaid_1", "prepaid_2", "prepaid_3")
WRITTEN = ("announcement", "ticket_reply", "portal_code")
"""Kinds whose subject and body are written when the message is made (the templates show them as
``extra.subject`` and ``extra.body``, and they are kept as written)."""
ADDRESSED = ("ticket_reply", "ticket_staff", "portal_code")
"""Kinds whose recipient is set when the message is made (messages.recipient: a ticket's
requester, who may be an unknown sender; an agent's address): sent there, never to the
customer's address, and made without a customer too (customer_id NULL: by email only, rendered
with a blank customer)."""
STAFF = "ticket_staff"
"""An agent told of a ticket's message (cause ``ticket_message:<id>:administrator:<id>``, made by
admin/tickets/store.py): the message's text as written (``body``), the rest read here when it
is sent, the ticket's link from ``admin_url``."""


def _lines(text: str | None) -> tuple[str, ...]:
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


def _id_in(cause: str, position: int = 1) -> int | None:
    parts = cause.split(":")
    try:
        return int(parts[position])
    except (IndexError, ValueError):
        return None


# -- the queries -------------------------------------------------------------------------------

CUSTOMERS = """
SELECT c.id, c.partner_id, c.number, c.name, coalesce(nullif(c.billing_email, ''), nullif(c.email, ''), '') AS email,
       coalesce(c.phone, '') AS phone, coalesce(c.country, '') AS country, coalesce(c.language, '') AS language,
       c.status, c.marketing_opt_out, coalesce(b.currency, 'EUR') AS currency,
       coalesce((SELECT sum(CASE t.direction WHEN 'credit' THEN t.amount ELSE -t.amount END)
                 FROM transactions t WHERE t.customer_id = c.id), 0) AS balance
FROM customers c LEFT JOIN customer_billing b ON b.customer_id = c.id
WHERE c.id = ANY($1::bigint[])
"""

BRANDS = """
SELECT p.id, p.name AS partner, b.company_name, b.address, b.bank, b.email, b.phone, b.website, b.footer
FROM partners p LEFT JOIN partner_branding b ON b.partner_id = p.id WHERE p.id = ANY($1::bigint[])
"""

DOCUMENTS = """
SELECT d.id, d.kind, d.customer_id, d.number, d.issued_on, d.due_on, d.period_start, d.period_end, d.total,
       d.currency, s.open, s.status, coalesce(r.number, '') AS related_number
FROM documents d JOIN billing_documents_state s ON s.id = d.id LEFT JOIN documents r ON r.id = d.related_id
WHERE d.id = ANY($1::bigint[])
"""

PAYMENTS = """
SELECT p.id, p.amount, p.currency, p.paid_on, t.name AS method, d.number AS receipt_number
FROM payments p JOIN payment_types t ON t.id = p.type_id JOIN documents d ON d.id = p.receipt_id
WHERE p.id = ANY($1::bigint[])
"""

UNPAID = """
SELECT d.id, d.kind, d.customer_id, d.number, d.issued_on, d.due_on, d.period_start, d.period_end, d.total,
       d.currency, s.open, s.status, '' AS related_number
FROM documents d JOIN billing_documents_state s ON s.id = d.id
WHERE d.customer_id = ANY($1::bigint[]) AND d.kind = 'invoice' AND s.status <> 'void' AND s.open > 0
ORDER BY d.customer_id, d.issued_on, d.id
"""

PREPAID_COST = """
SELECT c.id AS customer_id, b.min_balance, b.currency,
       coalesce((SELECT sum(CASE t.direction WHEN 'credit' THEN t.amount ELSE -t.amount END)
                 FROM transactions t WHERE t.customer_id = c.id), 0) AS balance,
       coalesce((SELECT sum(CASE WHEN b.billing_type = 'prepaid_custom' AND b.period_days IS NOT NULL
                                 THEN tf.price / b.period_days
                                 ELSE tf.price / ((date_trunc('month', $2::date) + interval '1 month')::date
                                                  - date_trunc('month', $2::date)::date)
                            END)
                 FROM services s JOIN tariffs tf ON tf.id = s.tariff_id
                 WHERE s.customer_id = c.id AND s.status = 'active'
                   AND (s.end_date IS NULL OR s.end_date >= $2::date)), 0) AS daily_cost
FROM customers c JOIN customer_billing b ON b.customer_id = c.id
WHERE c.id = ANY($1::bigint[]) AND b.billing_type IN ('prepaid_daily', 'prepaid_custom')
"""
"""A prepaid customer's balance and daily cost, as store.PREPAID (the schedule) counts them."""

CARDS = """
SELECT id, brand, coalesce(last4, '') AS last4, coalesce(exp_month, 0) AS exp_month, coalesce(exp_year, 0) AS exp_year
FROM payment_methods WHERE id = ANY($1::bigint[])
"""

TICKET_MESSAGES = """
SELECT m.id, m.ticket_id, coalesce(nullif(a.name, ''), '') AS author
FROM ticket_messages m LEFT JOIN administrators a ON a.id = m.administrator_id WHERE m.id = ANY($1::bigint[])
"""

TICKET_NOTICES = """
SELECT m.id, m.ticket_id, m.author AS kind, t.subject,
       m.id = (SELECT min(f.id) FROM ticket_messages f WHERE f.ticket_id = m.ticket_id) AS first,
       CASE WHEN m.author IN ('staff', 'note') THEN coalesce(nullif(a.name, ''), a.login, '')
            WHEN m.author = 'customer' THEN concat_ws(' ', nullif(m.from_name, ''),
                 '<' || nullif(m.from_address, '') || '>')
            ELSE '' END AS author,
       CASE WHEN c.id IS NOT NULL THEN concat_ws(' ', c.number, nullif(c.name, ''))
            ELSE concat_ws(' ', nullif(t.requester_name, ''), '<' || nullif(t.requester_email, '') || '>') END
           AS customer
FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id LEFT JOIN administrators a ON a.id = m.administrator_id
LEFT JOIN customers c ON c.id = t.customer_id WHERE m.id = ANY($1::bigint[])
"""
_WHAT = {"customer": "Customer reply", "staff": "Staff reply", "note": "Internal note", "system": "Update"}

SERVICES = """
SELECT s.id, s.login, t.name AS tariff, s.end_date FROM services s JOIN tariffs t ON t.id = s.tariff_id
WHERE s.id = ANY($1::bigint[])
"""


# -- the views ---------------------------------------------------------------------------------

def customer_view(row: Row, portal_url: str = "") -> CustomerView:
    return CustomerView(id=row["id"], number=row["number"], name=row["name"], email=row["email"], phone=row["phone"],
                        country=row["country"], language=row["language"], balance=Decimal(row["balance"]),
                        currency=row["currency"], status=row["status"], portal_url=portal_url)


def brand_view(row: Row | None) -> BrandView:
    if row is None:
        return BrandView(company_name="")
    if row["company_name"] is None:  # no partner_branding row: its name alone
        return BrandView(company_name=row["partner"])
    return BrandView(company_name=row["company_name"] or row["partner"], email=row["email"], phone=row["phone"],
                     website=row["website"], address_lines=_lines(row["address"]), bank_lines=_lines(row["bank"]),
                     footer=row["footer"])


def document_view(row: Row) -> DocumentView:
    payable = row["kind"] in ("invoice", "proforma")
    return DocumentView(
        id=row["id"], kind=row["kind"], number=row["number"], issued_on=row["issued_on"], total=Decimal(row["total"]),
        currency=row["currency"], due_on=row["due_on"],
        due=Decimal(row["open"]) if payable and row["status"] != "void" else Decimal(0),
        period_start=row["period_start"], period_end=row["period_end"], related_number=row["related_number"],
        payment_reference=reference.printed(reference.for_customer(row["customer_id"])) if payable else "")


def prepaid_view(row: Row, today: dt.date) -> PrepaidView | None:
    """A prepaid customer's outlook (schedule.prepaid_outlook); None when nothing is charged daily."""
    balance, cost = Decimal(row["balance"]), Decimal(row["daily_cost"])
    outlook = schedule.prepaid_outlook(today, balance, cost, Decimal(row["min_balance"]))
    if outlook is None:
        return None
    return PrepaidView(balance=balance, daily_cost=cost, days_left=outlook[0], blocking_on=outlook[1],
                       currency=row["currency"])


@dataclass(frozen=True, slots=True)
class Loaded:
    """A batch's contexts, by message id, and what the caller needs beside them."""

    contexts: dict[int, MessageContext]
    missing: dict[int, str]  # messages no context could be made for, with why
    marketing_opt_out: frozenset[int]  # customers who opted out


async def _by_id(conn: Connection, sql: str, ids: set[int], *args: Any) -> dict[int, asyncpg.Record]:
    if not ids:
        return {}
    return {r["id"]: r for r in await conn.fetch(sql, sorted(ids), *args)}


async def load(conn: Connection, rows: Sequence[Row], today: dt.date, *, portal_url: str = "",
               admin_url: str = "") -> Loaded:
    """The contexts of these messages (a few queries for the whole batch). ``admin_url``: the
    admin as browsers reach it (https://admin.example.net), for a staff notice's link."""
    customers = await _by_id(conn, CUSTOMERS, {r["customer_id"] for r in rows if r["customer_id"] is not None})
    brands = await _by_id(conn, BRANDS, {r["partner_id"] for r in rows})
    documents = await _by_id(conn, DOCUMENTS, {r["document_id"] for r in rows
                                               if r["kind"] in DOCUMENT_KINDS and r["document_id"] is not None})
    payments = await _by_id(conn, PAYMENTS, {i for r in rows if r["kind"] == "payment"
                                             if (i := _id_in(r["cause"])) is not None})
    unpaid: dict[int, list[DocumentView]] = {}
    owing = {r["customer_id"] for r in rows if r["kind"] in REMINDERS and r["customer_id"] is not None}
    if owing:
        for d in await conn.fetch(UNPAID, sorted(owing)):
            unpaid.setdefault(d["customer_id"], []).append(document_view(d))
    prepaid_rows: dict[int, asyncpg.Record] = {}
    prepaid = {r["customer_id"] for r in rows if r["kind"] in PREPAID and r["customer_id"] is not None}
    if prepaid:
        prepaid_rows = {p["customer_id"]: p for p in await conn.fetch(PREPAID_COST, sorted(prepaid), today)}
    cards = await _by_id(conn, CARDS, {i for r in rows if r["kind"] == "card_expiry"
                                       if (i := _id_in(r["cause"])) is not None})
    services = await _by_id(conn, SERVICES, {i for r in rows if r["kind"] == "contract_end"
                                             if (i := _id_in(r["cause"])) is not None})
    replies = await _by_id(conn, TICKET_MESSAGES, {i for r in rows if r["kind"] == "ticket_reply"
                                                   if (i := _id_in(r["cause"])) is not None})
    notices = await _by_id(conn, TICKET_NOTICES, {i for r in rows if r["kind"] == STAFF
                                                  if (i := _id_in(r["cause"])) is not None})

    contexts: dict[int, MessageContext] = {}
    missing: dict[int, str] = {}
    for r in rows:
        kind, c = r["kind"], customers.get(r["customer_id"]) if r["customer_id"] is not None else None
        if c is not None:
            customer = customer_view(c, portal_url)
        elif kind in ADDRESSED and r["customer_id"] is None and r.get("channel", "email") == "email":
            customer = CustomerView(id=0, number="", name="", email=r.get("recipient") or "")
        else:
            missing[r["id"]] = "the message names no customer"
            continue
        extra: dict[str, str] = {}
        document: DocumentView | None = None
        payment: PaymentView | None = None
        prepaid_v: PrepaidView | None = None
        card: CardView | None = None
        service: ServiceView | None = None
        invoices: tuple[DocumentView, ...] = ()
        if kind in DOCUMENT_KINDS:
            found = documents.get(r["document_id"]) if r["document_id"] is not None else None
            if found is None:
                missing[r["id"]] = "its document is gone"
                continue
            document = document_view(found)
            if kind == "payment":
                p = payments.get(_id_in(r["cause"]) or 0)
                if p is not None:
                    payment = PaymentView(id=p["id"], amount=Decimal(p["amount"]), currency=p["currency"],
                                          paid_on=p["paid_on"], method=p["method"], receipt_number=p["receipt_number"])
        elif kind in REMINDERS:
            invoices = tuple(unpaid.get(customer.id, ()))
        elif kind in PREPAID:
            p = prepaid_rows.get(customer.id)
            prepaid_v = prepaid_view(p, today) if p is not None else None
            if prepaid_v is None:
                missing[r["id"]] = "the customer is not charged daily any more"
                continue
        elif kind == "card_expiry":
            k = cards.get(_id_in(r["cause"]) or 0)
            if k is None:
                missing[r["id"]] = "its card is gone"
                continue
            card = CardView(brand=k["brand"], last4=k["last4"], exp_month=k["exp_month"], exp_year=k["exp_year"])
        elif kind == "contract_end":
            s = services.get(_id_in(r["cause"]) or 0)
            if s is None:
                missing[r["id"]] = "its service is gone"
                continue
            service = ServiceView(id=s["id"], login=s["login"], tariff=s["tariff"], end_date=s["end_date"])
        elif kind == STAFF:
            n = notices.get(_id_in(r["cause"]) or 0)
            if n is None:
                missing[r["id"]] = "its ticket message is gone"
                continue
            extra = {"ticket": str(n["ticket_id"]), "subject": n["subject"], "body": r.get("body") or "",
                     "what": "New ticket" if n["first"] else _WHAT.get(n["kind"], "Update"),
                     "author": n["author"], "customer": n["customer"],
                     "url": f"{admin_url.rstrip('/')}/admin/tickets/{n['ticket_id']}" if admin_url else ""}
        elif kind in WRITTEN:
            extra = {"subject": r.get("subject") or "", "body": r.get("body") or ""}
            if (reply := replies.get(_id_in(r["cause"]) or 0)) is not None:  # a ticket's: its number, who wrote
                extra |= {"ticket": str(reply["ticket_id"]), "author": reply["author"]}
        contexts[r["id"]] = MessageContext(
            kind=kind, customer=customer, brand=brand_view(brands.get(r["partner_id"])), today=today,
            locale=customer.language or "en", document=document, payment=payment, invoices=invoices,
            amount_due=sum((i.due for i in invoices), Decimal(0)),
            reminder=int(kind[-1]) if kind in REMINDERS else 0, prepaid=prepaid_v, card=card, service=service,
            extra=extra)
    return Loaded(contexts, missing, frozenset(c["id"] for c in customers.values() if c["marketing_opt_out"]))


# -- the template editor's preview -------------------------------------------------------------

_LATEST_DOCUMENT = """
SELECT d.id AS document_id, d.customer_id, d.partner_id, 'document:' || d.id AS cause FROM documents d
WHERE d.kind = $2 AND ($1::bigint IS NULL OR d.partner_id = $1) ORDER BY d.id DESC LIMIT 1
"""
_LATEST = {
    "payment": "SELECT p.receipt_id AS document_id, p.customer_id, c.partner_id, 'payment:' || p.id AS cause "
               "FROM payments p JOIN customers c ON c.id = p.customer_id "
               "WHERE $1::bigint IS NULL OR c.partner_id = $1 ORDER BY p.id DESC LIMIT 1",
    "reminder": "SELECT d.id AS document_id, d.customer_id, d.partner_id, 'invoice:' || d.id AS cause "
                "FROM documents d JOIN billing_documents_state s ON s.id = d.id "
                "WHERE d.kind = 'invoice' AND s.status <> 'void' AND s.open > 0 "
                "AND ($1::bigint IS NULL OR d.partner_id = $1) ORDER BY d.id DESC LIMIT 1",
    "prepaid": "SELECT NULL::bigint AS document_id, c.id AS customer_id, c.partner_id, "
               "'prepaid:' || c.id || ':' AS cause FROM customers c JOIN customer_billing b ON b.customer_id = c.id "
               "WHERE b.billing_type IN ('prepaid_daily', 'prepaid_custom') AND c.status <> 'deleted' "
               "AND ($1::bigint IS NULL OR c.partner_id = $1) ORDER BY c.id DESC LIMIT 1",
    "wave": "SELECT NULL::bigint AS document_id, s.customer_id, c.partner_id, 'status:' || s.id AS cause "
            "FROM customer_status_changes s JOIN customers c ON c.id = s.customer_id "
            "WHERE s.to_status = $2 AND ($1::bigint IS NULL OR c.partner_id = $1) ORDER BY s.id DESC LIMIT 1",
    "card_expiry": "SELECT NULL::bigint AS document_id, pm.customer_id, c.partner_id, "
                   "'card:' || pm.id || ':' AS cause FROM payment_methods pm JOIN customers c ON c.id = pm.customer_id "
                   "WHERE ($1::bigint IS NULL OR c.partner_id = $1) ORDER BY pm.id DESC LIMIT 1",
    "contract_end": "SELECT NULL::bigint AS document_id, s.customer_id, c.partner_id, "
                    "'service:' || s.id || ':' || coalesce(s.end_date::text, '') AS cause "
                    "FROM services s JOIN customers c ON c.id = s.customer_id "
                    "WHERE ($1::bigint IS NULL OR c.partner_id = $1) "
                    "ORDER BY s.end_date IS NULL, s.id DESC LIMIT 1",
}


async def latest(conn: Connection, partner_id: int | None, kind: str, *,
                 today: dt.date | None = None) -> MessageContext | None:
    """The context of the newest entity of ``kind`` (of the partner; None: of any): the newest
    invoice for 'invoice', the newest unpaid invoice for a reminder, the newest prepaid customer
    for a prepaid notice, ... None when there is none (or the kind has no entity: ticket replies,
    announcements), and the editor previews a sample."""
    if kind in ("invoice", "proforma", "credit_note"):
        found = await conn.fetchrow(_LATEST_DOCUMENT, partner_id, kind)
    elif kind in REMINDERS:
        found = await conn.fetchrow(_LATEST["reminder"], partner_id)
    elif kind in PREPAID:
        found = await conn.fetchrow(_LATEST["prepaid"], partner_id)
    elif kind in ("blocking", "inactive"):
        found = await conn.fetchrow(_LATEST["wave"], partner_id, "blocked" if kind == "blocking" else "inactive")
    elif kind in _LATEST:
        found = await conn.fetchrow(_LATEST[kind], partner_id)
    else:
        return None
    if found is None:
        return None
    row = {"id": 0, "kind": kind, **dict(found)}
    loaded = await load(conn, [row], today or dt.datetime.now(dt.UTC).date())
    return loaded.contexts.get(0)


# -- attachments -------------------------------------------------------------------------------

TICKET_FILES = """
SELECT message_id, file_name, declared_type, data FROM ticket_attachments
WHERE message_id = ANY($1::bigint[]) ORDER BY message_id, id
"""


async def ticket_files(conn: Connection, rows: Sequence[Row]) -> dict[int, tuple[Attachment, ...]]:
    """The files ticket replies carry, by message: their ticket message's (``cause``
    ``ticket_message:<id>``), as staff attached them (admin/tickets/uploads.py: the name made
    safe, the type as declared), in one query for the batch."""
    replies = {r["id"]: i for r in rows if r["kind"] == "ticket_reply" if (i := _id_in(r["cause"])) is not None}
    if not replies:
        return {}
    found: dict[int, list[Attachment]] = {}
    for f in await conn.fetch(TICKET_FILES, sorted(set(replies.values()))):
        found.setdefault(f["message_id"], []).append(Attachment(f["file_name"], f["declared_type"], bytes(f["data"])))
    return {m: tuple(found[i]) for m, i in replies.items() if i in found}


async def kept_pdfs(conn: Connection, document_ids: Sequence[int]) -> dict[int, asyncpg.Record]:
    """These documents' kind and number, and their kept PDF (``pdf`` NULL: not rendered yet)."""
    rows = await conn.fetch("SELECT d.id, d.kind, d.number, f.pdf FROM documents d "
                            "LEFT JOIN document_files f ON f.document_id = d.id WHERE d.id = ANY($1::bigint[])",
                            sorted(set(document_ids)))
    return {r["id"]: r for r in rows}

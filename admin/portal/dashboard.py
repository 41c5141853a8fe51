"""The customer's dashboard (/portal/): the items of its brand's ``dashboard``, in that order:
the balance and what it is made of (balance.py; a prepaid customer's days left), the invoices
still open, the next invoice (billing's own preview, admin/billing/run.py ``next_invoice``),
who is online, this month's traffic, the latest portal messages (a message's page marks it
read) and the open tickets. An item the brand hides is neither shown nor queried.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from admin import keys
from admin.auth.store import Connection
from admin.billing import run as billing
from admin.billing import store as billing_store
from admin.finance import common as finance
from admin.finance import queries as finance_queries
from admin.notifications import context_store
from admin.notifications.context import PrepaidView
from admin.portal import auth, balance, dashboard_store, pages
from admin.portal.common import AREA, customer
from admin.web import path_id

KINDS = {"invoice": "Invoice", "proforma": "Proforma invoice", "credit_note": "Credit note", "receipt": "Receipt"}


@dataclass(frozen=True, slots=True)
class NextInvoice:
    """The next recurring invoice as billing would issue it today: its date and total (None:
    the customer is not invoiced, being prepaid or with billing off)."""

    on: dt.date | None
    total: Decimal
    lines: int
    currency: str
    why_not: str = ""


async def money_facts(conn: Connection, customer_id: int) -> tuple[Any, balance.Explanation]:
    """The customer's billing row (admin/finance/queries.py ``customer_billing``: balance, type,
    currency) and its balance explained from its ledger."""
    b = await finance_queries.customer_billing(conn, customer_id)
    entries = balance.entries(await billing_store.ledger(conn, customer_id))
    return b, balance.explain(entries, b["currency"])


async def next_invoice(conn: Connection, customer_id: int, b: Any, today: dt.date) -> NextInvoice:
    if not b["enabled"]:
        return NextInvoice(None, Decimal(0), 0, b["currency"], "billing is off for your account")
    if b["billing_type"] != "recurring":
        return NextInvoice(None, Decimal(0), 0, b["currency"], "your account is prepaid: it is charged, not invoiced")
    on, lines = await billing.next_invoice(conn, customer_id, today)
    return NextInvoice(on, sum((line.gross for line in lines), Decimal(0)), len(lines), b["currency"])


async def prepaid(conn: Connection, customer_id: int, b: Any, today: dt.date) -> PrepaidView | None:
    """A prepaid customer's days left at its daily cost (as its prepaid notices count them)."""
    if b["billing_type"] == "recurring":
        return None
    row = await dashboard_store.prepaid_cost(conn, customer_id, today)
    return context_store.prepaid_view(row, today) if row is not None else None


@AREA.portal("/")
async def dashboard(request: web.Request) -> web.StreamResponse:
    me = customer(request)
    items = auth.brand(request).dashboard
    today = finance.today()
    facts: dict[str, Any] = {}
    async with request.app[keys.POOL].acquire() as conn:
        if {"balance", "next_invoice"} & set(items):
            b, explained = await money_facts(conn, me.customer_id)
            facts["billing"], facts["explained"] = b, explained
            if "balance" in items:
                facts["prepaid"] = await prepaid(conn, me.customer_id, b, today)
            if "next_invoice" in items:
                facts["next_invoice"] = await next_invoice(conn, me.customer_id, b, today)
        if "invoices" in items:
            facts["open_documents"] = await dashboard_store.open_documents(conn, me.customer_id)
        if "online" in items:
            facts["online"] = await dashboard_store.online(conn, me.customer_id)
        if "traffic" in items:
            facts["traffic"] = await dashboard_store.traffic(conn, me.customer_id)
        if "messages" in items:
            facts["messages"] = await dashboard_store.messages(conn, me.customer_id)
            facts["unread"] = await dashboard_store.unread(conn, me.customer_id)
        if "tickets" in items:
            facts["open_tickets"] = await dashboard_store.open_tickets(conn, me.customer_id)
    return pages.render("portal/dashboard.html", request, {
        "items": items, "today": today, "month_start": today.replace(day=1), "kinds": KINDS,
        "day": balance.day, **facts})


@AREA.portal("/messages/{id}")
async def message(request: web.Request) -> web.StreamResponse:
    """One of the customer's portal messages; opening it marks it read (not when staff look as
    the customer: the customer has not read it)."""
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await dashboard_store.message(conn, me.customer_id, path_id(request),
                                            mark=me.impersonator_id is None)
    if row is None:
        raise web.HTTPNotFound()
    return pages.render("portal/dashboard_message.html", request, {"message": row})

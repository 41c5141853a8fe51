"""The customer's finance (/portal/finance): its balance explained, its payments per month, the
statement of a period as PDF; the lists of its invoices, proforma invoices, credit notes and
payments (their receipts), newest first, by pages; each document's PDF.

The admin's code does the work: the lists are admin/finance/queries.py ``documents`` with the
customer as the filter, the PDFs admin/finance/pdf.py (a document's, kept once rendered) and
statement_pdf.py (made when asked). A document is looked up by the customer's id and its own
(finance_store.py): another customer's id answers 404, as an id that does not exist.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from aiohttp import web

from admin import keys, schemas
from admin.billing import periods
from admin.finance import common as finance
from admin.finance import pdf, statement_pdf
from admin.finance import queries as finance_queries
from admin.finance.schemas import DocumentKind, DocumentListFilter, StatementQuery
from admin.portal import balance, dashboard, finance_store, mandates_store, pages, pay_store
from admin.portal.common import AREA, customer
from admin.web import path_id

CHART_MONTHS = 12
LISTS: dict[str, tuple[DocumentKind, str, str]] = {
    # path under /portal/finance -> (document kind, the list's title, "no ..." text)
    "invoices": ("invoice", "Invoices", "No invoices yet."),
    "proformas": ("proforma", "Proforma invoices", "No proforma invoices."),
    "credit-notes": ("credit_note", "Credit notes", "No credit notes."),
    "payments": ("receipt", "Payments", "No payments yet."),
}
SORTS = {"issued_on": finance_queries.DOCUMENT_SORTS["issued_on"]}
STATUS_TEXT = {"unpaid": "Unpaid", "partially_paid": "Partly paid", "overdue": "Overdue", "paid": "Paid",
               "void": "Void", "issued": "Issued"}




def months(rows: list[Any], today: dt.date, count: int = CHART_MONTHS) -> list[dict[str, Any]]:
    """The last ``count`` months to ``today``'s, oldest first, each with its payments' sum and
    count (0 when none) and its bar's height in percent of the largest month."""
    first = periods.add_months(today.replace(day=1), -(count - 1))
    got: dict[dt.date, tuple[Decimal, int]] = {}
    for r in rows:
        amount, n = got.get(r["month"], (Decimal(0), 0))
        got[r["month"]] = (amount + r["amount"], n + r["payments"])
    top = max((a for a, _ in got.values()), default=Decimal(0))
    out = []
    for i in range(count):
        month = periods.add_months(first, i)
        amount, n = got.get(month, (Decimal(0), 0))
        out.append({"month": month, "label": f"{month:%b %Y}", "short": f"{month:%b}", "amount": amount,
                    "payments": n, "height": int(amount * 100 / top) if top else 0})
    return out


async def _overview(request: web.Request, *, errors: Mapping[str, str] | None = None,
                    asked: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    me = customer(request)
    today = finance.today()
    async with request.app[keys.POOL].acquire() as conn:
        b, explained = await dashboard.money_facts(conn, me.customer_id)
        prepaid = await dashboard.prepaid(conn, me.customer_id, b, today)
        paid = await finance_store.payments_by_month(conn, me.customer_id,
                                                     periods.add_months(today.replace(day=1), -(CHART_MONTHS - 1)))
        recent = await finance_queries.customer_documents(conn, me.customer_id, 10)
        pay_online = await pay_store.portal_gateway(conn) is not None
        direct_debit = await mandates_store.offered(conn, me.customer_id)
    chart = months(list(paid), today)
    return pages.render("portal/finance.html", request, {
        "billing": b, "explained": explained, "prepaid": prepaid, "chart": chart,
        "chart_total": sum((m["amount"] for m in chart), Decimal(0)), "recent": recent, "lists": LISTS,
        "kinds": dashboard.KINDS, "status_text": STATUS_TEXT, "day": balance.day, "days": balance.days,
        "errors": errors or {}, "statement": {"since": "", "until": "", **(asked or {})}, "section": "",
        "pay_online": pay_online, "direct_debit": direct_debit}, status=status)


@AREA.portal("/finance")
async def overview(request: web.Request) -> web.StreamResponse:
    return await _overview(request)


def _list_page(path: str) -> None:
    kind, title, empty = LISTS[path]

    async def documents(request: web.Request) -> web.StreamResponse:
        me = customer(request)
        ls = finance.page_listing(request, SORTS, {"issued_on": "date"}, "issued_on")
        ls.params = {k: v for k, v in ls.params.items() if k == "limit"}  # no filters, no other sorts
        f = DocumentListFilter(kind=kind, customer_id=me.customer_id)
        async with request.app[keys.POOL].acquire() as conn:
            rows = await finance_queries.documents(conn, me.partner_id, None, f, sort="issued_on", direction="desc",
                                                   after=ls.after, limit=ls.limit)
            pay_online = await pay_store.portal_gateway(conn) is not None
            direct_debit = await mandates_store.offered(conn, me.customer_id)
        ls.take(list(rows), lambda r: (r["sort_value"], r["id"]))
        return pages.render("portal/finance_documents.html", request, {
            "title": title, "kind": kind, "empty": empty, "rows": ls.rows, "listing": ls,
            "first_page": ls.after is None, "lists": LISTS, "section": path, "kinds": dashboard.KINDS,
            "status_text": STATUS_TEXT, "day": balance.day, "days": balance.days, "pay_online": pay_online,
            "direct_debit": direct_debit})

    documents.__name__ = documents.__qualname__ = f"{path.replace('-', '_')}_page"
    documents.__doc__ = f"The customer's {title.lower()}, newest first, by pages."
    AREA.portal(f"/finance/{path}")(documents)


for _path in LISTS:
    _list_page(_path)


@AREA.portal("/finance/documents/{id}/pdf")
async def document_pdf(request: web.Request) -> web.StreamResponse:
    """One of the customer's documents as PDF (attachment); another customer's: 404."""
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        doc = await finance_store.document(conn, me.customer_id, path_id(request))
        if doc is None:
            raise web.HTTPNotFound()
        return await pdf.response(conn, doc)


@AREA.portal("/finance/statement/pdf")
async def statement(request: web.Request) -> web.StreamResponse:
    """The customer's statement for the days asked (``since``, ``until``) as PDF, made now."""
    me = customer(request)
    asked = {k: request.query.get(k, "") for k in ("since", "until")}
    try:
        days = schemas.from_strings(asked, StatementQuery)
        async with request.app[keys.POOL].acquire() as conn:
            row = await finance_queries.customer(conn, me.partner_id, None, me.customer_id)
            if row is None:
                raise web.HTTPNotFound()
            return await statement_pdf.response(conn, row, days)
    except schemas.Invalid as e:
        return await _overview(request, errors=e.errors, asked=asked, status=422)


"""A customer's statement as PDF: its ledger from one day to another (its partner's statement
template, else the operator's, else render/templates/statement.html; with its partner's
branding), the balance before the first day carried as the opening balance. Rendered when asked
(WeasyPrint, in a thread) and never kept: a statement is not a document (no number, nothing
issued), it says what the ledger says at the time."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import asyncpg
from aiohttp import web

from admin import schemas
from admin.auth.store import Connection
from admin.billing import ledger, money
from admin.billing.periods import Period
from admin.billing.render import model, pdf, templates
from admin.finance import common, queries
from admin.finance import pdf as documents_pdf
from admin.finance.schemas import StatementQuery


def when(p: Period) -> str:
    return common.period(p.start, p.end)


def account(st: ledger.Statement, customer: model.Party, asked: StatementQuery, today: dt.date) -> model.Statement:
    """``st`` from ``asked.since`` to ``asked.until`` (by default its first entry and today, or its
    last entry when that is later): the entries of those days, the balance before them, and after."""
    entries = st.entries
    last = entries[-1].on if entries else today
    start = asked.since or (entries[0].on if entries else today)
    end = asked.until or max(today, last, start)
    if end < start:
        raise schemas.Invalid({"until": f"is before the first day ({start.isoformat()})"})
    opening = money.quantize(Decimal(0), st.currency)
    shown: list[model.StatementEntry] = []
    for e in entries:
        if e.on < start:
            opening = e.balance
        elif e.on <= end:
            what = e.description if e.period is None else f"{e.description}, {when(e.period)}"
            shown.append(model.StatementEntry(on=e.on, description=what, debit=e.debit or None,
                                              credit=e.credit or None, balance=e.balance,
                                              document_number=e.document or ""))
    return model.Statement(customer=customer, currency=st.currency, issued_on=today, from_date=start, to_date=end,
                           opening_balance=opening, closing_balance=shown[-1].balance if shown else opening,
                           entries=tuple(shown), locale=documents_pdf.LOCALE)


def filename(customer: asyncpg.Record, statement: model.Statement) -> str:
    name = f"statement-{customer['number']}-{statement.from_date.isoformat()}-{statement.to_date.isoformat()}.pdf"
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)


async def response(conn: Connection, customer: asyncpg.Record, asked: StatementQuery) -> web.StreamResponse:
    """The customer's statement for the days ``asked`` as a PDF download (Invalid: days that are not)."""
    st = await ledger.statement(conn, customer["id"])
    statement = account(st, documents_pdf.party(await queries.party(conn, customer["id"])), asked, common.today())
    brand = documents_pdf.branding(await queries.branding(conn, customer["partner_id"]))
    source = await documents_pdf.template(conn, customer["partner_id"], "statement")
    try:
        body = await asyncio.to_thread(pdf.render_pdf, statement, brand, source)
    except (pdf.RenderError, templates.TemplateError) as e:
        which = "the operator's template" if source is not None else "the template"
        raise web.HTTPServiceUnavailable(text=f"The PDF cannot be made ({which} for statements): {e}") from None
    return web.Response(body=body, content_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{filename(customer, statement)}"',
        "Cache-Control": "no-store"})

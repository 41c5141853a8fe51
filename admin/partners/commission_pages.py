"""Partners → Commissions (issue 18, percentage mode): what the ISP owes each partner (earned,
on statements, paid out, owed, per currency), a partner's commissions by month with the forms
to issue the month's statement and to record a payout, the statements (a page and CSV each) and
the payouts; and the API for the same. The rule is commissions.py's; the job that writes the
commissions is jobs.py's.

finance.view sees, finance.add issues statements and records payouts (each write in the
operations log). A partner's administrator sees only its own partner's figures (another
partner's: 404) and writes none of them (403): statements and payouts are the ISP's to make.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, oplog_store, pages, schemas
from admin.auth.store import Connection
from admin.billing import money
from admin.partners import commissions as rule
from admin.partners import commissions_store as store
from admin.partners import partners_store
from admin.partners.common import AREA
from admin.schemas import Id
from admin.web import path_id

Row = Mapping[str, Any] | asyncpg.Record

Month = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]


class MonthQuery(msgspec.Struct, kw_only=True):
    month: Month | None = None  # the current month (UTC) unless told


class PartnerQuery(msgspec.Struct, kw_only=True):
    partner_id: Id | None = None


class Commission(msgspec.Struct):
    id: int
    partner_id: int
    customer_id: int
    customer_number: str
    allocation_id: int
    document_id: int | None
    document_number: str | None
    earned_on: dt.date
    base: Decimal
    amount: Decimal
    currency: str
    release: bool  # a payment taken back (or the invoice it paid made void): negative
    statement_id: int | None
    detail: list[dict[str, Any]]


class CommissionList(msgspec.Struct):
    partner_id: int
    month: str
    items: list[Commission]
    totals: dict[str, Decimal]  # per currency


class Statement(msgspec.Struct):
    id: int
    partner_id: int
    partner_name: str
    number: str
    period_start: dt.date
    period_end: dt.date  # exclusive
    currency: str
    total: Decimal
    issued_on: dt.date
    commissions: int
    paid: Decimal  # payouts that name it


class StatementIn(msgspec.Struct, kw_only=True):
    partner_id: Id
    month: Month


class Issued(msgspec.Struct):
    statements: list[Statement]
    issued: list[int]  # the ids issued by this request (empty: issued before, or nothing open)


class Payout(msgspec.Struct):
    id: int
    partner_id: int
    statement_id: int | None
    amount: Decimal
    currency: str
    paid_on: dt.date
    reference: str
    idempotency_key: str | None
    created_by: str


class PayoutIn(msgspec.Struct, kw_only=True):
    partner_id: Id
    amount: Decimal  # above zero, in the currency's minor unit
    currency: Currency
    paid_on: dt.date
    reference: Annotated[str, msgspec.Meta(max_length=200)] = ""
    statement_id: Id | None = None
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class Owed(msgspec.Struct):
    partner_id: int
    partner_name: str
    currency: str
    earned: Decimal
    stated: Decimal  # on statements
    open: Decimal  # not on a statement yet
    paid: Decimal
    owed: Decimal  # earned less paid


def _scope(request: web.Request) -> int | None:
    return keys.principal(request).partner_id


def _writable(request: web.Request) -> None:
    if _scope(request) is not None:
        raise web.HTTPForbidden(text="statements and payouts are the ISP's: a partner's administrator only reads them")


def _money(value: Any, currency: str) -> Decimal:
    return money.quantize(Decimal(value), currency)


def _this_month() -> dt.date:
    return rule.month_of(dt.datetime.now(dt.UTC).date())


def _month(text: str | None) -> dt.date:
    if not text:
        return _this_month()
    try:
        return rule.parse_month(text)
    except ValueError as e:
        raise schemas.Invalid({"month": str(e)}) from None


async def _partner(conn: Connection, request: web.Request, partner_id: int, *, named: bool = False) -> asyncpg.Record:
    """The partner, if the principal sees it; else 404 (a path's), or ``named`` (a body's or a
    query's partner_id) the field's error."""
    scope = _scope(request)
    row = await store.partner(conn, partner_id) if scope is None or scope == partner_id else None
    if row is None:
        if named:
            raise schemas.Invalid({"partner_id": "no such partner"})
        raise web.HTTPNotFound(text="no such partner")
    return row


def _commission(r: Row) -> Commission:
    detail = r["detail"]
    return Commission(r["id"], r["partner_id"], r["customer_id"], r["customer_number"], r["allocation_id"],
                      r["document_id"], r["document_number"], r["earned_on"], Decimal(r["base"]),
                      _money(r["amount"], r["currency"]), r["currency"], r["release"], r["statement_id"],
                      store.detail_of(detail))


def _statement(r: Row) -> Statement:
    return Statement(r["id"], r["partner_id"], r["partner_name"], r["number"], r["period_start"], r["period_end"],
                     r["currency"], _money(r["total"], r["currency"]), r["issued_on"], int(r["commissions"]),
                     _money(r["paid"], r["currency"]))


def _payout(r: Row) -> Payout:
    return Payout(r["id"], r["partner_id"], r["statement_id"], _money(r["amount"], r["currency"]), r["currency"],
                  r["paid_on"], r["reference"], r["idempotency_key"], r["created_by"])


def _owed(r: Row) -> Owed:
    c = r["currency"]
    return Owed(r["partner_id"], r["partner_name"], c, _money(r["earned"], c), _money(r["stated"], c),
                _money(r["open"], c), _money(r["paid"], c), _money(r["owed"], c))


async def _list(request: web.Request, partner_id: int, month: dt.date) -> tuple[asyncpg.Record, CommissionList]:
    async with request.app[keys.POOL].acquire() as conn:
        partner = await _partner(conn, request, partner_id)
        rows = await store.commissions(conn, partner_id, month, rule.next_month(month))
    items = [_commission(r) for r in rows]
    totals: dict[str, Decimal] = {}
    for c in items:
        totals[c.currency] = totals.get(c.currency, Decimal(0)) + c.amount
    return partner, CommissionList(partner_id, f"{month:%Y-%m}", items, totals)


async def _issue(request: web.Request, partner_id: int, month: dt.date, *, named: bool = False) -> Issued:
    _writable(request)
    who = keys.principal(request)
    today = dt.datetime.now(dt.UTC).date()
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        await _partner(conn, request, partner_id, named=named)
        try:
            found, made = await store.issue(conn, partner_id, month, today=today, by=who.name)
        except store.CommissionRefused as e:
            raise schemas.Invalid({e.field or "month": str(e)}) from None
        for r in found:
            if r["id"] in made:
                await oplog_store.record(
                    conn, who, keys.client_address(request), "create", "partner_statement", r["id"],
                    partner_id=partner_id, summary=f"issued commission statement {r['number']}: "
                    f"{_money(r['total'], r['currency'])} {r['currency']}",
                    after=schemas.row_json(r, ("number", "period_start", "currency", "total")))
    return Issued([_statement(r) for r in found], made)


async def _record(request: web.Request, data: PayoutIn, *, named: bool = False) -> tuple[Payout, bool]:
    _writable(request)
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        await _partner(conn, request, data.partner_id, named=named)
        try:
            row, created = await store.record_payout(
                conn, data.partner_id, data.amount, data.currency, data.paid_on, reference=data.reference.strip(),
                key=data.idempotency_key, statement_id=data.statement_id, by=who.name)
        except store.CommissionRefused as e:
            raise schemas.Invalid({e.field or "amount": str(e)}) from None
        if created:
            await oplog_store.record(
                conn, who, keys.client_address(request), "create", "partner_payout", row["id"],
                partner_id=data.partner_id, summary=f"recorded a payout of {data.amount} {data.currency}"
                f"{' (' + data.reference.strip() + ')' if data.reference.strip() else ''}",
                after=schemas.row_json(row, ("amount", "currency", "paid_on", "reference", "statement_id")))
    return _payout(row), created


# -- pages ---------------------------------------------------------------------------------------

@AREA.page("/partners/commissions", permission="finance.view")
async def owed_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = [_owed(r) for r in await store.owed(conn, _scope(request))]
        partners = await store.partners(conn, _scope(request))
    return pages.render("partners/commissions.html", request, {"rows": rows, "partners": partners})


@AREA.page("/partners/commissions/statements", permission="finance.view")
async def statements_page(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, PartnerQuery)
    async with request.app[keys.POOL].acquire() as conn:
        rows = [_statement(r) for r in await store.statements(conn, _scope(request), f.partner_id)]
    return pages.render("partners/commission_statements.html", request, {"rows": rows})


@AREA.page("/partners/commissions/statements/{id}", permission="finance.view")
async def statement_page(request: web.Request) -> web.StreamResponse:
    s, items = await _statement_and_items(request)
    return pages.render("partners/commission_statement.html", request, {"s": s, "items": items})


@AREA.page("/partners/commissions/statements/{id}/csv", permission="finance.view")
async def statement_csv(request: web.Request) -> web.StreamResponse:
    s, items = await _statement_and_items(request)
    return listing.csv_response(
        f"{s.number}.csv", ["earned_on", "customer", "name", "document", "base", "amount", "currency", "rates"],
        [[r["earned_on"], r["customer_number"], r["customer_name"], r["document_number"] or "",
          Decimal(r["base"]), _money(r["amount"], r["currency"]), r["currency"],
          "; ".join(f"{p['category']} {p['percent']} % of {p['base']}" for p in store.detail_of(r["detail"]))]
         for r in items] + [["total", "", "", "", "", s.total, s.currency, ""]])


async def _statement_and_items(request: web.Request) -> tuple[Statement, list[asyncpg.Record]]:
    async with request.app[keys.POOL].acquire() as conn:
        row = await store.statement(conn, path_id(request), _scope(request))
        if row is None:
            raise web.HTTPNotFound(text="no such statement")
        items = await store.statement_commissions(conn, row["id"])
    return _statement(row), items


@AREA.page("/partners/commissions/payouts", permission="finance.view")
async def payouts_page(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, PartnerQuery)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await store.payouts(conn, _scope(request), f.partner_id)
    return pages.render("partners/commission_payouts.html", request, {"rows": rows})


async def _partner_page(request: web.Request, partner_id: int, month_text: str | None, *,
                        errors: Mapping[str, str] | None = None, form: Mapping[str, Any] | None = None,
                        status: int = 200) -> web.Response:
    try:
        month = _month(month_text)
    except schemas.Invalid as e:
        month, errors, status = _this_month(), e.errors, 400
    partner, listed = await _list(request, partner_id, month)
    async with request.app[keys.POOL].acquire() as conn:
        owed = [_owed(r) for r in await store.owed(conn, partner_id)]
        statements = [_statement(r) for r in await store.statements(conn, None, partner_id, limit=24)]
        payouts = await store.payouts(conn, None, partner_id, limit=24)
        tariffs = {r["id"]: r["name"] for r in await partners_store.tariff_names(conn)}
    currencies = sorted({o.currency for o in owed}) or ["EUR"]
    issued = [s for s in statements if s.period_start == month]
    open_ = {c.currency for c in listed.items if c.statement_id is None}
    return pages.render("partners/commission_partner.html", request, {
        "p": partner, "month": month, "listed": listed, "owed": owed, "statements": statements,
        "payouts": payouts, "currencies": currencies, "errors": errors or {}, "tariffs": tariffs,
        "issued": issued, "can_issue": bool(open_ - {s.currency for s in issued}),
        "late": bool(open_ & {s.currency for s in issued}),
        "statement_options": [(s.id, f"{s.number} ({s.total} {s.currency})") for s in statements],
        "form": form or {"paid_on": dt.datetime.now(dt.UTC).date().isoformat(), "currency": currencies[0],
                         "idempotency_key": uuid.uuid4().hex},
        "prev": rule.month_of(month - dt.timedelta(days=1)), "next": rule.next_month(month),
        "writable": _scope(request) is None, "notice": request.query.get("done", "")}, status=status)


@AREA.page("/partners/commissions/{id}", permission="finance.view")
async def partner_page(request: web.Request) -> web.StreamResponse:
    return await _partner_page(request, path_id(request), request.query.get("month"))


@AREA.page("/partners/commissions/{id}/statements", permission="finance.add", method="POST")
async def issue_form(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request)
    form = await request.post()
    try:
        month = _month(str(form.get("month", "")))
        done = await _issue(request, partner_id, month)
    except schemas.Invalid as e:
        return await _partner_page(request, partner_id, str(form.get("month", "")), errors=e.errors, status=400)
    if not done.statements:
        raise web.HTTPFound(f"/admin/partners/commissions/{partner_id}?month={month:%Y-%m}&done=nothing")
    raise web.HTTPFound(f"/admin/partners/commissions/statements/{done.statements[0].id}")


@AREA.page("/partners/commissions/{id}/payouts", permission="finance.add", method="POST")
async def payout_form(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request)
    form = await request.post()
    shown = {k: str(v) for k, v in form.items() if k != "_csrf"}
    try:
        data = schemas.from_strings({**shown, "partner_id": str(partner_id)}, PayoutIn)
        await _record(request, data)
    except schemas.Invalid as e:
        return await _partner_page(request, partner_id, shown.get("month"), errors=e.errors, form=shown, status=400)
    raise web.HTTPFound(f"/admin/partners/commissions/{partner_id}?done=payout#payouts")


# -- API -----------------------------------------------------------------------------------------

@AREA.api("GET", "/partners/{id}/commissions", permission="finance.view", summary="A partner's commissions",
          query=MonthQuery, response=CommissionList)
async def api_commissions(request: web.Request) -> web.StreamResponse:
    """The commissions a partner earned in a month (one per allocation of a payment; a payment
    taken back gives a negative one), with each line's base and rate."""
    f = schemas.query(request, MonthQuery)
    _, listed = await _list(request, path_id(request), _month(f.month))
    return schemas.json(listed)


@AREA.api("GET", "/partners/commissions/owed", permission="finance.view", summary="What is owed to partners",
          response=list[Owed])
async def api_owed(request: web.Request) -> web.StreamResponse:
    """Per partner and currency: commissions earned, on statements, paid out, and owed (earned less paid)."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json([_owed(r) for r in await store.owed(conn, _scope(request))])


@AREA.api("GET", "/partners/commissions/statements", permission="finance.view", summary="Commission statements",
          query=PartnerQuery, response=list[Statement])
async def api_statements(request: web.Request) -> web.StreamResponse:
    """The commission statements, newest period first (500 at most)."""
    f = schemas.query(request, PartnerQuery)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json([_statement(r) for r in await store.statements(conn, _scope(request), f.partner_id)])


@AREA.api("POST", "/partners/commissions/statements", permission="finance.add",
          summary="Issue a month's commission statements", body=StatementIn, response=Issued)
async def api_issue(request: web.Request) -> web.StreamResponse:
    """Issue the partner's statements of the month, one per currency, taking its open commissions;
    the same month again answers with the statements it issued (``issued`` empty)."""
    data = await schemas.body(request, StatementIn)
    return schemas.json(await _issue(request, data.partner_id, _month(data.month), named=True))


@AREA.api("GET", "/partners/commissions/payouts", permission="finance.view", summary="Payouts to partners",
          query=PartnerQuery, response=list[Payout])
async def api_payouts(request: web.Request) -> web.StreamResponse:
    """The payouts, newest first (500 at most)."""
    f = schemas.query(request, PartnerQuery)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json([_payout(r) for r in await store.payouts(conn, _scope(request), f.partner_id)])


@AREA.api("POST", "/partners/commissions/payouts", permission="finance.add", summary="Record a payout to a partner",
          body=PayoutIn, response=Payout, status=201)
async def api_payout(request: web.Request) -> web.StreamResponse:
    """Record money paid out to a partner (at most what is owed in that currency); the same
    ``idempotency_key`` again answers with the first payout and records nothing."""
    data = await schemas.body(request, PayoutIn)
    payout, _ = await _record(request, data, named=True)
    return schemas.json(payout, status=201)

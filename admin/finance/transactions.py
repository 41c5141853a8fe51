"""The ledger's transactions: the list (customer, kind, direction, dates, amounts), what the whole
filtered list adds up to, its CSV for accounting (exports.py); and the same in the API."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin import keys, listing, schemas
from admin.finance import common, exports, queries
from admin.finance.area import AREA
from admin.finance.schemas import Total, Transaction, TransactionExportQuery, TransactionFilter, TransactionQuery
from admin.schemas import Page

SORT_KINDS = {"posted_on": "date", "amount": "decimal", "id": "int"}
KINDS = ("charge", "fee", "refund", "payment", "credit_note", "correction", "reversal")


def _key(row: Any) -> tuple[Any, int]:
    return row["sort_value"], row["id"]


def totals_of(rows: list[Any]) -> list[Total]:
    return [Total(currency=r["currency"], count=r["count"], debit=r["debit"], credit=r["credit"],
                  net=r["credit"] - r["debit"]) for r in rows]


@AREA.page("/finance/transactions", permission="finance.view")
async def transactions_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    ls = common.page_listing(request, queries.TRANSACTION_SORTS, SORT_KINDS, "posted_on")
    errors: dict[str, str] = {}
    try:
        f = common.query(request, TransactionFilter)
    except schemas.Invalid as e:
        errors, f = e.errors, TransactionFilter()
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.transactions(conn, *common.scope(who), f, sort=ls.sort, direction=ls.direction,
                                              after=after, limit=limit)

    if ls.wants_csv and not errors:
        delimiter, bom = exports.options(request)
        return await exports.transactions(request, who, f, sort=ls.sort, direction=ls.direction, delimiter=delimiter,
                                          bom=bom)
    ls.take(await fetch(ls.after, ls.limit) if not errors else [], _key)
    async with pool.acquire() as conn:
        totals = totals_of(await queries.transaction_totals(conn, *common.scope(who), f)) if not errors else []
    return common.render("finance/transactions.html", request, {
        "ls": ls, "f": f, "errors": errors, "totals": totals, "kinds": KINDS,
        "values": {k: v for k, v in request.query.items()}}, status=422 if errors else 200)


@AREA.api("GET", "/finance/transactions", permission="finance.view", summary="List transactions",
          query=TransactionQuery, response=Page[Transaction])
async def api_transactions(request: web.Request) -> web.StreamResponse:
    """The ledger's rows, newest first by default; `next` is the cursor for `after`."""
    who = keys.principal(request)
    f = common.query(request, TransactionQuery)
    after = common.typed_cursor(listing.decode_cursor(f.after), SORT_KINDS[f.sort])
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.transactions(conn, *common.scope(who), f, sort=f.sort, direction=f.dir, after=after,
                                          limit=f.limit)
    return schemas.json(Page[Transaction]([common.out(Transaction, r) for r in rows[: f.limit]],
                                          common.next_cursor(rows, f.limit, _key)))


@AREA.api("GET", "/finance/transactions.csv", permission="finance.view", summary="Export transactions as CSV",
          query=TransactionExportQuery)
async def api_transactions_csv(request: web.Request) -> web.StreamResponse:
    """`text/csv`: every transaction the filter selects (all pages), for accounting software: the
    posting date, the id, the customer, kind, description, document, a debit and a credit column
    with a decimal point in the currency's minor unit, and the currency."""
    f = common.query(request, TransactionExportQuery)
    return await exports.transactions(request, keys.principal(request), f, sort=f.sort, direction=f.dir,
                                      delimiter=f.delimiter, bom=f.bom)


@AREA.api("GET", "/finance/transactions/totals", permission="finance.view", summary="Sum transactions",
          query=TransactionFilter, response=list[Total])
async def api_transaction_totals(request: web.Request) -> web.StreamResponse:
    """What the transactions of the filter add up to, per currency (`net`: credits less debits)."""
    who = keys.principal(request)
    f = common.query(request, TransactionFilter)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.transaction_totals(conn, *common.scope(who), f)
    return schemas.json(totals_of(rows))

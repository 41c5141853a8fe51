"""Accounting exports: what a documents list or the transactions list selects (its filters and
its order, every page of it) as CSV for accounting software, through
admin/billing/render/csv_export.py (amounts with a point in the currency's minor unit, ISO dates,
a formula-like text quoted by admin/csvcells.py). Streamed: the rows are read EXPORT_PAGE at a
time by their keyset (never OFFSET, never all at once) and written as each page comes, a
connection taken per page only (a slow download holds none)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from admin import keys
from admin.auth.principal import Principal
from admin.billing.render import csv_export
from admin.finance import common, queries

EXPORT_PAGE = 2000

Fetch = Callable[[list[Any] | None, int], Awaitable[list[Any]]]
"""A page of rows after a cursor, one more than the limit asked (as the list queries give them)."""


def _key(row: Any) -> list[Any]:
    return [row["sort_value"], row["id"]]


async def pages(fetch: Fetch, size: int | None = None) -> AsyncIterator[list[Any]]:
    """Every row ``fetch`` gives, ``size`` (EXPORT_PAGE) at a time, each page after the last one's keyset."""
    size = size or EXPORT_PAGE
    after: list[Any] | None = None
    while True:
        rows = await fetch(after, size)
        page = rows[:size]
        if page:
            yield page
        if len(rows) <= size:
            return
        after = _key(page[-1])


async def stream(request: web.Request, filename: str, writer: csv_export.CsvWriter,
                 rows: AsyncIterator[Sequence[Any]]) -> web.StreamResponse:
    """``rows`` (pages of them) as a CSV download."""
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": f'attachment; filename="{filename}"'})
    await response.prepare(request)
    await response.write(writer.header())
    async for page in rows:
        await response.write(writer.rows(page))
    await response.write_eof()
    return response


async def documents(request: web.Request, who: Principal, f: Any, *, sort: str, direction: str, filename: str,
                    delimiter: csv_export.Delimiter = ",", bom: bool = False) -> web.StreamResponse:
    """The documents ``f`` (a DocumentListFilter) selects, in ``sort`` order, as accounting's CSV."""
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.documents(conn, *common.scope(who), f, sort=sort, direction=direction, after=after,
                                           limit=limit)

    async def rows() -> AsyncIterator[list[dict[str, Any]]]:
        async for page in pages(fetch):
            async with pool.acquire() as conn:
                numbers = await queries.document_numbers(conn, [r["related_id"] for r in page if r["related_id"]])
            yield [{**r, "customer_name": r["customer"], "customer_tax_id": "",
                    "related_number": numbers.get(r["related_id"], "")} for r in page]

    writer = csv_export.CsvWriter(csv_export.INVOICE_COLUMNS, delimiter=delimiter, bom=bom)
    return await stream(request, filename, writer, rows())


async def transactions(request: web.Request, who: Principal, f: Any, *, sort: str, direction: str,
                       delimiter: csv_export.Delimiter = ",", bom: bool = False) -> web.StreamResponse:
    """The transactions ``f`` (a TransactionFilter) selects, in ``sort`` order, as accounting's CSV."""
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.transactions(conn, *common.scope(who), f, sort=sort, direction=direction,
                                              after=after, limit=limit)

    async def rows() -> AsyncIterator[list[dict[str, Any]]]:
        async for page in pages(fetch):
            yield [{**r, "customer_name": r["customer"]} for r in page]

    writer = csv_export.CsvWriter(csv_export.TRANSACTION_COLUMNS, delimiter=delimiter, bom=bom)
    return await stream(request, "transactions.csv", writer, rows())


def options(request: web.Request) -> tuple[csv_export.Delimiter, bool]:
    """A list page's export options from its query string: ``delimiter=;`` and ``bom=1``."""
    delimiter: csv_export.Delimiter = ";" if request.query.get("delimiter") == ";" else ","
    return delimiter, request.query.get("bom", "") not in ("", "0", "false", "off")

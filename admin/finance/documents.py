"""Documents: a list per kind (invoices, proforma invoices, credit notes, receipts) with their
status, a document's page (lines, taxes, what paid it) with its actions (a payment by hand, a
void, a credit note, the PDF); and the same in the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, schemas
from admin.auth.store import Connection
from admin.billing import ledger, money
from admin.finance import actions, common, exports, pdf, queries
from admin.finance.area import AREA
from admin.finance.schemas import (
    METHODS,
    Allocation,
    CreditNoteIn,
    Document,
    DocumentDetail,
    DocumentExportQuery,
    DocumentFilter,
    DocumentQuery,
    Line,
    LineTax,
    Payment,
    PaymentIn,
    Related,
    TaxSummary,
    Voided,
    VoidIn,
)
from admin.schemas import Page
from admin.web import Handler, path_id

SORT_KINDS = {"issued_on": "date", "number": "text", "total": "decimal", "due_on": "date"}
STATUSES = ("unpaid", "partially_paid", "overdue", "paid", "void", "issued")
KINDS: dict[str, tuple[str, str, str]] = {
    # kind -> (its list's path, the list's title, one of them)
    "invoice": ("/finance/invoices", "Invoices", "Invoice"),
    "proforma": ("/finance/proformas", "Proforma invoices", "Proforma invoice"),
    "credit_note": ("/finance/credit-notes", "Credit notes", "Credit note"),
    "receipt": ("/finance/receipts", "Receipts", "Receipt"),
}


def _key(row: Any) -> tuple[Any, int]:
    return row["sort_value"], row["id"]


class _Filter(DocumentFilter, kw_only=True):
    """A list page's filter: its kind comes from the page."""

    kind: str | None = None


def _list_page(kind: str) -> Handler:
    path, title, _ = KINDS[kind]

    async def documents_page(request: web.Request) -> web.StreamResponse:
        who = keys.principal(request)
        ls = common.page_listing(request, queries.DOCUMENT_SORTS, SORT_KINDS, "issued_on")
        errors: dict[str, str] = {}
        try:
            f = common.query(request, DocumentFilter)
        except schemas.Invalid as e:
            errors, f = e.errors, DocumentFilter()
        scoped = _Filter(**msgspec.structs.asdict(f), kind=kind)
        pool = request.app[keys.POOL]

        async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
            async with pool.acquire() as conn:
                return await queries.documents(conn, *common.scope(who), scoped, sort=ls.sort,
                                               direction=ls.direction, after=after, limit=limit)

        if ls.wants_csv and not errors:
            delimiter, bom = exports.options(request)
            return await exports.documents(request, who, scoped, sort=ls.sort, direction=ls.direction,
                                           filename=f"{path.rsplit('/', 1)[1]}.csv", delimiter=delimiter, bom=bom)
        ls.take(await fetch(ls.after, ls.limit) if not errors else [], _key)
        return common.render("finance/documents.html", request, {
            "ls": ls, "f": f, "errors": errors, "kind": kind, "title": title, "list_path": "/admin" + path,
            "statuses": STATUSES, "values": dict(request.query)}, status=422 if errors else 200)

    documents_page.__name__ = documents_page.__qualname__ = f"{kind}_list_page"
    return AREA.page(path, permission="finance.view")(documents_page)


invoices_page = _list_page("invoice")
proformas_page = _list_page("proforma")
credit_notes_page = _list_page("credit_note")
receipts_page = _list_page("receipt")


# -- one document -------------------------------------------------------------------------------

async def document_or_404(conn: Connection, request: web.Request, document_id: int) -> asyncpg.Record:
    who = keys.principal(request)
    row = await queries.document(conn, *common.scope(who), document_id)
    if row is None:
        raise web.HTTPNotFound()
    return row


def tax_summary(lines: list[Any]) -> list[TaxSummary]:
    """Per rate: the net of the lines it was charged on and its tax (a line may pay several)."""
    out: dict[tuple[str, Decimal], list[Decimal]] = {}
    for line in lines:
        for t in line["taxes"]:
            key = (t["name"], Decimal(t["percent"]))
            net, tax = out.get(key, [Decimal(0), Decimal(0)])
            out[key] = [net + line["net"], tax + Decimal(t["amount"])]
    return [TaxSummary(name=name, percent=percent, net=net, tax=tax) for (name, percent), (net, tax) in out.items()]


async def detail(conn: Connection, row: asyncpg.Record) -> DocumentDetail:
    lines = await queries.document_lines(conn, row["id"])
    allocated = await queries.allocations(conn, row["id"])
    others = await queries.related(conn, row["id"], row["related_id"])
    void = Voided(row["void_at"], row["void_by"], row["void_reason"]) if row["void_at"] is not None else None
    base = msgspec.structs.asdict(common.out(Document, row))
    return DocumentDetail(
        **base,
        lines=[msgspec.structs.replace(common.out(Line, r, taxes=[]), taxes=[
            LineTax(t["name"], Decimal(t["percent"]), Decimal(t["amount"])) for t in r["taxes"]]) for r in lines],
        taxes=tax_summary(lines), allocations=[common.out(Allocation, r) for r in allocated],
        related=[common.out(Related, r) for r in others], void=void)


def payable(doc: common.Row) -> bool:
    return doc["kind"] in ("invoice", "proforma") and doc["status"] in ("unpaid", "partially_paid", "overdue")


def voidable(doc: common.Row) -> bool:
    return doc["status"] != "void" and not (doc["kind"] == "proforma" and doc["status"] == "paid")


def creditable(doc: common.Row) -> bool:
    return bool(doc["kind"] == "invoice" and doc["status"] != "void")


async def _page(conn: Connection, request: web.Request, row: asyncpg.Record, *, errors: Mapping[str, Any] | None = None,
                values: Mapping[str, Any] | None = None, status: int = 200) -> web.Response:
    d = await detail(conn, row)
    defaults = {"amount": str(money.quantize(d.open, d.currency)) if d.open > 0 else "",
                "on": common.today().isoformat(), "method": "bank_transfer", "reference": "", "key": common.form_key()}
    given = {k: str(v) for k, v in (values or {}).items() if k != "_csrf"}
    return common.render("finance/document.html", request, {
        "d": d, "kind_title": KINDS[d.kind][2], "list_path": "/admin" + KINDS[d.kind][0], "errors": errors or {},
        "pay": {**defaults, **given} if given.get("form") == "pay" else defaults,
        "values": given, "methods": list(METHODS.items()), "payable": payable(row), "voidable": voidable(row),
        "creditable": creditable(row), "done": request.query.get("done", "")}, status=status)


@AREA.page("/finance/documents/{id}", permission="finance.view")
async def document_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await document_or_404(conn, request, path_id(request))
        return await _page(conn, request, row)


def _form_key(customer_id: int, form: Mapping[str, Any]) -> str | None:
    key = str(form.get("key", ""))
    return f"form:{customer_id}:{key}" if key else None


Act = Callable[[Connection, asyncpg.Record, Mapping[str, Any]], Awaitable[str]]
"""A form's action on its row (a document, a customer): does it, and says where to go next."""


class Shown(Protocol):
    """A page that shows its row again with a form's errors (and the values given)."""

    def __call__(self, conn: Connection, request: web.Request, row: asyncpg.Record, /, *,
                 errors: Mapping[str, Any] | None = None, values: Mapping[str, Any] | None = None,
                 status: int = 200) -> Awaitable[web.Response]: ...


async def form_action(request: web.Request, form_name: str, load: Callable[[Connection], Awaitable[asyncpg.Record]],
                      page: Shown, act: Act) -> web.StreamResponse:
    """A page's form: its row is looked up first (``load``: in scope or 404, before any input is
    read), ``act`` does it and says where to go; a refusal shows the page again with the form's
    errors (422 for its fields, 409 for what the ledger refuses)."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await load(conn)
        form = await request.post()
        values = {**form, "form": form_name}
        try:
            target = await act(conn, row, form)
        except schemas.Invalid as e:
            return await page(conn, request, row, errors={form_name: e.errors}, values=values, status=422)
        except ledger.LedgerError as e:
            return await page(conn, request, row, errors={form_name: {"": str(e)}}, values=values, status=409)
    raise web.HTTPFound(target)


async def _act(request: web.Request, form_name: str, act: Act) -> web.StreamResponse:
    return await form_action(request, form_name, lambda conn: document_or_404(conn, request, path_id(request)),
                             _page, act)


@AREA.page("/finance/documents/{id}/pay", permission="finance.add", method="POST")
async def pay_form(request: web.Request) -> web.StreamResponse:
    async def pay(conn: Connection, row: asyncpg.Record, form: Mapping[str, Any]) -> str:
        data = schemas.from_strings(form, PaymentIn)
        customer = await common.customer_or_404(conn, request, row["customer_id"])
        await actions.pay(conn, request, customer, data, document=row, key=_form_key(customer["id"], form))
        return f"/admin/finance/documents/{row['id']}?done=paid"

    return await _act(request, "pay", pay)


@AREA.page("/finance/documents/{id}/void", permission="finance.edit", method="POST")
async def void_form(request: web.Request) -> web.StreamResponse:
    async def void(conn: Connection, row: asyncpg.Record, form: Mapping[str, Any]) -> str:
        await actions.void(conn, request, row, schemas.from_strings(form, VoidIn).reason)
        return f"/admin/finance/documents/{row['id']}?done=void"

    return await _act(request, "void", void)


@AREA.page("/finance/documents/{id}/credit-note", permission="finance.add", method="POST")
async def credit_note_form(request: web.Request) -> web.StreamResponse:
    async def credit(conn: Connection, row: asyncpg.Record, form: Mapping[str, Any]) -> str:
        if row["kind"] != "invoice":
            raise ledger.LedgerError(f"only an invoice is credited, not a {row['kind'].replace('_', ' ')}")
        note_id = await actions.credit(conn, request, row, schemas.from_strings(form, CreditNoteIn))
        return f"/admin/finance/documents/{note_id}?done=credited"

    return await _act(request, "credit", credit)


@AREA.page("/finance/documents/{id}/pdf", permission="finance.view")
async def pdf_page(request: web.Request) -> web.StreamResponse:
    """The document as PDF: rendered the first time it is asked for, then kept (document_files)."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await document_or_404(conn, request, path_id(request))
        return await pdf.response(conn, row)


# -- the API ------------------------------------------------------------------------------------

@AREA.api("GET", "/finance/documents", permission="finance.view", summary="List documents", query=DocumentQuery,
          response=Page[Document])
async def api_documents(request: web.Request) -> web.StreamResponse:
    """Invoices, proforma invoices, credit notes and receipts (`kind` one of them), newest first by default."""
    who = keys.principal(request)
    f = common.query(request, DocumentQuery)
    after = common.typed_cursor(listing.decode_cursor(f.after), SORT_KINDS[f.sort])
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.documents(conn, *common.scope(who), f, sort=f.sort, direction=f.dir, after=after,
                                       limit=f.limit)
    return schemas.json(Page[Document]([common.out(Document, r) for r in rows[: f.limit]],
                                       common.next_cursor(rows, f.limit, _key)))


@AREA.api("GET", "/finance/documents.csv", permission="finance.view", summary="Export documents as CSV",
          query=DocumentExportQuery)
async def api_documents_csv(request: web.Request) -> web.StreamResponse:
    """`text/csv`: every document the filter selects (all pages), for accounting software: number,
    kind, dates (the period's last day, not its exclusive end), the customer, the currency, net,
    tax, total and paid with a decimal point in the currency's minor unit, the status, and the
    invoice a credit note credits (or the proforma a tax invoice pays)."""
    f = common.query(request, DocumentExportQuery)
    return await exports.documents(request, keys.principal(request), f, sort=f.sort, direction=f.dir,
                                   filename=f"{f.kind or 'document'}s.csv".replace("_", "-"), delimiter=f.delimiter,
                                   bom=f.bom)


@AREA.api("GET", "/finance/documents/{id}", permission="finance.view", summary="Get a document",
          response=DocumentDetail)
async def api_document(request: web.Request) -> web.StreamResponse:
    """A document with its lines, taxes per rate, allocations, related documents and its void."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await document_or_404(conn, request, path_id(request))
        return schemas.json(await detail(conn, row))


@AREA.api("GET", "/finance/documents/{id}/pdf", permission="finance.view", summary="A document as PDF")
async def api_document_pdf(request: web.Request) -> web.StreamResponse:
    """`application/pdf`: rendered the first time it is asked for, then the same bytes every time."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await document_or_404(conn, request, path_id(request))
        return await pdf.response(conn, row)


async def payment_out(conn: Connection, transaction_id: int) -> Payment:
    r = await queries.receipt_of(conn, transaction_id)
    assert r is not None
    return Payment(transaction_id=transaction_id, customer_id=r["customer_id"], receipt_id=r["document_id"],
                   receipt_number=r["number"], amount=r["amount"], currency=r["currency"], balance=r["balance"])


def api_key_of(customer_id: int, data: PaymentIn) -> str | None:
    """The API's idempotency key, the customer's own (a key cannot reach another customer's payment)."""
    return f"api:{customer_id}:{data.idempotency_key}" if data.idempotency_key else None


@AREA.api("POST", "/finance/documents/{id}/payments", permission="finance.add", body=PaymentIn, response=Payment,
          status=201, summary="Record a payment of an invoice")
async def api_pay(request: web.Request) -> web.StreamResponse:
    """A payment by hand, allocated to this invoice first (a proforma invoice: its tax invoice is
    issued and paid); what is more goes to what else the customer owes, oldest first."""
    document_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await document_or_404(conn, request, document_id)
        data = await schemas.body(request, PaymentIn)
        customer = await common.customer_or_404(conn, request, row["customer_id"])
        try:
            transaction_id = await actions.pay(conn, request, customer, data, document=row,
                                               key=api_key_of(customer["id"], data))
        except ledger.LedgerError as e:
            raise common.refused(e) from None
        return schemas.json(await payment_out(conn, transaction_id), status=201)


@AREA.api("POST", "/finance/documents/{id}/void", permission="finance.edit", body=VoidIn, response=DocumentDetail,
          summary="Void a document")
async def api_void(request: web.Request) -> web.StreamResponse:
    """An invoice's charges are reversed and what paid it is released (and allocated again); a
    receipt or credit note only while nothing of it is applied; the document keeps its number."""
    document_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await document_or_404(conn, request, document_id)
        data = await schemas.body(request, VoidIn)
        try:
            await actions.void(conn, request, row, data.reason)
        except ledger.LedgerError as e:
            raise common.refused(e) from None
        return schemas.json(await detail(conn, await document_or_404(conn, request, document_id)))


@AREA.api("POST", "/finance/documents/{id}/credit-notes", permission="finance.add", body=CreditNoteIn,
          response=DocumentDetail, status=201, summary="Credit an invoice")
async def api_credit_note(request: web.Request) -> web.StreamResponse:
    """A credit note of the invoice: all that is left of it, or `amount` (split over its lines,
    each keeping its taxes)."""
    document_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await document_or_404(conn, request, document_id)
        data = await schemas.body(request, CreditNoteIn)
        if row["kind"] != "invoice":
            raise web.HTTPConflict(text=f"only an invoice is credited, not a {row['kind'].replace('_', ' ')}")
        try:
            note_id = await actions.credit(conn, request, row, data)
        except ledger.LedgerError as e:
            raise common.refused(e) from None
        return schemas.json(await detail(conn, await document_or_404(conn, request, note_id)), status=201)

"""A customer's Billing tab (/admin/customers/{id}/billing, beside the customer's page): its
balance and billing settings (editable), its statement (and as PDF, statement_pdf.py), what its
next invoice would say, its documents, a payment by hand, an item for the next invoice and a
proforma invoice of the next invoice; and the same in the API under /api/v1/customers/{id}/... .
The customer is looked up in the principal's scope first, so another partner's customer is not
found (404) before any input is read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import idempotency, keys, oplog_store, schemas
from admin.auth.store import Connection
from admin.billing import ledger, money
from admin.billing import run as billing
from admin.finance import actions, common, documents, queries, statement_pdf
from admin.finance.area import AREA
from admin.finance.schemas import (
    CUSTOMER_BILLING_EDITABLE,
    METHODS,
    CustomerBilling,
    CustomerBillingIn,
    CustomerBillingPatch,
    DocumentDetail,
    Item,
    ItemIn,
    NextInvoice,
    NextInvoiceQuery,
    Payment,
    PaymentIn,
    PreviewLine,
    ProformaIn,
    Statement,
    StatementEntry,
    StatementQuery,
)
from admin.web import path_id

STATEMENT_SHOWN = 100
PROFORMA_DAYS = 366  # a proforma invoice is issued within a year of today
DOCUMENTS_SHOWN = 50
BILLING_TYPES = (("recurring", "recurring (invoices)"), ("prepaid_daily", "prepaid, charged daily"),
                 ("prepaid_custom", "prepaid, charged per period"))
TIMINGS = (("advance", "in advance"), ("arrears", "in arrears"))
CONSTRAINTS = {
    "customer_billing_day_range": ("billing_day", "must be from 1 to 28"),
    "customer_billing_months_range": ("months_in_advance", "must be from 1 to 12"),
    "customer_billing_period_days_range": ("period_days", "must be from 1 to 366"),
    "customer_billing_due_range": ("due_days", "must be from 0 to 365"),
    "customer_billing_block_range": ("block_after_due_days", "must be from 0 to 365"),
    "customer_billing_deactivate_range": ("deactivate_after_block_days", "must be from 0 to 365"),
}


def _billing_out(row: Any) -> CustomerBilling:
    return common.out(CustomerBilling, row)


def _statement_out(customer_id: int, st: ledger.Statement) -> Statement:
    return Statement(customer_id=customer_id, currency=st.currency, balance=st.balance, entries=[
        StatementEntry(on=e.on, description=e.description, document=e.document, debit=e.debit, credit=e.credit,
                       balance=e.balance, period_start=e.period.start if e.period else None,
                       period_end=e.period.end if e.period else None) for e in st.entries])


async def next_invoice(conn: Connection, customer: asyncpg.Record, on: dt.date) -> NextInvoice:
    date, lines = await billing.next_invoice(conn, customer["id"], on)
    out = [PreviewLine(description=line.description, reason=line.reason,
                       period_start=line.period.start if line.period else None,
                       period_end=line.period.end if line.period else None, net=line.net, tax=line.tax,
                       gross=line.gross) for line in lines]
    return NextInvoice(on=date, currency=customer["currency"], total=sum((line.gross for line in out), Decimal(0)),
                       lines=out)


def _settings_values(row: common.Row) -> dict[str, Any]:
    values = {k: row[k] for k in CUSTOMER_BILLING_EDITABLE}
    values["min_balance"] = str(money.quantize(row["min_balance"], row["currency"]))
    return values


async def _page(conn: Connection, request: web.Request, customer: asyncpg.Record, *,
                errors: Mapping[str, Mapping[str, str]] | None = None, values: Mapping[str, Any] | None = None,
                status: int = 200) -> web.Response:
    b = await queries.customer_billing(conn, customer["id"])
    st = await ledger.statement(conn, customer["id"])
    upcoming = await next_invoice(conn, customer, common.today())
    docs = await queries.customer_documents(conn, customer["id"], DOCUMENTS_SHOWN + 1)
    items = await queries.pending_items(conn, customer["id"])
    services, tax_groups = await queries.item_choices(conn, customer["id"])
    given = {k: str(v) for k, v in (values or {}).items() if k != "_csrf"}
    form = given.get("form", "")
    settings = {**_settings_values(b), **given} if form == "settings" else _settings_values(b)
    if form == "settings":
        settings["enabled"] = "enabled" in given
    everything = request.query.get("statement") == "all"
    entries = list(st.entries)
    return common.render("finance/customer.html", request, {
        "c": customer, "b": b, "statement": entries if everything else entries[-STATEMENT_SHOWN:],
        "earlier": 0 if everything else max(0, len(entries) - STATEMENT_SHOWN),
        "brought_forward": entries[-STATEMENT_SHOWN - 1].balance if not everything and len(entries) > STATEMENT_SHOWN
        else None,
        "upcoming": upcoming, "documents": docs[:DOCUMENTS_SHOWN], "more_documents": len(docs) > DOCUMENTS_SHOWN,
        "items": items, "services": [(s["id"], s["name"]) for s in services],
        "tax_groups": [(g["id"], g["name"]) for g in tax_groups], "settings": settings,
        "pay": {"amount": "", "on": common.today().isoformat(), "method": "bank_transfer", "reference": "",
                "key": common.form_key(), **(given if form == "pay" else {})},
        "item": {"description": "", "quantity": "1", "unit_price": "", "service_id": "", "tax_group_id": "",
                 "price_includes_tax": False, **(given if form == "item" else {})},
        "proforma": {"on": common.today().isoformat(), "key": common.form_key(),
                     **(given if form == "proforma" else {})},
        "statement_days": {"since": "", "until": "", **(given if form == "statement" else {})},
        "errors": errors or {}, "methods": list(METHODS.items()), "billing_types": BILLING_TYPES,
        "timings": TIMINGS, "done": request.query.get("done", ""), "doc_kinds": documents.KINDS},
        status=status)


@AREA.page("/customers/{id}/billing", permission="finance.view")
async def billing_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        return await _page(conn, request, customer)


async def _save(conn: Connection, request: web.Request, customer: asyncpg.Record, changes: dict[str, Any]) -> None:
    """Change the customer's billing settings (``changes``: validated values) and log what changed."""
    who = keys.principal(request)
    if "min_balance" in changes:
        changes["min_balance"] = common.amount(str(changes["min_balance"]), customer["currency"], "min_balance",
                                               positive=False)
    try:
        async with conn.transaction():
            await common.customer_or_404(conn, request, customer["id"], lock=True)
            before = await queries.customer_billing(conn, customer["id"])
            changed = {k: v for k, v in changes.items() if before[k] != v}
            if not changed:
                return
            await queries.update_customer_billing(conn, customer["id"], changed)
            old = schemas.row_json(before)
            await oplog_store.record(
                conn, who, keys.client_address(request), "update", "customer_billing", customer["id"],
                customer_id=customer["id"], partner_id=customer["partner_id"],
                summary=f"billing settings: changed {', '.join(changed)}",
                before={k: old[k] for k in changed}, after=schemas.jsonable(changed))
    except asyncpg.CheckViolationError as e:
        field, text = CONSTRAINTS.get(e.constraint_name or "", ("", "the settings break a rule of the database"))
        raise schemas.Invalid({field: text}) from None


async def _act(request: web.Request, form_name: str, act: documents.Act) -> web.StreamResponse:
    """A billing tab's form (documents.form_action over the customer and this tab)."""
    return await documents.form_action(
        request, form_name, lambda conn: common.customer_or_404(conn, request, path_id(request)), _page, act)


@AREA.page("/customers/{id}/billing", permission="finance.edit", method="POST")
async def save_form(request: web.Request) -> web.StreamResponse:
    """Save the customer's billing settings."""
    async def save(conn: Connection, customer: asyncpg.Record, form: Mapping[str, Any]) -> str:
        data = schemas.from_strings(form, CustomerBillingIn)
        await _save(conn, request, customer, msgspec.structs.asdict(data))
        return f"/admin/customers/{customer['id']}/billing?done=saved"

    return await _act(request, "settings", save)


def _form_key(customer_id: int, form: Mapping[str, Any], prefix: str = "form") -> str | None:
    key = str(form.get("key", ""))
    return f"{prefix}:{customer_id}:{key}" if key else None


@AREA.page("/customers/{id}/payments", permission="finance.add", method="POST")
async def payment_form(request: web.Request) -> web.StreamResponse:
    """A payment by hand: a receipt, allocated to what the customer owes, oldest first."""
    async def pay(conn: Connection, customer: asyncpg.Record, form: Mapping[str, Any]) -> str:
        data = schemas.from_strings(form, PaymentIn)
        await actions.pay(conn, request, customer, data, key=_form_key(customer["id"], form))
        return f"/admin/customers/{customer['id']}/billing?done=paid"

    return await _act(request, "pay", pay)


@AREA.page("/customers/{id}/next-invoice-items", permission="finance.add", method="POST")
async def item_form(request: web.Request) -> web.StreamResponse:
    """A one-time charge for the customer's next invoice."""
    async def add(conn: Connection, customer: asyncpg.Record, form: Mapping[str, Any]) -> str:
        await actions.add_item(conn, request, customer, schemas.from_strings(form, ItemIn))
        return f"/admin/customers/{customer['id']}/billing?done=item"

    return await _act(request, "item", add)


@AREA.page("/customers/{id}/statement/pdf", permission="finance.view")
async def statement_pdf_page(request: web.Request) -> web.StreamResponse:
    """The customer's statement as PDF, for the days asked (``since``, ``until``), made now."""
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        try:
            return await statement_pdf.response(conn, customer, common.query(request, StatementQuery))
        except schemas.Invalid as e:
            return await _page(conn, request, customer, errors={"statement": e.errors},
                               values={**request.query, "form": "statement"}, status=422)


async def _nothing_due(conn: Connection, customer: asyncpg.Record) -> ledger.LedgerError:
    """Why no proforma invoice is issued: billing off, prepaid, or nothing due."""
    b = await queries.customer_billing(conn, customer["id"])
    if not b["enabled"]:
        return ledger.LedgerError("billing is off for this customer: its next invoice bills nothing")
    if b["billing_type"] != "recurring":
        return ledger.LedgerError("a prepaid customer is charged, not invoiced: there is no next invoice to ask for")
    return ledger.LedgerError("nothing is due on the customer's next invoice: no proforma invoice to issue")


async def issue_proforma(conn: Connection, request: web.Request, customer: asyncpg.Record, on: dt.date | None,
                         key: str | None) -> int:
    """A proforma invoice of the customer's next invoice (run.issue_proforma), with its line in
    the operations log; its id. A ``key`` issued before issues nothing and answers with that one.
    Refused (LedgerError, nothing written) when nothing is due, or when an open proforma invoice
    asks for the same periods already."""
    who = keys.principal(request)
    today = common.today()
    on = on or today
    if abs((on - today).days) > PROFORMA_DAYS:
        raise schemas.Invalid({"on": f"must be within {PROFORMA_DAYS} days of today"})
    async with conn.transaction():
        await common.customer_or_404(conn, request, customer["id"], lock=True)  # one at a time per customer
        if key is not None and (done := await queries.document_by_key(conn, key)) is not None:
            return done
        document_id = await billing.issue_proforma(conn, customer["id"], on, who.name, key=key)
        if document_id is None:
            raise await _nothing_due(conn, customer)
        if (other := await queries.open_proforma_overlapping(conn, document_id)) is not None:
            raise ledger.LedgerError(f"the open proforma invoice {other} asks for these periods already: "
                                     "void it first, or have it paid")
        row = await queries.document(conn, *common.scope(who), document_id)
        assert row is not None
        await oplog_store.record(
            conn, who, keys.client_address(request), "create", "document", document_id,
            customer_id=customer["id"], partner_id=customer["partner_id"],
            summary=f"proforma invoice {row['number']} of {row['total']} {row['currency']} for "
                    f"{common.period(row['period_start'], row['period_end']) or 'the next invoice'}",
            after={"kind": "proforma", "number": row["number"], "issued_on": on.isoformat(),
                   "total": str(row["total"]), "period_start": schemas.jsonable(row["period_start"]),
                   "period_end": schemas.jsonable(row["period_end"])})
    return document_id


@AREA.page("/customers/{id}/proformas", permission="finance.add", method="POST")
async def proforma_form(request: web.Request) -> web.StreamResponse:
    """Issue a proforma invoice of the customer's next invoice; its page follows."""
    async def issue(conn: Connection, customer: asyncpg.Record, form: Mapping[str, Any]) -> str:
        data = schemas.from_strings(form, ProformaIn)
        document_id = await issue_proforma(conn, request, customer, data.on,
                                           _form_key(customer["id"], form, "proforma:form"))
        return f"/admin/finance/documents/{document_id}?done=proforma"

    return await _act(request, "proforma", issue)


# -- the API ------------------------------------------------------------------------------------

def idempotency_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key header (as admin/idempotency.py reads it), or None."""
    value = request.headers.get(idempotency.HEADER)
    return idempotency.parse(value) if value is not None else None


@AREA.api("GET", "/customers/{id}/billing", permission="finance.view", response=CustomerBilling,
          summary="A customer's billing settings and balance")
async def api_billing(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        return schemas.json(_billing_out(await queries.customer_billing(conn, customer["id"])))


@AREA.api("PATCH", "/customers/{id}/billing", permission="finance.edit", body=CustomerBillingPatch,
          response=CustomerBilling, summary="Change a customer's billing settings")
async def api_update_billing(request: web.Request) -> web.StreamResponse:
    """The fields given change (the currency does not: a customer's ledger is in one)."""
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        patch = await schemas.body(request, CustomerBillingPatch)
        changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        if changes:
            await _save(conn, request, customer, changes)
        return schemas.json(_billing_out(await queries.customer_billing(conn, customer["id"])))


@AREA.api("GET", "/customers/{id}/statement", permission="finance.view", response=Statement,
          summary="A customer's statement")
async def api_statement(request: web.Request) -> web.StreamResponse:
    """Every transaction from the first, with the balance after each."""
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        return schemas.json(_statement_out(customer["id"], await ledger.statement(conn, customer["id"])))


@AREA.api("GET", "/customers/{id}/statement/pdf", permission="finance.view", query=StatementQuery,
          summary="A customer's statement as PDF")
async def api_statement_pdf(request: web.Request) -> web.StreamResponse:
    """`application/pdf`, made when asked (never kept): the transactions from `since` to `until`
    with the balance after each, the balance before `since` carried as the opening balance, in
    the customer's partner's branding."""
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        return await statement_pdf.response(conn, customer, common.query(request, StatementQuery))


@AREA.api("POST", "/customers/{id}/proformas", permission="finance.add", body=ProformaIn, response=DocumentDetail,
          status=201, summary="Issue a proforma invoice of a customer's next invoice")
async def api_proforma(request: web.Request) -> web.StreamResponse:
    """A request for payment in advance (no balance change, no tax point) with the lines of the
    customer's next invoice; paying it (POST /finance/documents/{id}/payments) issues its tax
    invoice. With an `Idempotency-Key` header, the same key again answers with the same proforma
    invoice and issues nothing (the proforma keeps the key: after the header's replay window too).
    409 when nothing is due, or an open proforma invoice asks for the same periods already."""
    customer_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, customer_id)
        key = idempotency_key(request)
        data = await schemas.body(request, ProformaIn)
        try:
            document_id = await issue_proforma(conn, request, customer, data.on,
                                               f"proforma:api:{customer_id}:{key}" if key is not None else None)
        except ledger.LedgerError as e:
            raise common.refused(e) from None
        return schemas.json(await documents.detail(conn, await documents.document_or_404(conn, request, document_id)),
                            status=201)


@AREA.api("GET", "/customers/{id}/next-invoice", permission="finance.view", query=NextInvoiceQuery,
          response=NextInvoice, summary="What a customer's next invoice would say")
async def api_next_invoice(request: web.Request) -> web.StreamResponse:
    """Its lines and why each is there, as of `on` (today, UTC, by default); nothing is issued."""
    f = common.query(request, NextInvoiceQuery)
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        return schemas.json(await next_invoice(conn, customer, f.on or common.today()))


@AREA.api("POST", "/customers/{id}/payments", permission="finance.add", body=PaymentIn, response=Payment,
          status=201, summary="Record a customer's payment")
async def api_payment(request: web.Request) -> web.StreamResponse:
    """A payment by hand: a receipt, allocated to what the customer owes, oldest first."""
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        data = await schemas.body(request, PaymentIn)
        try:
            transaction_id = await actions.pay(conn, request, customer, data,
                                               key=documents.api_key_of(customer["id"], data))
        except ledger.LedgerError as e:
            raise common.refused(e) from None
        return schemas.json(await documents.payment_out(conn, transaction_id), status=201)


@AREA.api("GET", "/customers/{id}/next-invoice-items", permission="finance.view", response=list[Item],
          summary="A customer's items waiting for its next invoice")
async def api_items(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        return schemas.json([common.out(Item, r) for r in await queries.pending_items(conn, customer["id"])])


@AREA.api("POST", "/customers/{id}/next-invoice-items", permission="finance.add", body=ItemIn, response=Item,
          status=201, summary="Add a one-time charge to a customer's next invoice")
async def api_add_item(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        data = await schemas.body(request, ItemIn)
        try:
            item_id = await actions.add_item(conn, request, customer, data)
        except ledger.LedgerError as e:
            raise common.refused(e) from None
        return schemas.json(common.out(Item, await queries.item(conn, item_id)), status=201)

"""Finance -> Payments: every payment received (the desk, the API, online, direct debit, bank
statements), a payment's page (its receipt, what it paid, taken back or not), "Add payment" (find
the customer, then what it pays), mass entry (a grid recorded all or none) and taking one back;
and the same in the API. Every payment is recorded through admin/payments/record.py, each with
its line of the operations log in the same transaction.

The cashier (the built-in Cashier role: payments.view and payments.add, no finance.*) reaches
these pages only: the list, a payment's page and its receipt, adding one, mass entry and the
customer search for them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import idempotency, keys, listing, oplog_store, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing.periods import Period
from admin.billing.render import csv_export
from admin.customers import queries as customer_queries
from admin.finance import common, exports, pdf, queries
from admin.finance import payments_store as store
from admin.finance.area import AREA
from admin.finance.payments_schemas import (
    PaymentAllocation,
    PaymentBatch,
    PaymentBatchIn,
    PaymentCustomer,
    PaymentCustomerQuery,
    PaymentEntry,
    PaymentEntryDetail,
    PaymentFilter,
    PaymentNew,
    PaymentQuery,
    PaymentReversalIn,
)
from admin.payments import manual, record, reference
from admin.payments import store as payments_core
from admin.schemas import Page
from admin.web import parse_id, path_id

SORT_KINDS = {"paid_on": "date", "amount": "decimal", "id": "int"}
SOURCES = record.SOURCES
MASS_ROWS = 10
MASS_MAX = 100
CSV_COLUMNS: tuple[csv_export.Column, ...] = (
    csv_export.col("paid_on", "date"), csv_export.col("id", "number"), csv_export.col("customer_number"),
    csv_export.col("customer"), csv_export.col("type"), csv_export.col("source"),
    csv_export.col("amount", "money"), csv_export.col("currency"), csv_export.col("receipt"),
    csv_export.col("receipt_number"), csv_export.col("payer"), csv_export.col("comment"),
    csv_export.col("document_number"), csv_export.col("reversed_reason", header="taken_back"),
)


def _key(row: Any) -> tuple[Any, int]:
    return row["sort_value"], row["id"]


def entry(row: common.Row) -> PaymentEntry:
    reversal = ({"at": row["reversed_at"], "by": row["reversed_by"], "reason": row["reversed_reason"],
                 "refund_ref": row["refund_ref"]} if row["reversed_at"] is not None else None)
    return common.out(PaymentEntry, row, reversal=reversal)


async def payment_or_404(conn: Connection, request: web.Request, payment_id: int) -> asyncpg.Record:
    row = await store.payment(conn, *common.scope(keys.principal(request)), payment_id)
    if row is None:
        raise web.HTTPNotFound()
    return row


async def detail(conn: Connection, row: asyncpg.Record) -> PaymentEntryDetail:
    allocated = await store.allocations(conn, row["transaction_id"])
    return PaymentEntryDetail(**msgspec.structs.asdict(entry(row)),
                              allocations=[common.out(PaymentAllocation, a) for a in allocated],
                              balance=await store.balance(conn, row["customer_id"]))


# -- what a payment names, checked ----------------------------------------------------------------

async def _types(conn: Connection) -> dict[str, asyncpg.Record]:
    return {r["code"]: r for r in await store.types(conn)}


async def checked(conn: Connection, who: Principal, customer: common.Row, w: PaymentNew, types: Mapping[str, Any], *,
                  source: str, key: str | None, today: dt.date) -> record.NewPayment:
    """The payment to record, or Invalid with every wrong field."""
    errors: dict[str, str] = {}
    value = Decimal(0)
    try:
        value = common.amount(w.amount, customer["currency"], "amount")
    except schemas.Invalid as e:
        errors.update(e.errors)
    kind = types.get(w.type)
    if kind is None or not kind["enabled"]:
        errors["type"] = "no such payment type" if kind is None else f"{kind['name']} is disabled"
    paid_on = w.paid_on or today
    if paid_on > today:
        errors["paid_on"] = "a payment is not dated later than today"
    period = None
    if w.document_id is not None:
        if w.service_id is not None or w.period_start is not None:
            errors["document_id"] = "name an invoice or a service's period, not both"
        doc = await store.document_of(conn, customer["id"], w.document_id)
        if doc is None:
            errors["document_id"] = "not an invoice or proforma invoice of this customer"
        elif doc["status"] == "void":
            errors["document_id"] = f"{doc['number']} is void"
    if (w.period_start is None) != (w.period_end is None):
        errors["period_end" if w.period_end is None else "period_start"] = "a period has a start and an end"
    elif w.period_start is not None and w.period_end is not None:
        if w.period_end <= w.period_start:
            errors["period_end"] = "must be after period_start (it is exclusive)"
        elif w.service_id is None:
            errors["service_id"] = "a period is a service's: name the service"
        else:
            period = Period(w.period_start, w.period_end)
    if w.service_id is not None and not await payments_core.service_of(conn, customer["id"], w.service_id):
        errors["service_id"] = "not a service of this customer"
    if errors:
        raise schemas.Invalid(errors)
    return record.NewPayment(
        customer["id"], value, paid_on, w.type, source=source, receipt_number=w.receipt_number, payer=w.payer,
        comment=w.comment, document_id=w.document_id, service_id=w.service_id, period=period, key=key, by=who.name)


async def _log(conn: Connection, request: web.Request, customer: common.Row, p: record.NewPayment,
               done: record.Recorded, how: str = "") -> None:
    """The payment's line of the operations log (and dunning's, when it let the customer back)."""
    who = keys.principal(request)
    address = keys.client_address(request)
    await oplog_store.record(
        conn, who, address, "payment", "payment", done.id, customer_id=customer["id"],
        partner_id=customer["partner_id"],
        summary=f"payment of {p.amount} {customer['currency']} ({p.type_code}){how}: receipt {done.receipt_number}",
        after={"amount": str(p.amount), "paid_on": p.paid_on.isoformat(), "type": p.type_code, "source": p.source,
               "receipt_number": p.receipt_number, "payer": p.payer, "document_id": p.document_id,
               "service_id": p.service_id, "receipt_id": done.receipt_id, "transaction_id": done.transaction_id})
    if done.dunning:
        moved = ", ".join(done.dunning)
        await oplog_store.record(conn, who, address, moved, "customer", customer["id"], customer_id=customer["id"],
                                 partner_id=customer["partner_id"], summary=f"dunning after the payment: {moved}")


async def record_one(conn: Connection, request: web.Request, customer: common.Row,
                     p: record.NewPayment) -> record.Recorded:
    """Record ``p`` with its log lines, in one transaction (a key seen before: nothing again)."""
    async with conn.transaction():
        done = await record.record(conn, p, today=common.today())
        if done.created:
            await _log(conn, request, customer, p, done)
    return done


async def record_batch(conn: Connection, request: web.Request, customers: Mapping[int, common.Row],
                       batch: Sequence[record.NewPayment]) -> list[record.Recorded]:
    """Record all of ``batch`` with their log lines, or none (manual.BatchRefused)."""
    async with conn.transaction():
        done = await manual.record_all(conn, batch, today=common.today())
        for i, (p, d) in enumerate(zip(batch, done, strict=True)):
            if d.created:
                await _log(conn, request, customers[p.customer_id], p, d, f" (mass entry, {i + 1} of {len(batch)})")
    return done


def _refused(e: record.PaymentError) -> web.HTTPConflict:
    return web.HTTPConflict(text=str(e))


# -- customers a payment may name -----------------------------------------------------------------

async def find_customers(conn: Connection, who: Principal, q: str, limit: int) -> list[PaymentCustomer]:
    """The customers ``q`` names (a payment reference, a login, a name, an email, a phone, a
    customer number), best first, with their payment reference, currency and balance."""
    q = q.strip()[:100]
    if not q:
        return []
    found: list[tuple[int, str]] = []
    by_reference = reference.customer_of(q)
    if by_reference is not None:
        found.append((by_reference, "payment reference"))
    else:
        hits = await customer_queries.search(conn, who.partner_id, who.creator_id, q, None, limit)
        found += [(h["customer_id"], h["match"]) for h in hits]
    rows = await store.customers(conn, *common.scope(who), [cid for cid, _ in found])
    return [PaymentCustomer(id=cid, number=rows[cid]["number"], name=rows[cid]["name"], status=rows[cid]["status"],
                            match=match, payment_reference=reference.printed(reference.for_customer(cid)),
                            currency=rows[cid]["currency"], balance=Decimal(rows[cid]["balance"]))
            for cid, match in found if cid in rows][:limit]


@AREA.page("/finance/payments/customers", permission="payments.add")
async def customers_fragment(request: web.Request) -> web.StreamResponse:
    """The customers a search names, as the add and mass-entry forms show them (an htmx fragment)."""
    q = request.query.get("q", "")
    async with request.app[keys.POOL].acquire() as conn:
        hits = await find_customers(conn, keys.principal(request), q, 10) if len(q.strip()) >= 2 else []
    return common.render("finance/payment_customers.html", request, {"q": q.strip(), "hits": hits})


# -- the list ---------------------------------------------------------------------------------------

@AREA.page("/finance/payments", permission="payments.view")
async def payments_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    ls = common.page_listing(request, store.SORTS, SORT_KINDS, "paid_on")
    errors: dict[str, str] = {}
    try:
        f = common.query(request, PaymentFilter)
    except schemas.Invalid as e:
        errors, f = e.errors, PaymentFilter()
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await store.payments(conn, *common.scope(who), f, sort=ls.sort, direction=ls.direction,
                                        after=after, limit=limit)

    if ls.wants_csv and not errors:
        delimiter, bom = exports.options(request)
        async def rows() -> AsyncIterator[list[dict[str, Any]]]:
            async for page in exports.pages(fetch):
                yield [dict(r) for r in page]

        writer = csv_export.CsvWriter(CSV_COLUMNS, delimiter=delimiter, bom=bom)
        return await exports.stream(request, "payments.csv", writer, rows())
    ls.take(await fetch(ls.after, ls.limit) if not errors else [], _key)
    async with pool.acquire() as conn:
        totals = await store.totals(conn, *common.scope(who), f) if not errors else []
        types = await store.types(conn)
    return common.render("finance/payments.html", request, {
        "ls": ls, "f": f, "errors": errors, "totals": totals, "types": types, "sources": SOURCES,
        "values": dict(request.query), "done": request.query.get("done", ""),
        "count": request.query.get("count", "")}, status=422 if errors else 200)


# -- a payment ---------------------------------------------------------------------------------------

async def _payment_page(conn: Connection, request: web.Request, row: asyncpg.Record, *,
                        errors: Mapping[str, str] | None = None, reason: str = "", status: int = 200) -> web.Response:
    return common.render("finance/payment.html", request, {
        "p": await detail(conn, row), "errors": errors or {}, "reason": reason,
        "reference": reference.printed(reference.for_customer(row["customer_id"])),
        "done": request.query.get("done", "")}, status=status)


@AREA.page("/finance/payments/{id}", permission="payments.view")
async def payment_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return await _payment_page(conn, request, await payment_or_404(conn, request, path_id(request)))


@AREA.page("/finance/payments/{id}/receipt", permission="payments.view")
async def receipt_pdf(request: web.Request) -> web.StreamResponse:
    """The payment's receipt as PDF (a cashier prints it: it has no finance.view for the documents)."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await payment_or_404(conn, request, path_id(request))
        doc = await queries.document(conn, None, None, row["receipt_id"])
        assert doc is not None
        return await pdf.response(conn, doc)


async def reverse(conn: Connection, request: web.Request, row: asyncpg.Record, reason: str) -> None:
    """Take the payment back, with its line of the operations log."""
    who = keys.principal(request)
    async with conn.transaction():
        await record.reverse(conn, row["id"], reason, who.name, today=common.today())
        await oplog_store.record(
            conn, who, keys.client_address(request), "reversal", "payment", row["id"],
            customer_id=row["customer_id"], partner_id=row["partner_id"],
            summary=f"payment {row['receipt']} of {row['amount']} {row['currency']} taken back: {reason.strip()}",
            before={"reversed": False}, after={"reversed": True, "reason": reason.strip()})


@AREA.page("/finance/payments/{id}/reversal", permission="payments.delete", method="POST")
async def reversal_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        row = await payment_or_404(conn, request, path_id(request))
        text = str(form.get("reason", ""))
        try:
            data = schemas.from_strings(form, PaymentReversalIn)
            await reverse(conn, request, row, data.reason)
        except schemas.Invalid as e:
            return await _payment_page(conn, request, row, errors=e.errors, reason=text, status=422)
        except record.PaymentError as e:
            return await _payment_page(conn, request, row, errors={"": str(e)}, reason=text, status=409)
    raise web.HTTPFound(f"/admin/finance/payments/{row['id']}?done=reversed")


# -- add a payment -----------------------------------------------------------------------------------

_TARGET = re.compile(r"(?:doc:(\d{1,18})|svc:(\d{1,18}):(\d{4}-\d{2}-\d{2}):(\d{4}-\d{2}-\d{2}))")


def _target(text: str) -> dict[str, Any]:
    """What the form's "pays" choice names: ``doc:<id>``, ``svc:<id>:<start>:<end>``, or nothing."""
    if not text:
        return {}
    m = _TARGET.fullmatch(text)
    if m is None:
        raise schemas.Invalid({"target": "choose what the payment pays from the list"})
    if m.group(1):
        return {"document_id": int(m.group(1))}
    try:
        start, end = dt.date.fromisoformat(m.group(3)), dt.date.fromisoformat(m.group(4))
    except ValueError:
        raise schemas.Invalid({"target": "choose what the payment pays from the list"}) from None
    return {"service_id": int(m.group(2)), "period_start": start, "period_end": end}


async def _new_page(conn: Connection, request: web.Request, customer: common.Row | None, *,
                    values: Mapping[str, Any] | None = None, errors: Mapping[str, str] | None = None,
                    status: int = 200) -> web.Response:
    who = keys.principal(request)
    context: dict[str, Any] = {"errors": errors or {}, "customer": None, "q": request.query.get("q", "").strip()}
    if customer is None:
        context["hits"] = await find_customers(conn, who, context["q"], 20) if context["q"] else []
        return common.render("finance/payment_new.html", request, context, status=status)
    [shown] = await find_customers(conn, who, reference.for_customer(customer["id"]), 1)
    types = [t for t in await store.types(conn) if t["enabled"]]
    defaults = {"type": "cash", "paid_on": common.today().isoformat(), "key": common.form_key(), "amount": "",
                "receipt_number": "", "payer": "", "comment": "", "target": request.query.get("target", "")}
    given = {k: str(v) for k, v in (values or {}).items() if k != "_csrf"}
    context.update(customer=shown, types=types, documents=await store.open_documents(conn, customer["id"]),
                   periods=await store.service_periods(conn, customer["id"]), v={**defaults, **given})
    return common.render("finance/payment_new.html", request, context, status=status)


@AREA.page("/finance/payments/new", permission="payments.add")
async def new_page(request: web.Request) -> web.StreamResponse:
    """Add a payment: find the customer (by any of its names, its payment reference too), then the form."""
    text = request.query.get("customer_id", "")
    async with request.app[keys.POOL].acquire() as conn:
        customer = None
        if text:
            if (wanted := parse_id(text)) is None:
                raise web.HTTPNotFound()
            customer = await common.customer_or_404(conn, request, wanted)
        return await _new_page(conn, request, customer)


def _form_wanted(form: Mapping[str, Any], customer_id: int) -> tuple[PaymentNew, dict[str, str]]:
    """The payment a form asks for, and what is wrong with its fields already (the rest is
    checked with the others)."""
    errors: dict[str, str] = {}
    paid_on = None
    if str(form.get("paid_on", "")).strip():
        try:
            paid_on = dt.date.fromisoformat(str(form["paid_on"]).strip())
        except ValueError:
            errors["paid_on"] = "must be a date (YYYY-MM-DD)"
    target: dict[str, Any] = {}
    try:
        target = _target(str(form.get("target", "")).strip())
    except schemas.Invalid as e:
        errors.update(e.errors)
    texts = {}
    for name, limit in (("receipt_number", 200), ("payer", 200), ("comment", 1000)):
        value = str(form.get(name, "")).strip()
        if len(value) > limit or "\x00" in value:
            errors[name] = f"at most {limit} characters"
        texts[name] = value
    return PaymentNew(customer_id=customer_id, amount=str(form.get("amount", "")).strip(),
                      type=str(form.get("type", "")).strip(), paid_on=paid_on, receipt_number=texts["receipt_number"],
                      payer=texts["payer"], comment=texts["comment"], **target), errors


@AREA.page("/finance/payments/new", permission="payments.add", method="POST")
async def new_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    who = keys.principal(request)
    text = str(form.get("customer_id", ""))
    if (customer_id := parse_id(text)) is None:
        raise web.HTTPNotFound()
    key = str(form.get("key", ""))
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, customer_id)
        try:
            w, wrong = _form_wanted(form, customer["id"])
            try:
                p = await checked(conn, who, customer, w, await _types(conn), source="desk",
                                  key=f"form:{key}" if key else None, today=common.today())
            except schemas.Invalid as e:
                raise schemas.Invalid({**e.errors, **wrong}) from None
            if wrong:
                raise schemas.Invalid(wrong)
            done = await record_one(conn, request, customer, p)
        except schemas.Invalid as e:
            return await _new_page(conn, request, customer, values=form, errors=e.errors, status=422)
        except record.PaymentError as e:
            return await _new_page(conn, request, customer, values=form, errors={"": str(e)}, status=409)
    raise web.HTTPFound(f"/admin/finance/payments/{done.id}?done={'added' if done.created else 'again'}")


# -- mass entry --------------------------------------------------------------------------------------

MASS_FIELDS = ("customer", "amount", "type", "paid_on", "receipt_number")


def _mass_rows(form: Mapping[str, Any], count: int) -> list[dict[str, str]]:
    return [{f: str(form.get(f"{f}.{i}", "")).strip() for f in MASS_FIELDS} for i in range(count)]


def _mass_page(request: web.Request, context: Mapping[str, Any], status: int = 200) -> web.Response:
    return common.render("finance/payments_mass.html", request, context, status=status)


@AREA.page("/finance/payments/mass", permission="payments.add")
async def mass_page(request: web.Request) -> web.StreamResponse:
    """Mass entry: a grid of payments (customer, amount, type, date, receipt number), recorded all or none."""
    try:
        count = max(1, min(MASS_MAX, int(request.query.get("rows", MASS_ROWS))))
    except ValueError:
        count = MASS_ROWS
    async with request.app[keys.POOL].acquire() as conn:
        types = [t for t in await store.types(conn) if t["enabled"]]
    return _mass_page(request, {"rows": [dict.fromkeys(MASS_FIELDS, "") for _ in range(count)], "types": types,
                                "errors": {}, "names": {}, "key": common.form_key(), "type": "cash",
                                "paid_on": common.today().isoformat()})


async def resolve(conn: Connection, who: Principal, texts: Sequence[str]) -> dict[str, int | str]:
    """What each customer text names: a customer id, or why none (a customer number, a service's
    login or a payment reference, matched exactly)."""
    wanted = sorted({t for t in texts if t})
    named = await store.customer_ids_named(conn, *common.scope(who), [t for t in wanted if reference.customer_of(t)
                                                                       is None])
    by_reference = {t: cid for t in wanted if (cid := reference.customer_of(t)) is not None}
    seen = await store.customers(conn, *common.scope(who), list(by_reference.values()))
    out: dict[str, int | str] = {}
    for t in wanted:
        if t in by_reference:
            cid = by_reference[t]
            out[t] = cid if cid in seen else "no customer has this payment reference"
        elif len(ids := named.get(t, [])) == 1:
            out[t] = ids[0]
        elif ids:
            out[t] = "names several customers: use the customer number"
        else:
            out[t] = "no customer with this number, login or payment reference"
    return out


@AREA.page("/finance/payments/mass", permission="payments.add", method="POST")
async def mass_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    who = keys.principal(request)
    try:
        count = max(1, min(MASS_MAX, int(str(form.get("rows", MASS_ROWS)))))
    except ValueError:
        count = MASS_ROWS
    rows = _mass_rows(form, count)
    key = str(form.get("key", "")) or common.form_key()
    default_type, default_date = str(form.get("type", "")).strip(), str(form.get("paid_on", "")).strip()
    errors: dict[str, dict[str, str]] = {}
    names: dict[int, str] = {}
    async with request.app[keys.POOL].acquire() as conn:
        types = await _types(conn)
        filled = [i for i, r in enumerate(rows) if any(r.values())]
        resolved = await resolve(conn, who, [rows[i]["customer"] for i in filled])
        found = await store.customers(conn, *common.scope(who), [v for v in resolved.values() if isinstance(v, int)])
        batch: list[record.NewPayment] = []
        places: list[int] = []
        for i in filled:
            r = rows[i]
            target = resolved.get(r["customer"]) if r["customer"] else "who paid? a customer number, login or reference"
            if not isinstance(target, int):
                errors.setdefault(str(i), {})["customer"] = str(target)
                continue
            customer = found[target]
            names[i] = f"{customer['name']} ({customer['number']})"
            try:
                paid_on = dt.date.fromisoformat(r["paid_on"] or default_date) if (r["paid_on"] or default_date) \
                    else None
            except ValueError:
                errors.setdefault(str(i), {})["paid_on"] = "must be a date (YYYY-MM-DD)"
                continue
            w = PaymentNew(customer_id=target, amount=r["amount"], type=r["type"] or default_type, paid_on=paid_on,
                           receipt_number=r["receipt_number"])
            try:
                batch.append(await checked(conn, who, customer, w, types, source="desk", key=f"mass:{key}:{i}",
                                           today=common.today()))
                places.append(i)
            except schemas.Invalid as e:
                errors.setdefault(str(i), {}).update(e.errors)
        if not filled:
            errors[""] = {"": "the grid is empty: write at least one payment"}
        context = {"rows": rows, "types": [t for t in types.values() if t["enabled"]], "errors": errors,
                   "names": names, "key": key, "type": default_type, "paid_on": default_date}
        if errors:
            return _mass_page(request, context, 422)
        try:
            done = await record_batch(conn, request, found, batch)
        except manual.BatchRefused as e:
            for n, text in e.errors.items():
                errors.setdefault(str(places[n]), {})[""] = text
            return _mass_page(request, context, 409)
    raise web.HTTPFound(f"/admin/finance/payments?done=mass&count={sum(d.created for d in done)}")


# -- the API ------------------------------------------------------------------------------------------

@AREA.api("GET", "/payments", permission="payments.view", summary="List payments", query=PaymentQuery,
          response=Page[PaymentEntry])
async def api_payments(request: web.Request) -> web.StreamResponse:
    """Every payment received (any source), newest first by default; `next` is the cursor for `after`."""
    who = keys.principal(request)
    f = common.query(request, PaymentQuery)
    after = common.typed_cursor(listing.decode_cursor(f.after), SORT_KINDS[f.sort])
    async with request.app[keys.POOL].acquire() as conn:
        rows = await store.payments(conn, *common.scope(who), f, sort=f.sort, direction=f.dir, after=after,
                                    limit=f.limit)
    return schemas.json(Page[PaymentEntry]([entry(r) for r in rows[: f.limit]],
                                           common.next_cursor(rows, f.limit, _key)))


@AREA.api("GET", "/payments/customers", permission="payments.add", summary="Find the customer a payment is from",
          query=PaymentCustomerQuery, response=list[PaymentCustomer])
async def api_customers(request: web.Request) -> web.StreamResponse:
    """By a payment reference (`RF..`, spaces and case aside), a login, a name, an email, a phone
    or a customer number; best first."""
    f = common.query(request, PaymentCustomerQuery)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(await find_customers(conn, keys.principal(request), f.q, f.limit))


@AREA.api("GET", "/payments/{id}", permission="payments.view", summary="Get a payment",
          response=PaymentEntryDetail)
async def api_payment(request: web.Request) -> web.StreamResponse:
    """A payment with what it paid (its allocations) and the customer's balance now."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(await detail(conn, await payment_or_404(conn, request, path_id(request))))


def _api_key(request: web.Request) -> str | None:
    """The payment's own key from the request's Idempotency-Key: the caller's (admin/idempotency.py
    answers a repeat first; this keeps it once even when that row is gone)."""
    given = request.headers.get(idempotency.HEADER)
    if given is None:
        return None
    return f"api:{idempotency.principal_of(keys.principal(request))}:{idempotency.parse(given)}"


@AREA.api("POST", "/payments", permission="payments.add", body=PaymentNew, response=PaymentEntryDetail,
          status=201, summary="Record a payment")
async def api_record(request: web.Request) -> web.StreamResponse:
    """A payment received by hand, allocated as `document_id`, `service_id` + period, or oldest
    first say; a receipt is issued, and dunning lets the customer back in when its debt is paid.
    Send an `Idempotency-Key`: a retry then records nothing again."""
    who = keys.principal(request)
    data = await schemas.body(request, PaymentNew)
    async with request.app[keys.POOL].acquire() as conn:
        customer = await _api_customer(conn, request, data.customer_id)
        p = await checked(conn, who, customer, data, await _types(conn), source="api",
                          key=_api_key(request), today=common.today())
        try:
            done = await record_one(conn, request, customer, p)
        except record.PaymentError as e:
            raise _refused(e) from None
        return schemas.json(await detail(conn, await payment_or_404(conn, request, done.id)), status=201)


async def _api_customer(conn: Connection, request: web.Request, customer_id: int) -> asyncpg.Record:
    """The body's customer: one the principal does not see is a wrong field (422), as a missing one is."""
    row = await queries.customer(conn, *common.scope(keys.principal(request)), customer_id)
    if row is None:
        raise schemas.Invalid({"customer_id": "no such customer"})
    return row


@AREA.api("POST", "/payments/batch", permission="payments.add", body=PaymentBatchIn, response=PaymentBatch,
          status=201, summary="Record several payments, all or none")
async def api_batch(request: web.Request) -> web.StreamResponse:
    """Up to 500 payments in one transaction: every one is recorded, or none is (422 with each
    refusal as `payments.N.field`, N from 0; 409 for what the ledger refuses)."""
    who = keys.principal(request)
    data = await schemas.body(request, PaymentBatchIn)
    base = _api_key(request)
    errors: dict[str, str] = {}
    async with request.app[keys.POOL].acquire() as conn:
        types = await _types(conn)
        found = await store.customers(conn, *common.scope(who), [p.customer_id for p in data.payments])
        batch: list[record.NewPayment] = []
        for i, item in enumerate(data.payments):
            customer = found.get(item.customer_id)
            if customer is None:
                errors[f"payments.{i}.customer_id"] = "no such customer"
                continue
            try:
                batch.append(await checked(conn, who, customer, item, types, source="api",
                                           key=f"{base}:{i}" if base else None, today=common.today()))
            except schemas.Invalid as e:
                errors.update({f"payments.{i}.{name}": text for name, text in e.errors.items()})
        if errors:
            raise schemas.Invalid(errors)
        try:
            done = await record_batch(conn, request, found, batch)
        except manual.BatchRefused as e:
            raise web.HTTPConflict(text=str(e)) from None
        rows = await store.payments_by_id(conn, [d.id for d in done])
    return schemas.json(PaymentBatch(payments=[entry(r) for r in rows]), status=201)


@AREA.api("POST", "/payments/{id}/reversal", permission="payments.delete", body=PaymentReversalIn,
          response=PaymentEntryDetail, summary="Take a payment back")
async def api_reversal(request: web.Request) -> web.StreamResponse:
    """Its receipt void and what it paid open again (allocated anew from the customer's other
    credit, oldest first), with the reason; 409 when it was taken back already."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await payment_or_404(conn, request, path_id(request))
        data = await schemas.body(request, PaymentReversalIn)
        try:
            await reverse(conn, request, row, data.reason)
        except record.PaymentError as e:
            raise _refused(e) from None
        return schemas.json(await detail(conn, await payment_or_404(conn, request, row["id"])))

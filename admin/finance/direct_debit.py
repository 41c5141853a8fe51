"""Finance → Direct debit: SEPA mandates, collection batches (made for a date, their pain.008
file downloaded, their collections' status), settlement on the collection date, the bank's
return files (pain.002, camt.054/053) imported, and the creditor's settings; the same in the API.

The work is admin/payments/direct_debit_service.py's (every change with its line of the
operations log); this module reads forms and requests and shows the results.

Who sees what: mandates and collections are their customers' (a partner's administrator sees
its own customers' only, another's are "not found"); a batch is the creditor's, which is every
partner's (one sepa_settings row), so a scoped principal sees the batches that hold its
customers, counted over them alone, and only an administrator of every partner makes a batch,
downloads its file (it names every partner's customers), settles, imports a return file or
changes the settings (403 for the others).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.finance import common, queries
from admin.finance.area import AREA
from admin.finance.direct_debit_schemas import (
    Batch,
    BatchIn,
    BatchPage,
    Collection,
    CollectionFilter,
    CollectionQuery,
    Due,
    DueQuery,
    Mandate,
    MandateFilter,
    MandateIn,
    MandateQuery,
    ReturnFileIn,
    ReturnsApplied,
    SettingsIn,
    SettingsOut,
    SettingsPatch,
    Settled,
    SettleIn,
)
from admin.payments import direct_debit as dd
from admin.payments import direct_debit_service as service
from admin.payments import direct_debit_store as store
from admin.payments import record
from admin.schemas import Page
from admin.web import parse_id, path_id

BASE = "/admin/finance/direct-debit"
MANDATE_SORT_KINDS = {"id": "int", "signed_on": "date", "reference": "text"}
COLLECTION_SORT_KINDS = {"id": "int", "amount": "decimal"}
STATUSES = ("pending", "paid", "failed")


def _every_partner(who: Principal, what: str) -> None:
    """403 unless ``who`` sees every partner's customers: the creditor and its files are theirs."""
    if who.partner_id is not None or who.creator_id is not None:
        raise web.HTTPForbidden(text=f"{what}: the direct-debit creditor and its files are every partner's, so only "
                                     "an administrator of every partner does this.")


def _unscoped(who: Principal) -> bool:
    return who.partner_id is None and who.creator_id is None


def _settings_out(row: common.Row, today: dt.date) -> SettingsOut:
    return common.out(SettingsOut, row, complete=service.complete(row),
                      earliest_collection=dd.earliest_collection(today, row["lead_days"]))


def _batch_out(row: common.Row) -> Batch:
    return common.out(Batch, row)


def _key(row: Any) -> tuple[Any, int]:
    return row["sort_value"], row["id"]


async def _mandate_or_404(conn: Connection, request: web.Request, mandate_id: int, *,
                          lock: bool = False) -> asyncpg.Record:
    row = await store.mandate(conn, *common.scope(keys.principal(request)), mandate_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such mandate")
    return row


async def _batch_or_404(conn: Connection, request: web.Request, batch_id: int) -> asyncpg.Record:
    row = await store.batch(conn, *common.scope(keys.principal(request)), batch_id)
    if row is None:
        raise web.HTTPNotFound(text="no such batch")
    return row


async def _add_mandate(conn: Connection, request: web.Request, customer: asyncpg.Record, data: MandateIn) -> int:
    return await service.add_mandate(
        conn, customer, service.MandateIn(data.iban, data.holder, data.signed_on, data.bic, data.reference),
        keys.principal(request), keys.client_address(request), today=common.today())


async def _make(conn: Connection, request: web.Request, data: BatchIn) -> service.Made:
    who = keys.principal(request)
    _every_partner(who, "Making a batch")
    try:
        return await service.make_batch(conn, data.collection_date, who, keys.client_address(request),
                                        today=common.today(), due_by=data.due_by)
    except dd.DirectDebitError as e:
        raise schemas.Invalid({"collection_date": str(e)}) from None
    except service.Refused as e:
        raise common.refused(e) from None


async def _settle(conn: Connection, request: web.Request, batch_id: int | None) -> service.Settled:
    who = keys.principal(request)
    _every_partner(who, "Settling collections")
    try:
        return await service.settle(conn, common.today(), who, keys.client_address(request), batch_id=batch_id)
    except record.PaymentError as e:
        raise common.refused(e) from None


async def _import(conn: Connection, request: web.Request, data: bytes, file_name: str) -> service.Applied:
    who = keys.principal(request)
    _every_partner(who, "Importing a return file")
    try:
        return await service.apply_report(conn, data, file_name, who, keys.client_address(request),
                                          today=common.today())
    except dd.DirectDebitError as e:
        raise schemas.Invalid({"xml": f"{file_name}: {e}" if file_name else str(e)}) from None


def _applied_out(a: service.Applied) -> ReturnsApplied:
    return msgspec.convert({
        "kind": a.kind, "message_id": a.message_id, "unknown": list(a.unknown), "ignored": a.ignored,
        "summary": a.describe(), "lines": [{"end_to_end_id": x.end_to_end_id, "customer_id": x.customer_id,
                                             "document_number": x.document_number, "reason": x.reason,
                                             "result": x.result} for x in a.lines]}, ReturnsApplied)


# -- the overview: batches, making one, settling ----------------------------------------------------

async def _overview(request: web.Request, conn: Connection, *, values: Mapping[str, str] | None = None,
                    errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    who = keys.principal(request)
    today = common.today()
    settings = await store.settings(conn)
    earliest = dd.earliest_collection(today, settings["lead_days"])
    shown = dict(values or request.query)
    preview = None
    if not errors and shown.get("collection_date"):
        try:
            q = schemas.from_strings(shown, DueQuery)
        except schemas.Invalid as e:
            errors = e.errors
        else:
            preview = await service.preview(conn, q.collection_date or earliest, today, q.due_by)
    ls = common.page_listing(request, {"id": "b.id"}, {"id": "int"}, "id")
    ls.take(await store.batches(conn, *common.scope(who), after=ls.after, limit=ls.limit), _key)
    return common.render("finance/direct_debit.html", request, {
        "ls": ls, "settings": settings, "complete": service.complete(settings), "earliest": earliest,
        "form": {"collection_date": shown.get("collection_date", earliest.isoformat()),
                 "due_by": shown.get("due_by", "")},
        "preview": preview, "errors": errors or {}, "due_now": await store.count_due(conn, today),
        "done": request.query.get("done", ""), "said": request.query.get("said", ""), "may_run": _unscoped(who),
        "tab": "batches"}, status=status)


@AREA.page("/finance/direct-debit", permission="finance.view")
async def overview_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return await _overview(request, conn)


@AREA.page("/finance/direct-debit/batches", permission="finance.edit", method="POST")
async def make_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {k: str(form.get(k, "")) for k in ("collection_date", "due_by")}
    async with request.app[keys.POOL].acquire() as conn:
        try:
            made = await _make(conn, request, schemas.from_strings(values, BatchIn))
        except schemas.Invalid as e:
            return await _overview(request, conn, values=values, errors=e.errors, status=422)
        except web.HTTPConflict as e:
            return await _overview(request, conn, values=values, errors={"": e.text or ""}, status=409)
    raise web.HTTPFound(f"{BASE}/batches/{made.batch_id}?done=made")


@AREA.page("/finance/direct-debit/settle", permission="finance.edit", method="POST")
async def settle_form(request: web.Request) -> web.StreamResponse:
    """Settle what is due now (the worker does it every morning too): of one batch, or of all."""
    form = await request.post()
    batch_id = str(form.get("batch_id", ""))
    target = parse_id(batch_id)
    async with request.app[keys.POOL].acquire() as conn:
        done = await _settle(conn, request, target)
    back = f"{BASE}/batches/{target}" if target is not None else BASE
    raise web.HTTPFound(f"{back}?done=settled&said={done.count}")


# -- a batch ----------------------------------------------------------------------------------------

@AREA.page("/finance/direct-debit/batches/{id}", permission="finance.view")
async def batch_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    batch_id = path_id(request)
    try:
        f = common.query(request, CollectionFilter)
    except schemas.Invalid:
        f = CollectionFilter()
    f = msgspec.structs.replace(f, batch_id=batch_id)
    ls = common.page_listing(request, store.COLLECTION_SORTS, COLLECTION_SORT_KINDS, "id", "asc")
    async with request.app[keys.POOL].acquire() as conn:
        batch = await _batch_or_404(conn, request, batch_id)
        ls.take(await store.collections(conn, *common.scope(who), f, sort=ls.sort, direction=ls.direction,
                                        after=ls.after, limit=ls.limit), _key)
    return common.render("finance/direct_debit_batch.html", request, {
        "b": batch, "ls": ls, "status": f.status, "statuses": STATUSES, "may_run": _unscoped(who),
        "due": batch["pending"] > 0 and batch["collection_date"] <= common.today(),
        "done": request.query.get("done", ""), "said": request.query.get("said", ""), "tab": "batches"})


async def _xml(request: web.Request) -> web.StreamResponse:
    _every_partner(keys.principal(request), "Downloading a batch's file")
    batch_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await store.batch_xml(conn, batch_id)
    if row is None:
        raise web.HTTPNotFound(text="no such batch")
    return web.Response(body=row["xml"].encode(), content_type="application/xml", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="pain.008-{row["message_id"]}.xml"'})


@AREA.page("/finance/direct-debit/batches/{id}/pain.008.xml", permission="finance.view")
async def batch_xml_page(request: web.Request) -> web.StreamResponse:
    return await _xml(request)


# -- mandates ---------------------------------------------------------------------------------------

async def _mandates(request: web.Request, conn: Connection, *, values: Mapping[str, str] | None = None,
                    errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    who = keys.principal(request)
    ls = common.page_listing(request, store.MANDATE_SORTS, MANDATE_SORT_KINDS, "id")
    filter_errors: dict[str, str] = {}
    try:
        f = common.query(request, MandateFilter)
    except schemas.Invalid as e:
        filter_errors, f = e.errors, MandateFilter()
    ls.take(await store.mandates(conn, *common.scope(who), f, sort=ls.sort, direction=ls.direction, after=ls.after,
                                 limit=ls.limit), _key)
    customer = None
    if f.customer_id is not None:
        customer = await store.find_customer(conn, *common.scope(who), str(f.customer_id))
    new = dict(values or {})
    if not values and customer is not None:
        new = {"customer": customer["number"], "holder": customer["name"]}
    return common.render("finance/direct_debit_mandates.html", request, {
        "ls": ls, "f": f, "filter_errors": filter_errors, "customer": customer, "new": new,
        "today": common.today().isoformat(), "errors": errors or {}, "done": request.query.get("done", ""),
        "tab": "mandates"}, status=status)


@AREA.page("/finance/direct-debit/mandates", permission="finance.view")
async def mandates_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return await _mandates(request, conn)


@AREA.page("/finance/direct-debit/mandates", permission="finance.add", method="POST")
async def add_mandate_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {k: str(form.get(k, "")) for k in ("customer", "iban", "bic", "holder", "signed_on", "reference")}
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            customer = await store.find_customer(conn, *common.scope(who), values["customer"])
            errors = {} if customer is not None else {"customer": "no such customer (its number, or its id)"}
            try:
                data = schemas.from_strings({**values, "customer_id": str(customer["id"]) if customer else "1"},
                                            MandateIn)
            except schemas.Invalid as e:
                raise schemas.Invalid({**e.errors, **errors}) from None
            if errors:
                raise schemas.Invalid(errors)
            assert customer is not None
            mandate_id = await _add_mandate(conn, request, customer, data)
        except schemas.Invalid as e:
            shown = {("customer" if k == "customer_id" else k): v for k, v in e.errors.items()}
            return await _mandates(request, conn, values=values, errors=shown, status=422)
    raise web.HTTPFound(f"{BASE}/mandates/{mandate_id}?done=added")


@AREA.page("/finance/direct-debit/mandates/{id}", permission="finance.view")
async def mandate_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    mandate_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        mandate = await _mandate_or_404(conn, request, mandate_id)
        rows = await store.collections(conn, *common.scope(who), CollectionFilter(mandate_id=mandate_id), sort="id",
                                       direction="desc", after=None, limit=100)
    return common.render("finance/direct_debit_mandate.html", request, {
        "m": mandate, "collections": rows[:100], "more": len(rows) > 100, "done": request.query.get("done", ""),
        "error": "", "tab": "mandates"})


@AREA.page("/finance/direct-debit/mandates/{id}/revoke", permission="finance.edit", method="POST")
async def revoke_form(request: web.Request) -> web.StreamResponse:
    mandate_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        mandate = await _mandate_or_404(conn, request, mandate_id)
        try:
            await service.revoke_mandate(conn, mandate, keys.principal(request), keys.client_address(request))
        except service.Refused as e:
            raise common.refused(e) from None
    raise web.HTTPFound(f"{BASE}/mandates/{mandate_id}?done=revoked")


# -- return files -----------------------------------------------------------------------------------

def _returns(request: web.Request, *, applied: service.Applied | None = None, error: str = "",
             status: int = 200) -> web.Response:
    return common.render("finance/direct_debit_returns.html", request, {
        "applied": applied, "error": error, "may_run": _unscoped(keys.principal(request)),
        "max_kib": dd.MAX_REPORT_BYTES // 1024, "tab": "returns"}, status=status)


@AREA.page("/finance/direct-debit/returns", permission="finance.view")
async def returns_page(request: web.Request) -> web.StreamResponse:
    return _returns(request)


@AREA.page("/finance/direct-debit/returns", permission="finance.edit", method="POST")
async def returns_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        return _returns(request, error="choose the bank's file (pain.002, camt.054 or camt.053)", status=422)
    data = upload.file.read(dd.MAX_REPORT_BYTES + 1)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            applied = await _import(conn, request, data, upload.filename or "")
        except schemas.Invalid as e:
            return _returns(request, error=e.errors.get("xml", str(e)), status=422)
    return _returns(request, applied=applied)


# -- settings ---------------------------------------------------------------------------------------

def _settings(request: web.Request, row: common.Row, *, values: Mapping[str, Any] | None = None,
              errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    who = keys.principal(request)
    shown = {k: row[k] for k in store.SETTINGS_COLUMNS} | dict(values or {})
    return common.render("finance/direct_debit_settings.html", request, {
        "s": shown, "row": row, "complete": service.complete(row),
        "earliest": dd.earliest_collection(common.today(), row["lead_days"]), "errors": errors or {},
        "done": request.query.get("done", ""), "may_edit": who.can("finance.edit") and _unscoped(who),
        "tab": "settings"}, status=status)


@AREA.page("/finance/direct-debit/settings", permission="finance.view")
async def settings_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return _settings(request, await store.settings(conn))


@AREA.page("/finance/direct-debit/settings", permission="finance.edit", method="POST")
async def settings_form(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    _every_partner(who, "Changing the direct-debit settings")
    form = await request.post()
    values = {k: str(form.get(k, "")) for k in store.SETTINGS_COLUMNS}
    async with request.app[keys.POOL].acquire() as conn:
        try:
            data = schemas.from_strings(values, SettingsIn)
            await service.save_settings(conn, msgspec.structs.asdict(data), who, keys.client_address(request))
        except schemas.Invalid as e:
            return _settings(request, await store.settings(conn), values=values, errors=e.errors, status=422)
    raise web.HTTPFound(f"{BASE}/settings?done=saved")


# -- the API ----------------------------------------------------------------------------------------

async def _api_page(request: web.Request, query: type[Any], kinds: Mapping[str, str], fetch: Callable[..., Any],
                    out: type[msgspec.Struct]) -> web.StreamResponse:
    """A page of a list (``fetch``: a store function over the principal's scope) as ``Page[out]``."""
    q = common.query(request, query)
    after = common.typed_cursor(listing.decode_cursor(q.after), kinds[q.sort])
    async with request.app[keys.POOL].acquire() as conn:
        rows = await fetch(conn, *common.scope(keys.principal(request)), q, sort=q.sort, direction=q.dir,
                           after=after, limit=q.limit)
    return schemas.json(Page([common.out(out, r) for r in rows[: q.limit]], common.next_cursor(rows, q.limit, _key)))


@AREA.api("GET", "/finance/direct-debit/settings", permission="finance.view", response=SettingsOut,
          summary="Direct debit's creditor settings")
async def api_settings(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_settings_out(await store.settings(conn), common.today()))


@AREA.api("PATCH", "/finance/direct-debit/settings", permission="finance.edit", body=SettingsPatch,
          response=SettingsOut, summary="Change direct debit's creditor settings")
async def api_update_settings(request: web.Request) -> web.StreamResponse:
    """The creditor identifier's and the IBAN's check digits are verified (422 says which field is
    wrong); a BIC left out with a new IBAN is derived from it. Every partner's: a scoped key gets 403."""
    who = keys.principal(request)
    _every_partner(who, "Changing the direct-debit settings")
    patch = await schemas.body(request, SettingsPatch)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    async with request.app[keys.POOL].acquire() as conn:
        row = await service.save_settings(conn, changes, who, keys.client_address(request))
        return schemas.json(_settings_out(row, common.today()))


@AREA.api("GET", "/finance/direct-debit/mandates", permission="finance.view", query=MandateQuery,
          response=Page[Mandate], summary="List SEPA mandates")
async def api_mandates(request: web.Request) -> web.StreamResponse:
    return await _api_page(request, MandateQuery, MANDATE_SORT_KINDS, store.mandates, Mandate)


@AREA.api("POST", "/finance/direct-debit/mandates", permission="finance.add", body=MandateIn, response=Mandate,
          status=201, summary="Add a customer's SEPA mandate")
async def api_add_mandate(request: web.Request) -> web.StreamResponse:
    """The IBAN is checked with schwifty (check digits, the country's format, the bank code where
    its list is complete) and its BIC derived when not given; one active mandate per customer
    (422 on `customer_id` while another is active, or for a customer the key does not see)."""
    data = await schemas.body(request, MandateIn)
    async with request.app[keys.POOL].acquire() as conn:
        customer = await queries.customer(conn, *common.scope(keys.principal(request)), data.customer_id)
        if customer is None:
            raise schemas.Invalid({"customer_id": "no such customer"})
        mandate_id = await _add_mandate(conn, request, customer, data)
        return schemas.json(common.out(Mandate, await _mandate_or_404(conn, request, mandate_id)), status=201)


@AREA.api("GET", "/finance/direct-debit/mandates/{id}", permission="finance.view", response=Mandate,
          summary="A SEPA mandate")
async def api_mandate(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(common.out(Mandate, await _mandate_or_404(conn, request, path_id(request))))


@AREA.api("POST", "/finance/direct-debit/mandates/{id}/revoke", permission="finance.edit", response=Mandate,
          summary="Revoke a SEPA mandate")
async def api_revoke_mandate(request: web.Request) -> web.StreamResponse:
    """No batch collects on it from then on (collections made before it stay as they are); 409 when
    it is revoked already."""
    mandate_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        mandate = await _mandate_or_404(conn, request, mandate_id)
        try:
            await service.revoke_mandate(conn, mandate, keys.principal(request), keys.client_address(request))
        except service.Refused as e:
            return schemas.problem(409, "revoked already", str(e))
        return schemas.json(common.out(Mandate, await _mandate_or_404(conn, request, mandate_id)))


@AREA.api("GET", "/finance/direct-debit/due", permission="finance.view", query=DueQuery, response=Due,
          summary="What a batch for a date would collect")
async def api_due(request: web.Request) -> web.StreamResponse:
    """Every partner's invoices: a scoped key gets 403."""
    _every_partner(keys.principal(request), "Previewing a batch")
    q = common.query(request, DueQuery)
    today = common.today()
    async with request.app[keys.POOL].acquire() as conn:
        day = q.collection_date or dd.earliest_collection(today, (await store.settings(conn))["lead_days"])
        p = await service.preview(conn, day, today, q.due_by)
    return schemas.json(Due(collection_date=p.collection_date, due_by=p.due_by, earliest_collection=p.earliest,
                            count=p.count, total=p.total, problem=p.problem))


@AREA.api("GET", "/finance/direct-debit/batches", permission="finance.view", query=BatchPage, response=Page[Batch],
          summary="List direct-debit batches")
async def api_batches(request: web.Request) -> web.StreamResponse:
    """Newest first; a scoped key sees the batches holding its customers, counted over them alone."""
    who = keys.principal(request)
    q = common.query(request, BatchPage)
    after = common.typed_cursor(listing.decode_cursor(q.after), "int")
    async with request.app[keys.POOL].acquire() as conn:
        rows = await store.batches(conn, *common.scope(who), after=after, limit=q.limit)
    return schemas.json(Page[Batch]([_batch_out(r) for r in rows[: q.limit]], common.next_cursor(rows, q.limit, _key)))


@AREA.api("POST", "/finance/direct-debit/batches", permission="finance.edit", body=BatchIn, response=Batch,
          status=201, summary="Make a direct-debit batch")
async def api_make_batch(request: web.Request) -> web.StreamResponse:
    """The unpaid invoices (in euro) due by `due_by` of customers with an active mandate and in no
    open collection, each for its open amount, FRST for a mandate's first collection and RCUR
    after; the pain.008.001.02 file is made and kept (`/xml`). 422 for a collection date a bank
    does not take (too soon for the lead days, not a TARGET2 day); 409 when the settings are not
    complete or nothing is due. Every partner's: a scoped key gets 403."""
    data = await schemas.body(request, BatchIn)
    async with request.app[keys.POOL].acquire() as conn:
        made = await _make(conn, request, data)
        return schemas.json(_batch_out(await _batch_or_404(conn, request, made.batch_id)), status=201)


@AREA.api("GET", "/finance/direct-debit/batches/{id}", permission="finance.view", response=Batch,
          summary="A direct-debit batch")
async def api_batch(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_batch_out(await _batch_or_404(conn, request, path_id(request))))


@AREA.api("GET", "/finance/direct-debit/batches/{id}/xml", permission="finance.view",
          summary="A batch's pain.008 file")
async def api_batch_xml(request: web.Request) -> web.StreamResponse:
    """`application/xml`: the pain.008.001.02 file as it was made. It names every partner's
    customers: a scoped key gets 403."""
    return await _xml(request)


@AREA.api("GET", "/finance/direct-debit/collections", permission="finance.view", query=CollectionQuery,
          response=Page[Collection], summary="List direct-debit collections")
async def api_collections(request: web.Request) -> web.StreamResponse:
    return await _api_page(request, CollectionQuery, COLLECTION_SORT_KINDS, store.collections, Collection)


@AREA.api("POST", "/finance/direct-debit/settle", permission="finance.edit", body=SettleIn, response=Settled,
          summary="Settle the collections whose date has come")
async def api_settle(request: web.Request) -> web.StreamResponse:
    """Each pending collection whose collection date is today or before becomes a payment of its
    invoice (source `direct_debit`, named by the collection: settling again records nothing
    twice) and is `paid`. The worker does it every morning (`payments.direct_debit_settle`).
    Every partner's: a scoped key gets 403."""
    data = await schemas.body(request, SettleIn)
    async with request.app[keys.POOL].acquire() as conn:
        done = await _settle(conn, request, data.batch_id)
    return schemas.json(Settled(count=done.count, total=done.total, unpinned=list(done.unpinned),
                                dunning=dict(done.dunning)))


@AREA.api("POST", "/finance/direct-debit/returns", permission="finance.edit", body=ReturnFileIn,
          response=ReturnsApplied, summary="Import a direct-debit return file")
async def api_returns(request: web.Request) -> web.StreamResponse:
    """A pain.002 status report (rejects) or a camt.054/camt.053 (returns): a pending collection it
    rejects is `failed` with the reason code; a paid one has its payment taken back (the invoice
    open again) and is `failed`; one failed already is left alone, so a file imported twice does
    nothing more. A file that is not well-formed XML, has a DTD or entities, is of another kind,
    or names none of our collections is refused (422 on `xml`) and nothing is written. Every
    partner's: a scoped key gets 403."""
    data = await schemas.body(request, ReturnFileIn)
    async with request.app[keys.POOL].acquire() as conn:
        applied = await _import(conn, request, data.xml.encode(), data.file_name)
    return schemas.json(_applied_out(applied))


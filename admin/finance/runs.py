"""Billing runs: their history, a new preview (a date, a partner), the preview's page (each
customer's lines and total, as HTML and CSV), confirming or cancelling it; and the same in the API.

The run itself is admin/billing/run.py's: a preview prices what is due into billing_run_items,
confirming issues one invoice per customer. A partner's administrator makes and sees its own
partner's runs only; a run of every partner is the unscoped administrators'. A principal limited
to the customers it created (a Customer creator's role) makes no runs and sees none: a run bills
other customers too.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import asyncpg
from aiohttp import web

from admin import keys, listing, oplog_store, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing import run as billing
from admin.finance import common, queries
from admin.finance.area import AREA
from admin.finance.schemas import Run, RunIn, RunItem, RunItemQuery, RunLine, RunQuery
from admin.schemas import Page
from admin.web import path_id
from admin.worker import queue
from admin.worker import store as worker_store

STATUSES = ("preview", "issuing", "issued", "cancelled")
MAX_AHEAD_DAYS = 366
"""How far ahead a preview may be made: a run bills every period up to its date, and a date
centuries away is a typo that would price thousands of periods per service."""
CSV_COLUMNS = ("customer_id", "customer_number", "customer", "currency", "description", "period_start",
               "period_end", "quantity", "unit_price", "net", "tax", "gross", "customer_total")


def _sees_runs(who: Principal) -> bool:
    return who.creator_id is None


def _run_out(row: Any) -> Run:
    return common.out(Run, row, totals={k: Decimal(v) for k, v in (row["totals"] or {}).items()})


def _lines(item: Any) -> list[RunLine]:
    out = []
    for line in item["lines"]:
        period = line.get("period") or [None, None]
        out.append(RunLine(
            description=line["description"], quantity=Decimal(line["quantity"]), unit_price=Decimal(line["unit_price"]),
            net=Decimal(line["net"]), tax=Decimal(line["tax"]), gross=Decimal(line["gross"]),
            period_start=dt.date.fromisoformat(period[0]) if period[0] else None,
            period_end=dt.date.fromisoformat(period[1]) if period[1] else None,
            service_id=line.get("service_id"), kind=line.get("kind", "charge")))
    return out


def _item_out(item: Any) -> RunItem:
    return RunItem(customer_id=item["customer_id"], customer_number=item["customer_number"], customer=item["customer"],
                   currency=item["currency"], total=item["total"], lines=_lines(item))


async def run_or_404(conn: Connection, request: web.Request, run_id: int) -> asyncpg.Record:
    who = keys.principal(request)
    row = await queries.run(conn, who.partner_id, run_id) if _sees_runs(who) else None
    if row is None:
        raise web.HTTPNotFound()
    return row


def _may_run(who: Principal) -> None:
    if not _sees_runs(who):
        raise web.HTTPForbidden(text="A billing run bills every customer of a partner: an administrator limited to "
                                     "the customers it created makes none.")


async def _preview(request: web.Request, data: RunIn) -> billing.RunSummary:
    """Make a preview (and log it); Invalid for a partner the principal does not see, RunError
    when the run refuses."""
    who = keys.principal(request)
    _may_run(who)
    pool = request.app[keys.POOL]
    partner_id = data.partner_id
    async with pool.acquire() as conn:
        if who.partner_id is not None:
            if partner_id not in (None, who.partner_id):
                raise schemas.Invalid({"partner_id": "no such partner"})
            partner_id = who.partner_id
        elif partner_id is not None and partner_id not in {p["id"] for p in await queries.partners(conn, None)}:
            raise schemas.Invalid({"partner_id": "no such partner"})
    if data.billing_date > common.today() + dt.timedelta(days=MAX_AHEAD_DAYS):
        raise schemas.Invalid({"billing_date": f"at most {MAX_AHEAD_DAYS} days ahead"})
    try:
        summary = await billing.preview(pool, data.billing_date, partner_id, who.name)
    except asyncpg.UniqueViolationError as e:  # another request's preview of this (partner, date), made meanwhile
        if e.constraint_name != "billing_runs_one_preview":
            raise
        raise billing.RunError(f"a preview for {data.billing_date.isoformat()} is being made already") from None
    async with pool.acquire() as conn, conn.transaction():
        await oplog_store.record(conn, who, keys.client_address(request), "preview", "billing_run", summary.run_id,
                                 partner_id=partner_id, summary=summary.describe(),
                                 after={"billing_date": data.billing_date.isoformat(), "partner_id": partner_id,
                                        "customers": summary.customers,
                                        "totals": {k: str(v) for k, v in summary.totals.items()}})
    return summary


def confirm_key(run_id: int) -> str:
    """The dedupe key of a run's issuing job: one queued or running per run."""
    return f"billing.confirm:{run_id}"


async def _confirm(conn: Connection, request: web.Request, row: asyncpg.Record) -> int:
    """Queue the issuing of a preview for the worker (admin/billing/jobs.py ``billing.confirm``:
    a run of many thousand invoices does not hold a web request), with its line of the operations
    log; the job's id (the one queued already, when the run is being issued)."""
    who = keys.principal(request)
    _may_run(who)
    async with conn.transaction():
        status = await queries.run_status(conn, row["id"])
        if status not in ("preview", "issuing"):
            raise billing.RunError(f"run {row['id']} is {status}: there is nothing to confirm")
        job_id = await queue.enqueue(conn, "billing.confirm", {"run_id": row["id"], "by": who.name},
                                     dedupe_key=confirm_key(row["id"]))
        await oplog_store.record(conn, who, keys.client_address(request), "confirm", "billing_run", row["id"],
                                 partner_id=row["partner_id"],
                                 summary=f"confirmed run {row['id']} for {row['billing_date']}: {row['customers']} "
                                         f"customers, issued by the worker (job {job_id})",
                                 before={"status": row["status"]}, after={"job_id": job_id})
    return job_id


async def _cancel(conn: Connection, request: web.Request, row: asyncpg.Record) -> None:
    who = keys.principal(request)
    _may_run(who)
    async with conn.transaction():
        if await worker_store.active_job(conn, confirm_key(row["id"])) is not None:
            raise billing.RunError(f"run {row['id']} is confirmed: the worker is issuing it")
        await billing.cancel(conn, row["id"], who.name)
        await oplog_store.record(conn, who, keys.client_address(request), "cancel", "billing_run", row["id"],
                                 partner_id=row["partner_id"],
                                 summary=f"cancelled the preview of run {row['id']} for {row['billing_date']}",
                                 before={"status": row["status"]}, after={"status": "cancelled"})


# -- pages --------------------------------------------------------------------------------------

async def _runs_page(request: web.Request, *, errors: dict[str, str] | None = None,
                     values: dict[str, str] | None = None, status: int = 200) -> web.Response:
    who = keys.principal(request)
    ls = common.page_listing(request, {"id": "r.id"}, {"id": "int"}, "id")
    wanted = request.query.get("status") or None
    if wanted not in STATUSES:
        wanted = None
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.runs(conn, who.partner_id, wanted, ls.after, ls.limit) if _sees_runs(who) else []
        partners = await queries.partners(conn, who.partner_id) if who.partner_id is None else []
    ls.take(rows, lambda r: (r["id"], r["id"]))
    form = {"billing_date": common.today().isoformat(), "partner_id": "", **(values or {})}
    return common.render("finance/runs.html", request, {
        "ls": ls, "runs": [_run_out(r) for r in ls.rows], "statuses": STATUSES, "status": wanted or "",
        "partners": [(p["id"], p["name"]) for p in partners], "form": form, "errors": errors or {},
        "may_run": _sees_runs(who)}, status=status)


@AREA.page("/finance/billing-runs", permission="finance.view")
async def runs_page(request: web.Request) -> web.StreamResponse:
    return await _runs_page(request)


@AREA.page("/finance/billing-runs", permission="finance.add", method="POST")
async def preview_form(request: web.Request) -> web.StreamResponse:
    """A new preview: what is due on the date, priced; nothing is issued until it is confirmed."""
    form = await request.post()
    values = {k: str(v) for k, v in form.items() if k != "_csrf"}
    try:
        data = schemas.from_strings(values, RunIn)
        summary = await _preview(request, data)
    except schemas.Invalid as e:
        return await _runs_page(request, errors=e.errors, values=values, status=422)
    except billing.RunError as e:
        return await _runs_page(request, errors={"": str(e)}, values=values, status=409)
    raise web.HTTPFound(f"/admin/finance/billing-runs/{summary.run_id}")


def _csv_rows(items: list[Any]) -> list[dict[str, Any]]:
    """A preview's items as one row per line (each with its customer)."""
    out = []
    for item in items:
        for line in _lines(item):
            out.append({"customer_id": item["customer_id"], "customer_number": item["customer_number"],
                        "customer": item["customer"], "currency": item["currency"], "description": line.description,
                        "period_start": line.period_start,
                        "period_end": line.period_end - dt.timedelta(days=1) if line.period_end else None,
                        "quantity": line.quantity, "unit_price": line.unit_price, "net": line.net, "tax": line.tax,
                        "gross": line.gross, "customer_total": item["total"]})
    return out


@AREA.page("/finance/billing-runs/{id}", permission="finance.view")
async def run_page(request: web.Request) -> web.StreamResponse:
    """A run: its preview's customers and lines (or, issued, what it issued); ``?format=csv`` the lines as CSV."""
    who = keys.principal(request)
    run_id = path_id(request)
    pool = request.app[keys.POOL]
    async with pool.acquire() as conn:
        row = await run_or_404(conn, request, run_id)
        job = await worker_store.active_job(conn, confirm_key(run_id)) if row["status"] in ("preview", "issuing") \
            else None
    ls = common.page_listing(request, {"customer": "i.customer_id"}, {"customer": "int"}, "customer", "asc")

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.run_items(conn, *common.scope(who), run_id, after[0] if after else 0, limit)

    if ls.wants_csv:
        async def lines(after: list[Any] | None, limit: int) -> list[Any]:
            return _csv_rows(await fetch(after, limit - 1))

        return await listing.export_csv(request, f"billing-run-{run_id}.csv", CSV_COLUMNS, lines,
                                        lambda r: (r["customer_id"], r["customer_id"]),
                                        lambda r: [r[c] for c in CSV_COLUMNS])
    items = ls.take(await fetch(ls.after, ls.limit), lambda r: (r["customer_id"], r["customer_id"]))
    return common.render("finance/run.html", request, {
        "r": _run_out(row), "ls": ls, "items": [_item_out(i) for i in items], "may_run": _sees_runs(who),
        "job": job, "done": request.query.get("done", "")})


@AREA.page("/finance/billing-runs/{id}/confirm", permission="finance.edit", method="POST")
async def confirm_form(request: web.Request) -> web.StreamResponse:
    """Issue the preview's invoices (one per customer, numbered in customer order), by the worker."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await run_or_404(conn, request, path_id(request))
        try:
            await _confirm(conn, request, row)
        except billing.RunError as e:
            raise common.refused(e) from None
    raise web.HTTPFound(f"/admin/finance/billing-runs/{row['id']}?done=queued")


@AREA.page("/finance/billing-runs/{id}/cancel", permission="finance.add", method="POST")
async def cancel_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await run_or_404(conn, request, path_id(request))
        try:
            await _cancel(conn, request, row)
        except billing.RunError as e:
            raise common.refused(e) from None
    raise web.HTTPFound(f"/admin/finance/billing-runs/{row['id']}?done=cancelled")


# -- the API ------------------------------------------------------------------------------------

@AREA.api("GET", "/finance/billing-runs", permission="finance.view", summary="List billing runs", query=RunQuery,
          response=Page[Run])
async def api_runs(request: web.Request) -> web.StreamResponse:
    """Billing runs, newest first."""
    who = keys.principal(request)
    f = common.query(request, RunQuery)
    after = common.typed_cursor(listing.decode_cursor(f.after), "int")
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.runs(conn, who.partner_id, f.status, after, f.limit) if _sees_runs(who) else []
    return schemas.json(Page[Run]([_run_out(r) for r in rows[: f.limit]],
                                  common.next_cursor(rows, f.limit, lambda r: (r["id"], r["id"]))))


@AREA.api("POST", "/finance/billing-runs", permission="finance.add", summary="Preview a billing run", body=RunIn,
          response=Run, status=201)
async def api_preview(request: web.Request) -> web.StreamResponse:
    """Price what is due on `billing_date` into a preview (nothing is issued): one preview per
    (partner, date) at a time, 409 while another waits."""
    data = await schemas.body(request, RunIn)
    try:
        summary = await _preview(request, data)
    except billing.RunError as e:
        raise common.refused(e) from None
    assert summary.run_id is not None
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_run_out(await run_or_404(conn, request, summary.run_id)), status=201)


@AREA.api("GET", "/finance/billing-runs/{id}", permission="finance.view", summary="Get a billing run", response=Run)
async def api_run(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_run_out(await run_or_404(conn, request, path_id(request))))


@AREA.api("GET", "/finance/billing-runs/{id}/items", permission="finance.view", query=RunItemQuery,
          response=Page[RunItem], summary="A billing run's preview: each customer's lines")
async def api_run_items(request: web.Request) -> web.StreamResponse:
    """By customer id; the preview's lines stay after it was issued, a cancelled run has none."""
    who = keys.principal(request)
    f = common.query(request, RunItemQuery)
    after = common.typed_cursor(listing.decode_cursor(f.after), "int")
    async with request.app[keys.POOL].acquire() as conn:
        row = await run_or_404(conn, request, path_id(request))
        rows = await queries.run_items(conn, *common.scope(who), row["id"], after[0] if after else 0, f.limit)
    return schemas.json(Page[RunItem]([_item_out(i) for i in rows[: f.limit]],
                                      common.next_cursor(rows, f.limit, lambda r: (r["customer_id"],
                                                                                   r["customer_id"]))))


@AREA.api("POST", "/finance/billing-runs/{id}/confirm", permission="finance.edit", response=Run, status=202,
          summary="Confirm a billing run (its invoices are issued by the worker)")
async def api_confirm(request: web.Request) -> web.StreamResponse:
    """Queues the issuing of the preview's invoices (one per customer) for the worker and answers
    at once (202): the run stays `preview` until the worker takes it, then is `issuing`, then
    `issued` (GET it to follow). Asked again while it is queued or running, nothing more is queued;
    after a crash it goes on where it stopped."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await run_or_404(conn, request, path_id(request))
        try:
            await _confirm(conn, request, row)
        except billing.RunError as e:
            raise common.refused(e) from None
        return schemas.json(_run_out(await run_or_404(conn, request, row["id"])), status=202)


@AREA.api("POST", "/finance/billing-runs/{id}/cancel", permission="finance.add", response=Run,
          summary="Cancel a billing run's preview")
async def api_cancel(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await run_or_404(conn, request, path_id(request))
        try:
            await _cancel(conn, request, row)
        except billing.RunError as e:
            raise common.refused(e) from None
        return schemas.json(_run_out(await run_or_404(conn, request, row["id"])))

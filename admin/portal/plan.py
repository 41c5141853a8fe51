"""The portal's plan change and stop/resume (``/portal/services/{id}/plan``), issue 17.

**What a tariff allows** (the tariff's form, admin/tariffs/): ``portal_change`` is
``self_service``, ``request`` or ``off``; the tariffs its services may move to are listed in
``tariff_portal_targets`` (of the same currency only); ``portal_stop`` lets its customers stop a
service for a while and resume it.

**Self-service.** Choosing a target shows the preview: the documents admin/billing/changes.py
``change_plan`` would issue if the change were confirmed today, which this module gets by running
``change_plan`` itself in a transaction it then rolls back (:func:`preview`). The preview is thus
the billing engine's own answer, to the cent: the credit note for the rest of the charged period
at the old price, the invoice for it at the new price and the plan change fee, each with its
taxes (a prepaid customer, or a period not charged yet, gets no document: the next charge is at
the new price). Confirming runs ``change_plan`` from today for real. The form carries the plan it
moves from and the day it was previewed on: a form sent again once the plan has changed changes
nothing (it shows the result), and a form previewed another day shows the new day's amounts
before anything is done. The services table's NOTIFY and CoA trigger carry the new speeds to
radiusd and provisiond, as for any change in the admin.

**On request.** Choosing a target opens a ticket for the customer (source ``portal``, its first
message the customer's, in the group of the partner's support inbox as a new portal ticket), once
per service, plans and day (``rule_key`` ``portal-plan:<service>:<from>:<to>:<day>``): a form sent
twice opens one ticket. Staff make the change.

**Stop and resume.** A stop is a billing pause (changes.pause) from a chosen day (today up to
:data:`STOP_AHEAD` days ahead) until the day the service is back (at most :data:`STOP_LONGEST`
days later), marked ``by_customer``: the days already invoiced are credited by a credit note, the
next invoices leave the paused days out. The service is ``disabled`` (Stopped) over it: at once
when it starts today, else by the worker's ``portal.stops`` job (admin/portal/jobs.py), which also
makes it active again when the stop is over. Resuming early ends the stop today (or removes it if
it has not started): the days from today to the planned end, credited when the stop was made,
are invoiced again at the plan's price (:func:`resume`, the reverse of changes.pause's credit),
and the service is active at once.

Every write is the customer's own (acting.py): refused to staff looking as the customer, and in
the operations log as ``customer:<number>``.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from aiohttp import web

from admin import keys
from admin.auth.store import Connection
from admin.billing import changes, ledger
from admin.portal import acting, pages, plan_store, support_store
from admin.portal.common import AREA, customer
from admin.portal.services import day
from admin.tickets import store as tickets_store
from admin.tickets.automation import Author
from admin.web import PORTAL_CUSTOMER, path_id

STOP_AHEAD = 60
"""How many days ahead a stop may start."""
STOP_LONGEST = 92
"""How many days a stop may last."""
NOTICES = {
    "changed": "Your plan is changed. The credit note and the invoice are below and in Finance.",
    "requested": "We have your request: our team will change your plan and tell you in your ticket.",
    "stopped": "Your service is stopped for the days you chose.",
    "resumed": "Your service is on again.",
}


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _document(row: Any) -> dict[str, Any]:
    lines = row["lines"] if isinstance(row["lines"], list) else json.loads(row["lines"])
    return {**row, "lines": [{**line, "net": Decimal(line["net"]), "tax": Decimal(line["tax"]),
                               "gross": Decimal(line["gross"])} for line in lines]}


async def preview(conn: Connection, customer_id: int, service_id: int, target_id: int, on: dt.date,
                  by: str) -> list[dict[str, Any]]:
    """The documents changes.change_plan would issue for this change on ``on``: it runs, and its
    transaction is rolled back (nothing is kept, its document numbers are given back)."""
    tr = conn.transaction()
    await tr.start()
    try:
        ids = await changes.change_plan(conn, service_id, target_id, on, by)
        return [_document(r) for r in await plan_store.documents(conn, customer_id, ids)]
    finally:
        await tr.rollback()


def totals(documents: list[dict[str, Any]]) -> dict[str, Decimal]:
    """What the documents credit, charge, and the difference the customer pays (less: is owed)."""
    credit = sum((d["total"] for d in documents if d["kind"] == "credit_note"), Decimal(0))
    charge = sum((d["total"] for d in documents if d["kind"] == "invoice"), Decimal(0))
    return {"credit": credit, "charge": charge, "difference": charge - credit}


# -- pages ----------------------------------------------------------------------------------------

async def _service_or_404(conn: Connection, customer_id: int, service_id: int, *, lock: bool = False) -> Any:
    row = await plan_store.service(conn, customer_id, service_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such service")
    return row


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None


async def _plan_page(request: web.Request, service_id: int, *, errors: dict[str, str] | None = None,
                     form: dict[str, str] | None = None, status: int = 200) -> web.Response:
    me = customer(request)
    on = today()
    async with request.app[keys.POOL].acquire() as conn:
        row = await _service_or_404(conn, me.customer_id, service_id)
        targets = (await plan_store.targets(conn, row["tariff_id"], me.partner_id)
                   if row["portal_change"] != "off" else [])
        stop = await plan_store.stop_of(conn, service_id, on) if row["portal_stop"] else None
        issued = await plan_store.changes_of(conn, me.customer_id, service_id)
        asked = await plan_store.requests(conn, me.customer_id, service_id) if row["portal_change"] == "request" \
            else []
    ended = row["status"] == "archived"
    return pages.render("portal/plan.html", request, {
        "s": row, "targets": targets, "mode": row["portal_change"], "ended": ended,
        "writable": me.impersonator_id is None and not ended, "impersonating": me.impersonator_id is not None,
        "impersonating_text": acting.IMPERSONATING, "notice": NOTICES.get(request.query.get("done", ""), ""),
        "stop": stop, "stoppable": row["portal_stop"] and row["status"] == "active" and stop is None,
        "issued": issued, "requests": asked, "errors": errors or {}, "day": day,
        "form": form or {"starts_on": on.isoformat(), "ends_on": (on + dt.timedelta(days=14)).isoformat()},
        "today": on.isoformat(), "latest_start": (on + dt.timedelta(days=STOP_AHEAD)).isoformat(),
        "stop_longest": STOP_LONGEST}, status=status)


async def _preview_page(request: web.Request, service_id: int, target_id: int | None, *, note: str = "",
                        status: int = 200) -> web.Response:
    me = customer(request)
    on = today()
    async with request.app[keys.POOL].acquire() as conn:
        row = await _service_or_404(conn, me.customer_id, service_id)
        if row["portal_change"] != "self_service" or row["status"] == "archived" or target_id is None:
            raise web.HTTPNotFound(text="no such plan to move to")
        new = await plan_store.target(conn, row["tariff_id"], target_id, me.partner_id)
        if new is None:
            raise web.HTTPNotFound(text="no such plan to move to")
        try:
            documents = await preview(conn, me.customer_id, service_id, target_id, on,
                                      acting.actor(row["customer_number"]).name)
        except ledger.LedgerError as e:  # what billing refuses, said as it says it
            raise web.HTTPConflict(text=str(e)) from None
    return pages.render("portal/plan_preview.html", request, {
        "s": row, "new": new, "documents": documents, "totals": totals(documents), "on": on, "day": day,
        "note": note, "writable": me.impersonator_id is None, "impersonating": me.impersonator_id is not None,
        "impersonating_text": acting.IMPERSONATING}, status=status)


@AREA.portal("/services/{id}/plan", access=PORTAL_CUSTOMER)
async def plan_page(request: web.Request) -> web.StreamResponse:
    """The plans the service may move to; ``?to=`` one of them: the preview of that change."""
    service_id = path_id(request)
    if "to" in request.query:
        return await _preview_page(request, service_id, _int(request.query["to"]))
    return await _plan_page(request, service_id)


@AREA.portal("/services/{id}/plan", access=PORTAL_CUSTOMER, method="POST")
async def plan_form(request: web.Request) -> web.StreamResponse:
    """Confirm a previewed change (self-service) or ask for one (on request)."""
    service_id = path_id(request)
    me = acting.refuse_impersonator(request)
    form = await request.post()
    target_id, from_id, previewed = _int(form.get("to", "")), _int(form.get("from", "")), _date(form.get("on", ""))
    on = today()
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await _service_or_404(conn, me.customer_id, service_id, lock=True)
        mode = row["portal_change"]
        if row["tariff_id"] != from_id:
            if row["tariff_id"] == target_id:  # sent again after the change: done already
                raise web.HTTPFound(f"/portal/services/{service_id}/plan?done=changed")
            raise web.HTTPConflict(text="your plan changed meanwhile: choose again")
        if mode == "off":
            raise web.HTTPForbidden(text="this plan is not changed in the portal: please ask us")
        if row["status"] == "archived":
            raise web.HTTPConflict(text="this service has ended")
        new = (await plan_store.target(conn, row["tariff_id"], target_id, me.partner_id)
               if target_id is not None else None)
        if new is None:
            raise web.HTTPUnprocessableEntity(text="this plan cannot be chosen from yours")
        who = acting.actor(row["customer_number"]).name
        done = "requested" if mode == "request" else "changed"
        changed_day = mode == "self_service" and previewed != on
        if mode == "request":
            await _request(conn, request, row, new, on, who)
        elif not changed_day:
            try:
                issued = await changes.change_plan(conn, service_id, new["id"], on, who)
            except ledger.LedgerError as e:
                raise web.HTTPConflict(text=str(e)) from None
            await acting.log(conn, request, row["customer_number"], "update", "service", service_id,
                             summary=f"service {row['login']}: changed the plan from {row['tariff']} to "
                                     f"{new['name']} in the portal",
                             before={"tariff_id": row["tariff_id"]},
                             after={"tariff_id": new["id"], "from": on.isoformat(), "documents": issued})
    if changed_day:
        return await _preview_page(request, service_id, target_id, status=409,
                                   note="A new day has begun since you looked: these are today's amounts.")
    raise web.HTTPFound(f"/portal/services/{service_id}/plan?done={done}")  # after the commit


async def _request(conn: Connection, request: web.Request, row: Any, new: Any, on: dt.date, who: str) -> None:
    me = customer(request)
    contact = await support_store.requester(conn, me.customer_id)
    assert contact is not None
    body = (f"Please change my plan for the service {row['login']} from {row['tariff']} to {new['name']} "
            f"({new['price']:.2f} {new['currency']} a month).\n\nAsked in the portal on {on.isoformat()}.")
    created = await tickets_store.create_ticket(conn, tickets_store.NewTicket(
        f"Plan change: {row['login']} from {row['tariff']} to {new['name']}", body, "portal",
        partner_id=me.partner_id, customer_id=me.customer_id, requester_email=contact["email"],
        requester_name=contact["name"], author=Author.CUSTOMER,
        group_id=await support_store.group_of(conn, me.partner_id),
        rule_key=f"portal-plan:{row['id']}:{row['tariff_id']}:{new['id']}:{on.isoformat()}", created_by=who),
        now=dt.datetime.now(dt.UTC))
    if created is not None:
        await acting.log(conn, request, row["customer_number"], "create", "ticket", created.ticket_id,
                         summary=f"asked in the portal to change the plan of {row['login']} from {row['tariff']} "
                                 f"to {new['name']} (ticket #{created.ticket_id})",
                         after={"service_id": row["id"], "from": row["tariff_id"], "to": new["id"]})


@AREA.portal("/services/{id}/stop", access=PORTAL_CUSTOMER, method="POST")
async def stop_form(request: web.Request) -> web.StreamResponse:
    """Stop the service from a day until a day (a billing pause of the customer's own)."""
    service_id = path_id(request)
    me = acting.refuse_impersonator(request)
    form = await request.post()
    starts_on, ends_on = _date(form.get("starts_on", "")), _date(form.get("ends_on", ""))
    on = today()
    shown = {"starts_on": str(form.get("starts_on", "")), "ends_on": str(form.get("ends_on", ""))}
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await _service_or_404(conn, me.customer_id, service_id, lock=True)
        if not row["portal_stop"]:
            raise web.HTTPForbidden(text="this plan is not stopped in the portal: please ask us")
        errors = stop_problems(starts_on, ends_on, on)
        if not errors and starts_on is not None and ends_on is not None:
            current = await plan_store.overlapping(conn, service_id, starts_on, ends_on)
            if current is not None and current["by_customer"] and (current["starts_on"], current["ends_on"]) == (
                    starts_on, ends_on):
                raise web.HTTPFound(f"/portal/services/{service_id}/plan?done=stopped")  # sent again
            if row["status"] != "active":
                raise web.HTTPConflict(text="only a service that is on can be stopped")
            if current is not None:
                errors = {"starts_on": f"The service is paused already from {day(current['starts_on'])} to "
                                       f"{day(current['ends_on'] - dt.timedelta(days=1))}."}
            else:
                who = acting.actor(row["customer_number"]).name
                issued = await changes.pause(conn, service_id, starts_on, ends_on,
                                             reason="Stopped by the customer in the portal", by=who)
                pause_id = await plan_store.mark_by_customer(conn, service_id, starts_on, ends_on)
                await plan_store.due(conn, on, service_id)
                await acting.log(conn, request, row["customer_number"], "update", "service", service_id,
                                 summary=f"service {row['login']}: stopped in the portal from {starts_on.isoformat()} "
                                         f"until {ends_on.isoformat()}",
                                 after={"pause_id": pause_id, "starts_on": starts_on.isoformat(),
                                        "ends_on": ends_on.isoformat(), "documents": issued})
    if errors:
        return await _plan_page(request, service_id, errors=errors, form=shown, status=422)
    raise web.HTTPFound(f"/portal/services/{service_id}/plan?done=stopped")


def stop_problems(starts_on: dt.date | None, ends_on: dt.date | None, on: dt.date) -> dict[str, str]:
    """What is wrong with a stop from ``starts_on`` until ``ends_on`` (the day it is back) asked on ``on``."""
    if starts_on is None:
        return {"starts_on": "Choose the first day of the stop."}
    if ends_on is None:
        return {"ends_on": "Choose the day the service is back."}
    if not on <= starts_on <= on + dt.timedelta(days=STOP_AHEAD):
        return {"starts_on": f"The stop starts today or in the next {STOP_AHEAD} days."}
    if ends_on <= starts_on:
        return {"ends_on": "The service is back after the stop starts."}
    if (ends_on - starts_on).days > STOP_LONGEST:
        return {"ends_on": f"A stop lasts at most {STOP_LONGEST} days."}
    return {}


@AREA.portal("/services/{id}/resume", access=PORTAL_CUSTOMER, method="POST")
async def resume_form(request: web.Request) -> web.StreamResponse:
    """End the customer's stop today (or call off one to come)."""
    service_id = path_id(request)
    me = acting.refuse_impersonator(request)
    on = today()
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await _service_or_404(conn, me.customer_id, service_id, lock=True)
        pause = await plan_store.stop_of(conn, service_id, on)
        if pause is not None:  # none: resumed already (a form sent again)
            who = acting.actor(row["customer_number"]).name
            issued = await changes.end_pause(conn, service_id, pause, on, who)
            started = await plan_store.start_again(conn, service_id, pause["stopped_at"] is not None)
            await acting.log(conn, request, row["customer_number"], "update", "service", service_id,
                             summary=f"service {row['login']}: resumed in the portal on {on.isoformat()}",
                             before={"starts_on": pause["starts_on"].isoformat(),
                                     "ends_on": pause["ends_on"].isoformat()},
                             after={"ends_on": max(on, pause["starts_on"]).isoformat(), "documents": issued,
                                    "status": "active" if started else row["status"]})
    raise web.HTTPFound(f"/portal/services/{service_id}/plan?done=resumed")

"""Support → Canned replies: a reply's text as a template (replies.py: the ticket, its customer,
the agent and the customer's last message are its variables), the list, the form, a preview
rendered with replies.SAMPLE, and deleting one no rule sends.

A canned reply is its partner's, or every partner's (``partner_id`` NULL): a partner's
administrator sees and changes its own partner's and every partner's (another partner's: not
found); an administrator of every partner picks the partner of a new one (or none). A body is
checked as the rules would render it (replies.problems): its sentence is the field's error.
support.view sees, support.edit changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from admin import keys, pages, schemas
from admin.auth.store import Connection
from admin.tickets import canned_store, replies
from admin.tickets.common import AREA, Row, log
from admin.web import parse_id, path_id

DEFAULTS: dict[str, Any] = {"name": "", "body": "", "partner_id": None}
MAX_BODY = 20_000


def from_form(form: Mapping[str, Any]) -> dict[str, str]:
    """The reply's name and body, the body rendered with the sample: schemas.Invalid by field."""
    errors: dict[str, str] = {}
    name = str(form.get("name", "")).strip()
    body = str(form.get("body", "")).replace("\r\n", "\n")
    if not name:
        errors["name"] = "is required"
    elif len(name) > 200 or "\n" in name or "\r" in name:
        errors["name"] = "must be one line of at most 200 characters"
    if not body.strip():
        errors["body"] = "is required"
    elif len(body) > MAX_BODY:
        errors["body"] = f"is longer than {MAX_BODY} characters"
    else:
        found = replies.problems(body)
        if found:
            errors["body"] = "; ".join(found)
    if errors:
        raise schemas.Invalid(errors)
    return {"name": name, "body": body}


def preview(body: str) -> tuple[str, str]:
    """The body rendered with the sample, or why it cannot be: (text, error)."""
    try:
        return replies.render(body, **replies.SAMPLE), ""  # type: ignore[arg-type]
    except replies.ReplyError as e:
        return "", str(e)


def _owner(row: Row) -> dict[str, Any]:
    return {"id": row["id"], "partner_id": row["partner_id"], "customer_id": None}


def _partner_of(request: web.Request, form: Mapping[str, Any]) -> int | None:
    who = keys.principal(request)
    if who.partner_id is not None:
        return who.partner_id
    text = str(form.get("partner_id", "")).strip()
    if not text:
        return None
    found = parse_id(text)
    if found is None:
        raise schemas.Invalid({"partner_id": "no such partner"})
    return found


async def _reply_or_404(request: web.Request, conn: Connection, reply_id: int, *,
                        lock: bool = False) -> asyncpg.Record:
    """The reply, to read, or (``lock``) to change: one every partner shares is the operator's
    to change, a partner's administrator only reads and uses it (403)."""
    row = await canned_store.reply(conn, reply_id, keys.principal(request).partner_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such canned reply")
    if lock and keys.principal(request).partner_id is not None and row["partner_id"] is None:
        raise web.HTTPForbidden(text="this reply is every partner's: only the operator's administrators change it")
    return row


async def _save(request: web.Request, reply_id: int | None, form: Mapping[str, Any]) -> asyncpg.Record:
    values = from_form(form)
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            if reply_id is None:
                partner_id = _partner_of(request, form)
                if partner_id is not None and not await canned_store.partners(conn, partner_id):
                    raise schemas.Invalid({"partner_id": "no such partner"})
                row = await canned_store.create(conn, partner_id, values["name"], values["body"])
                await log(conn, request, "create", _owner(row), f"created canned reply {row['name']}",
                          object_type="ticket_canned_reply",
                          after=schemas.row_json(row, ("name", "body", "partner_id")))
                return row
            before = await _reply_or_404(request, conn, reply_id, lock=True)
            diff = [c for c in ("name", "body") if before[c] != values[c]]
            if not diff:
                return before
            row = await canned_store.update(conn, reply_id, values["name"], values["body"])
            await log(conn, request, "update", _owner(row), f"changed canned reply {row['name']}: {', '.join(diff)}",
                      object_type="ticket_canned_reply", before=schemas.row_json(before, diff),
                      after=schemas.row_json(row, diff))
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"}) from None


async def _editor(request: web.Request, reply: Mapping[str, Any], errors: Mapping[str, str], *,
                  status: int = 200, shown: tuple[str, str] | None = None) -> web.Response:
    who = keys.principal(request)
    editing = reply.get("id") is not None
    async with request.app[keys.POOL].acquire() as conn:
        partners = await canned_store.partners(conn, who.partner_id)
        used = await canned_store.rules_using(conn, int(reply["id"])) if editing else []
    if shown is None and str(reply.get("body") or "").strip():
        shown = preview(str(reply["body"]))
    return pages.render("tickets/canned_form.html", request, {
        "r": reply, "errors": errors, "editing": editing, "used": used,
        "partner_options": [(r["id"], r["name"]) for r in partners],
        "pick_partner": who.partner_id is None and not editing,
        "preview": shown[0] if shown else "", "preview_error": shown[1] if shown else "",
        "variables": "ticket.id, ticket.subject, ticket.status, ticket.priority, ticket.type, customer.name, "
                     "customer.number, customer.email, agent.name, ticketMessage.message",
        "notice": request.query.get("done", "")}, status=status)


def _shown(form: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in form.items() if k not in ("_csrf", "preview")}


@AREA.page("/tickets/canned-replies", permission="support.view")
async def canned_list(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = await canned_store.replies(conn, keys.principal(request).partner_id)
    return pages.render("tickets/canned_list.html", request, {"rows": rows, "notice": request.query.get("done", "")})


@AREA.page("/tickets/canned-replies/new", permission="support.edit")
async def canned_new(request: web.Request) -> web.StreamResponse:
    return await _editor(request, dict(DEFAULTS), {})


@AREA.page("/tickets/canned-replies/new", permission="support.edit", method="POST")
async def canned_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if form.get("preview"):
        return await _editor(request, {**DEFAULTS, **_shown(form)}, {}, shown=preview(str(form.get("body", ""))))
    try:
        row = await _save(request, None, form)
    except schemas.Invalid as e:
        return await _editor(request, {**DEFAULTS, **_shown(form)}, e.errors, status=422)
    raise web.HTTPFound(f"/admin/tickets/canned-replies/{row['id']}?done=created")


@AREA.page("/tickets/canned-replies/{id}", permission="support.view")
async def canned_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await _reply_or_404(request, conn, path_id(request))
    return await _editor(request, dict(row), {})


@AREA.page("/tickets/canned-replies/{id}", permission="support.edit", method="POST")
async def canned_edit(request: web.Request) -> web.StreamResponse:
    reply_id = path_id(request)
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        row = await _reply_or_404(request, conn, reply_id)
    if form.get("preview"):
        return await _editor(request, {**dict(row), **_shown(form)}, {}, shown=preview(str(form.get("body", ""))))
    try:
        await _save(request, reply_id, form)
    except schemas.Invalid as e:
        return await _editor(request, {**dict(row), **_shown(form)}, e.errors, status=422)
    raise web.HTTPFound(f"/admin/tickets/canned-replies/{reply_id}?done=saved")


@AREA.page("/tickets/canned-replies/{id}/delete", permission="support.edit", method="POST")
async def canned_delete(request: web.Request) -> web.StreamResponse:
    reply_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await _reply_or_404(request, conn, reply_id, lock=True)
        used = await canned_store.rules_using(conn, reply_id)
        if not used:
            await canned_store.delete(conn, reply_id)
            await log(conn, request, "delete", _owner(row), f"deleted canned reply {row['name']}",
                      object_type="ticket_canned_reply", before=schemas.row_json(row, ("name", "body", "partner_id")))
    if used:
        return await _editor(request, dict(row), {
                "": f"the rules {', '.join(used)} send this reply: change them first"}, status=409)
    raise web.HTTPFound("/admin/tickets/canned-replies?done=deleted")

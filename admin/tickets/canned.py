"""Support → Canned replies: a reply's text as a template (replies.py: the ticket, its customer,
the agent and the customer's last message are its variables), the list, the form, a preview
rendered with replies.SAMPLE, and deleting one no rule sends; the API does the same through the
page's save (editing.py).

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
from admin.schemas import Deleted
from admin.tickets import canned_store, editing, replies
from admin.tickets.common import AREA, log, out
from admin.tickets.schemas import CannedReply, CannedReplyIn, CannedReplyPatch
from admin.web import path_id

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
                partner_id = editing.partner_of(request, form)
                if partner_id is not None and not await canned_store.partners(conn, partner_id):
                    raise schemas.Invalid({"partner_id": "no such partner"})
                row = await canned_store.create(conn, partner_id, values["name"], values["body"])
                await log(conn, request, "create", editing.owner(row), f"created canned reply {row['name']}",
                          object_type="ticket_canned_reply",
                          after=schemas.row_json(row, ("name", "body", "partner_id")))
                return row
            before = await _reply_or_404(request, conn, reply_id, lock=True)
            diff = [c for c in ("name", "body") if before[c] != values[c]]
            if not diff:
                return before
            row = await canned_store.update(conn, reply_id, values["name"], values["body"])
            await log(conn, request, "update", editing.owner(row),
                      f"changed canned reply {row['name']}: {', '.join(diff)}", object_type="ticket_canned_reply",
                      before=schemas.row_json(before, diff), after=schemas.row_json(row, diff))
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


async def _preview(request: web.Request, reply_id: int | None) -> web.Response | None:
    """The editor with the posted body rendered (the form's Preview button), or None: it was not pressed."""
    form = await request.post()
    if not form.get("preview"):
        return None
    base = dict(DEFAULTS) if reply_id is None else dict(await CANNED.row(request, reply_id))
    return await _editor(request, {**base, **_shown(form)}, {}, shown=preview(str(form.get("body", ""))))


CANNED = editing.Kind("/tickets/canned-replies", _reply_or_404, _save, editing.rendering(_editor), DEFAULTS,
                      shown=_shown, intercept=_preview)


async def _delete(request: web.Request, reply_id: int) -> tuple[asyncpg.Record, list[str]]:
    """Delete the reply unless a rule sends it: (the reply, the names of the rules that send it)."""
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await _reply_or_404(request, conn, reply_id, lock=True)
        used = await canned_store.rules_using(conn, reply_id)
        if not used:
            await canned_store.delete(conn, reply_id)
            await log(conn, request, "delete", editing.owner(row), f"deleted canned reply {row['name']}",
                      object_type="ticket_canned_reply", before=schemas.row_json(row, ("name", "body", "partner_id")))
    return row, used


def _in_use(used: list[str]) -> str:
    return f"the rules {', '.join(used)} send this reply: change them first"


@AREA.page("/tickets/canned-replies", permission="support.view")
async def canned_list(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = await canned_store.replies(conn, keys.principal(request).partner_id)
    return pages.render("tickets/canned_list.html", request, {"rows": rows, "notice": request.query.get("done", "")})


CANNED.declare(AREA, "canned")


@AREA.page("/tickets/canned-replies/{id}/delete", permission="support.edit", method="POST")
async def canned_delete(request: web.Request) -> web.StreamResponse:
    row, used = await _delete(request, path_id(request))
    if used:
        return await _editor(request, dict(row), {"": _in_use(used)}, status=409)
    raise web.HTTPFound("/admin/tickets/canned-replies?done=deleted")


# -- API --------------------------------------------------------------------------------------

async def _reply_out(request: web.Request, reply_id: int) -> CannedReply:
    return out(await CANNED.row(request, reply_id), CannedReply)


@AREA.api("GET", "/tickets/canned-replies", permission="support.view", summary="List canned replies",
          response=list[CannedReply])
async def api_canned_list(request: web.Request) -> web.StreamResponse:
    """The replies the caller sees (a partner's: its own partner's and every partner's), by name."""
    async with request.app[keys.POOL].acquire() as conn:
        rows = await canned_store.replies(conn, keys.principal(request).partner_id)
    return schemas.json([out(r, CannedReply) for r in rows])


@AREA.api("GET", "/tickets/canned-replies/{id}", permission="support.view", summary="Get a canned reply",
          response=CannedReply)
async def api_canned_get(request: web.Request) -> web.StreamResponse:
    return schemas.json(await _reply_out(request, path_id(request)))


@AREA.api("POST", "/tickets/canned-replies", permission="support.edit", summary="Add a canned reply",
          body=CannedReplyIn, response=CannedReply, status=201)
async def api_canned_create(request: web.Request) -> web.StreamResponse:
    """The body is checked as the rules render it (its variables: the ticket, its customer, the
    agent, the customer's last message); a sentence of what is wrong is the field's 422."""
    data = await schemas.body(request, CannedReplyIn)
    row = await _save(request, None, editing.as_form(data))
    return schemas.json(await _reply_out(request, row["id"]), status=201)


@AREA.api("PATCH", "/tickets/canned-replies/{id}", permission="support.edit", summary="Change a canned reply",
          body=CannedReplyPatch, response=CannedReply)
async def api_canned_change(request: web.Request) -> web.StreamResponse:
    """Only the fields given change. A reply every partner shares is the operator's to change (403
    for a partner's key)."""
    reply_id = path_id(request)
    patch = await schemas.body(request, CannedReplyPatch)
    before = await CANNED.row(request, reply_id)
    await _save(request, reply_id, editing.as_form(patch, {"name": before["name"], "body": before["body"]}))
    return schemas.json(await _reply_out(request, reply_id))


@AREA.api("DELETE", "/tickets/canned-replies/{id}", permission="support.edit", summary="Delete a canned reply",
          response=Deleted, description="Refused (409) while a rule sends the reply.")
async def api_canned_delete(request: web.Request) -> web.StreamResponse:
    reply_id = path_id(request)
    _, used = await _delete(request, reply_id)
    if used:
        return schemas.problem(409, "canned reply in use", _in_use(used))
    return schemas.json(Deleted(reply_id))

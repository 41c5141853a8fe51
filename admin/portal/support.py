"""The portal's support pages (``/portal/tickets``): the customer's tickets, a ticket's thread, a
reply, closing a ticket, a new ticket, an attachment's download.

Every read is scoped by the customer logged in (support_store.py): another customer's ticket or
attachment, by whatever route, is 404. The thread shows the customer's messages and staff's
replies with their attachments; never an internal note, nor a system line (what the automation
did, written for staff: the page shows the ticket's status instead).

Every write goes through admin/tickets/store.py in one transaction with its operations log line
(acting.py: the actor ``customer:<number>``):

- a reply is the customer's message (store.add_message, author customer): the automation moves
  the ticket to waiting on an agent, reopens a closed one, and tells its assignee and watchers;
- a close sets the ticket resolved (store.set_fields, which records when) with a system line for
  staff ("closed by the customer in the portal");
- a new ticket (store.create_ticket, source 'portal', written by the customer) goes to the group
  of the partner's support inbox if it has one (support_store.group_of), whose assign mode picks
  and tells an agent. Its priority is low, medium or high: urgent is staff's call.

Files go with a reply or a new ticket as with staff's (admin/tickets/uploads.py: the same limits,
the name made safe, the served type sniffed) and are downloaded as staff's are (attachment,
nosniff, sandboxed). An administrator looking as the customer reads all this and writes nothing
(403: acting.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from aiohttp import web

from admin import keys, schemas
from admin.auth.store import Connection
from admin.portal import acting, pages, support_store
from admin.portal.common import AREA, customer
from admin.tickets import store, uploads
from admin.tickets.automation import Author, Status
from admin.tickets.common import attachments_of
from admin.tickets.inbound import Attachment
from admin.tickets.schemas import Body, Subject, TicketType
from admin.tickets.tickets import content_disposition
from admin.web import PORTAL_CUSTOMER, path_id

PRIORITIES: dict[str, str] = {"low": "Low", "medium": "Normal", "high": "High"}
"""The priorities a customer may give its ticket, as the form names them (urgent: staff's call)."""
TYPES: dict[str, str] = {"question": "A question", "incident": "Something does not work",
                         "problem": "A problem that keeps coming back", "feature_request": "A suggestion"}
NOTICES = {"created": "Your ticket is open: we will answer here and by e-mail.",
           "reply": "Your message is sent.", "closed": "The ticket is closed. Write again to reopen it."}
CLOSED_BY_CUSTOMER = "Closed by the customer in the portal."


class NewTicketForm(msgspec.Struct, kw_only=True):
    subject: Subject
    body: Body
    priority: Literal["low", "medium", "high"] = "medium"
    type: TicketType = "question"


class ReplyForm(msgspec.Struct, kw_only=True):
    body: Body


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _with_files(files: tuple[Attachment, ...]) -> str:
    return "" if not files else f" with {len(files)} file{'s' if len(files) > 1 else ''}"


async def _ticket_or_404(conn: Connection, customer_id: int, ticket_id: int, *, lock: bool = False) -> Any:
    row = await support_store.ticket(conn, customer_id, ticket_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such ticket")
    return row


async def _requester(conn: Connection, customer_id: int) -> Any:
    who = await support_store.requester(conn, customer_id)
    if who is None:  # the session outlived its customer
        raise web.HTTPNotFound(text="no such customer")
    return who


def _limits(request: web.Request) -> dict[str, int]:
    """What the form says a message's files may be: at most so many, so much together (the staff
    limits, or the app's request limit where that is smaller: it answers 413 first)."""
    return {"max_files": uploads.LIMITS.max_attachments,
            "max_bytes": min(uploads.LIMITS.max_message_bytes, request.client_max_size)}


# -- the list and a ticket --------------------------------------------------------------------

@AREA.portal("/tickets", access=PORTAL_CUSTOMER)
async def tickets_page(request: web.Request) -> web.StreamResponse:
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await support_store.tickets(conn, me.customer_id)
    return pages.render("portal/tickets.html", request, {
        "rows": rows, "open": [r for r in rows if not r["closed"]], "closed": [r for r in rows if r["closed"]],
        "limit": support_store.LIST_LIMIT, "priorities": PRIORITIES, "writable": me.impersonator_id is None})


async def _ticket_page(request: web.Request, ticket_id: int, *, form: Mapping[str, Any] | None = None,
                       errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        t = await _ticket_or_404(conn, me.customer_id, ticket_id)
        thread = await support_store.messages(conn, me.customer_id, ticket_id)
    return pages.render("portal/tickets_ticket.html", request, {
        "t": t, "messages": [{**m, "files": attachments_of(m)} for m in thread], "form": form or {},
        "errors": errors or {}, "notice": NOTICES.get(request.query.get("done", ""), ""),
        "writable": me.impersonator_id is None, "impersonating": acting.IMPERSONATING, "limits": _limits(request),
        "priority": PRIORITIES.get(t["priority"], t["priority"].capitalize()),
        "type": TYPES.get(t["type"], t["type"])}, status=status)


async def _new_page(request: web.Request, *, form: Mapping[str, Any] | None = None,
                    errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    me = customer(request)
    return pages.render("portal/tickets_new.html", request, {
        "form": form or {"priority": "medium", "type": "question"}, "errors": errors or {},
        "priorities": PRIORITIES, "types": TYPES, "limits": _limits(request), "writable": me.impersonator_id is None,
        "impersonating": acting.IMPERSONATING}, status=status)


# before /tickets/{id}, which "new" would match
@AREA.portal("/tickets/new", access=PORTAL_CUSTOMER)
async def new_page(request: web.Request) -> web.StreamResponse:
    return await _new_page(request)


@AREA.portal("/tickets/new", access=PORTAL_CUSTOMER, method="POST")
async def new_form(request: web.Request) -> web.StreamResponse:
    """A new ticket from the customer, its message first (source 'portal')."""
    me = acting.refuse_impersonator(request)
    form = await request.post()
    try:
        data, files = uploads.form_and_files(form, NewTicketForm)
    except schemas.Invalid as e:
        return await _new_page(request, form=form, errors=e.errors, status=422)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        who = await _requester(conn, me.customer_id)
        created = await store.create_ticket(conn, store.NewTicket(
            data.subject.strip(), data.body, "portal", partner_id=me.partner_id, customer_id=me.customer_id,
            requester_email=who["email"], requester_name=who["name"], author=Author.CUSTOMER,
            priority=data.priority, type=data.type, group_id=await support_store.group_of(conn, me.partner_id),
            created_by=acting.actor(who["number"]).name, attachments=files), now=_now())
        assert created is not None  # neither a rule_key nor a mail_id
        await acting.log(conn, request, who["number"], "create", "ticket", created.ticket_id,
                         summary=f"opened ticket #{created.ticket_id} in the portal{_with_files(files)}: "
                                 f"{data.subject.strip()[:200]}",
                         after={"subject": data.subject.strip(), "priority": data.priority, "type": data.type,
                                "source": "portal", "customer_id": me.customer_id,
                                "files": [f.filename for f in files]})
    raise web.HTTPFound(f"/portal/tickets/{created.ticket_id}?done=created")


@AREA.portal("/tickets/{id}", access=PORTAL_CUSTOMER)
async def ticket_page(request: web.Request) -> web.StreamResponse:
    return await _ticket_page(request, path_id(request))


@AREA.portal("/tickets/{id}/attachments/{aid}", access=PORTAL_CUSTOMER)
async def attachment_download(request: web.Request) -> web.StreamResponse:
    """A file of a message the customer sees on its ticket, as staff's download serves it."""
    ticket_id, attachment_id = path_id(request), path_id(request, "aid")
    async with request.app[keys.POOL].acquire() as conn:
        row = await support_store.attachment(conn, customer(request).customer_id, ticket_id, attachment_id)
    if row is None:
        raise web.HTTPNotFound(text="no such attachment")
    return web.Response(body=bytes(row["data"]), headers={
        "Content-Type": row["served_type"] or "application/octet-stream",
        "Content-Disposition": content_disposition(row["file_name"]),
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, no-store"})


# -- writes -----------------------------------------------------------------------------------

@AREA.portal("/tickets/{id}/messages", access=PORTAL_CUSTOMER, method="POST")
async def reply_form(request: web.Request) -> web.StreamResponse:
    """The customer's reply (with files): the ticket waits on an agent; a closed one reopens."""
    ticket_id = path_id(request)
    me = acting.refuse_impersonator(request)
    form = await request.post()  # multipart: read by the CSRF check, the files spooled (uploads.py)
    try:
        data, files = uploads.form_and_files(form, ReplyForm)
    except schemas.Invalid as e:
        return await _ticket_page(request, ticket_id, form=form, errors=e.errors, status=422)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        t = await _ticket_or_404(conn, me.customer_id, ticket_id)
        if t["merged_into"] is not None:
            raise web.HTTPConflict(text="this ticket was merged into another: write there")
        who = await _requester(conn, me.customer_id)
        message_id = await store.add_message(conn, ticket_id, store.NewMessage(
            Author.CUSTOMER, data.body, from_address=who["email"], from_name=who["name"], attachments=files),
            now=_now())
        assert message_id is not None  # no mail_id: it always lands
        reopened = " (reopened it)" if t["closed"] else ""
        await acting.log(conn, request, who["number"], "reply", "ticket_message", message_id,
                         summary=f"replied in the portal to ticket #{ticket_id}{_with_files(files)}{reopened}",
                         after={"ticket_id": ticket_id, "author": Author.CUSTOMER.value,
                                "files": [f.filename for f in files]})
    raise web.HTTPFound(f"/portal/tickets/{ticket_id}?done=reply#messages-end")


@AREA.portal("/tickets/{id}/close", access=PORTAL_CUSTOMER, method="POST")
async def close_form(request: web.Request) -> web.StreamResponse:
    """The customer closes its ticket: resolved (a reply reopens it)."""
    ticket_id = path_id(request)
    me = acting.refuse_impersonator(request)
    now = _now()
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        t = await _ticket_or_404(conn, me.customer_id, ticket_id, lock=True)
        if not t["closed"]:
            who = await _requester(conn, me.customer_id)
            await store.set_fields(conn, ticket_id, {"status": Status.RESOLVED.value}, now=now)
            await store.add_message(conn, ticket_id, store.NewMessage(Author.SYSTEM, CLOSED_BY_CUSTOMER), now=now)
            await acting.log(conn, request, who["number"], "update", "ticket", ticket_id,
                             summary=f"closed ticket #{ticket_id} in the portal",
                             before={"status": t["status"]}, after={"status": Status.RESOLVED.value})
    raise web.HTTPFound(f"/portal/tickets/{ticket_id}?done=closed")

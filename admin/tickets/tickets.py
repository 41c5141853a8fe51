"""Tickets: the list and its filters (and CSV), a ticket's page (its fields, its messages in
order with their attachments, the reply and fields forms), a new ticket, the attachment
download, and the API.

Every write goes through admin/tickets/store.py in one transaction with its operations log
line: a staff reply is added (the automation moves the ticket to waiting on the customer) and
queued as e-mail, threaded with a Message-ID of the ticket's inbox's domain (else the partner's
mail_from's, else ``localhost``); an internal note is added and never mailed.

A reply, a note and a new ticket may carry files (uploads.py: the forms' ``files``, the API's
base64 ``attachments``), kept with the message in its transaction, as an incoming mail's are; a
reply's go with its e-mail (the notifications' delivery reads them by the message, its cause).

Attachments are offered for download only: the stored (sniffed, safe) served type, the safe file
name as RFC 6266 ``filename``/``filename*``, ``nosniff`` and ``Content-Security-Policy: sandbox``
(nothing in them runs in the admin's origin).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, pages, schemas
from admin.auth.store import Connection
from admin.listing import as_time, listing_of
from admin.schemas import Page
from admin.tickets import merge, queries, store, uploads
from admin.tickets.automation import Author
from admin.tickets.common import AREA, Row, log, message_out, out, scope
from admin.tickets.inbound import Attachment
from admin.tickets.schemas import (
    PRIORITIES,
    TYPES,
    FieldsForm,
    MessageIn,
    NewTicketForm,
    Ticket,
    TicketDetail,
    TicketIn,
    TicketMessage,
    TicketPatch,
    TicketQuery,
)
from admin.web import path_id

CSV_COLUMNS = ("id", "subject", "customer_number", "customer_name", "requester_email", "status", "priority", "type",
               "assignee", "group_name", "source", "created_at", "last_activity_at")
TYPES_BY_SORT = {"last_activity": as_time, "created": as_time}
FIELDS = ("status", "priority", "type", "group_id", "assignee_id")
T = TypeVar("T")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ticket_out(row: Row) -> Ticket:
    return out(row, Ticket)


async def _ticket_or_404(conn: Connection, request: web.Request, ticket_id: int, *, lock: bool = False) -> Row:
    row = await queries.ticket(conn, *scope(request), ticket_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such ticket")
    return row


def _refused(e: asyncpg.PostgresError) -> schemas.Invalid:
    return schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"})


# -- changes (forms and API) ------------------------------------------------------------------

async def _check_refs(conn: Connection, request: web.Request, values: Mapping[str, Any]) -> None:
    """The status, group and assignee ``values`` name exist and are the principal's to use."""
    partner, _ = scope(request)
    errors = {}
    if values.get("status") is not None and not await queries.status_ok(conn, values["status"]):
        errors["status"] = "no such status"
    if values.get("group_id") is not None and not await queries.group_ok(conn, partner, values["group_id"]):
        errors["group_id"] = "no such group"
    if values.get("assignee_id") is not None and not await queries.assignee_ok(conn, partner, values["assignee_id"]):
        errors["assignee_id"] = "no such administrator"
    if errors:
        raise schemas.Invalid(errors)


async def _change(request: web.Request, ticket_id: int, given: Mapping[str, Any]) -> Row:
    """Change a ticket's fields (store.set_fields); returns the ticket as it is now."""
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            before = await _ticket_or_404(conn, request, ticket_id, lock=True)
            await _check_refs(conn, request, given)
            diff = {k: v for k, v in given.items() if before[k] != v}
            if not diff:
                return before
            await store.set_fields(conn, ticket_id, diff, now=_now())
            after = await queries.ticket(conn, None, None, ticket_id)
            assert after is not None
            said = ", ".join(f"{k} {after[k] if after[k] is not None else 'none'}" for k in diff)
            await log(conn, request, "update", after, f"changed ticket #{ticket_id}: {said}",
                      before=schemas.row_json(before, diff), after=schemas.row_json(after, diff))
            return after
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise _refused(e) from None


def _with_files(files: tuple[Attachment, ...]) -> str:
    return "" if not files else f" with {len(files)} file{'s' if len(files) > 1 else ''}"


async def _add(request: web.Request, ticket_id: int, body: str, kind: str,
               files: tuple[Attachment, ...] = ()) -> tuple[int, int | None]:
    """A staff reply (mailed to the requester, with its files) or an internal note (its files
    kept, never mailed): (the message's id, the e-mail's)."""
    who = keys.principal(request)
    author = Author.STAFF if kind == "reply" else Author.NOTE
    now = _now()
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        ticket = await _ticket_or_404(conn, request, ticket_id)
        if ticket["merged_into"] is not None:
            raise web.HTTPConflict(text=f"ticket #{ticket_id} was merged into #{ticket['merged_into']}: write there")
        message_id = await store.add_message(conn, ticket_id, store.NewMessage(
            author, body, administrator_id=who.admin_id, attachments=files), now=now)
        assert message_id is not None  # no mail_id: it always lands
        outgoing = None
        if author is Author.STAFF:  # from the inbox's domain, else the partner's mail sender's
            outgoing = await store.queue_reply(conn, ticket_id, message_id, now=now)
        what = "replied to" if author is Author.STAFF else "added an internal note to"
        mailed = "" if author is Author.NOTE else (" (mailed)" if outgoing is not None else " (no address to mail)")
        await log(conn, request, "reply" if author is Author.STAFF else "note", ticket,
                  f"{what} ticket #{ticket_id}{_with_files(files)}{mailed}", object_type="ticket_message",
                  object_id=message_id, after={"ticket_id": ticket_id, "author": author.value, "outgoing_id": outgoing,
                                               "files": [f.filename for f in files]})
    return message_id, outgoing


async def _create(request: web.Request, data: TicketIn | NewTicketForm, source: str,
                  files: tuple[Attachment, ...] = ()) -> int:
    who = keys.principal(request)
    partner, creator = scope(request)
    assignee_id = data.assignee_id if isinstance(data, TicketIn) else None
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            customer = await queries.customer_in_scope(conn, partner, creator, data.customer_id)
            if customer is None:
                raise schemas.Invalid({"customer_id": "no such customer"})
            await _check_refs(conn, request, {"group_id": data.group_id, "assignee_id": assignee_id})
            created = await store.create_ticket(conn, store.NewTicket(
                data.subject.strip(), data.body, source, partner_id=customer["partner_id"], customer_id=customer["id"],
                author=Author.STAFF, administrator_id=who.admin_id, priority=data.priority, type=data.type,
                group_id=data.group_id, assignee_id=assignee_id, created_by=who.name, attachments=files), now=_now())
            assert created is not None  # neither a rule_key nor a mail_id
            ticket = await queries.ticket(conn, None, None, created.ticket_id)
            assert ticket is not None
            await log(conn, request, "create", ticket,
                      f"opened ticket #{created.ticket_id} for customer {customer['number']}{_with_files(files)}: "
                      f"{ticket['subject']}",
                      after=schemas.row_json(ticket, ("subject", "status", "priority", "type", "group_id",
                                                      "assignee_id", "customer_id", "source")))
            return created.ticket_id
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise _refused(e) from None


# -- pages ------------------------------------------------------------------------------------

def _choices(row: Row) -> dict[str, Any]:
    return {"statuses": json.loads(row["statuses"]), "groups": json.loads(row["groups"]),
            "assignees": json.loads(row["assignees"]), "priorities": PRIORITIES, "types": TYPES}


@AREA.page("/tickets", permission="support.view")
async def tickets_list(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, TicketQuery)
    ls = listing_of(request, queries.TICKET_SORTS, "last_activity", direction="desc", types=TYPES_BY_SORT)
    pool = request.app[keys.POOL]
    partner, creator = scope(request)

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.list_tickets(
                conn, partner, creator, status=f.status, priority=f.priority, assignee_id=f.assignee_id,
                group_id=f.group_id, customer_id=f.customer_id, q=f.q, sort=ls.sort, direction=ls.direction,
                after=after, limit=limit)

    def key(r: Any) -> tuple[Any, int]:
        return (r["sort_value"], r["id"])

    def cells(r: Any) -> list[Any]:
        return [r["assignee_name"] or r["assignee_login"] if c == "assignee" else r[c] for c in CSV_COLUMNS]

    if ls.wants_csv:
        return await listing.export_csv(request, "tickets.csv", CSV_COLUMNS, fetch, key, cells)
    rows = ls.take(await fetch(ls.after, ls.limit + 1), key)
    async with pool.acquire() as conn:
        choices = _choices(await queries.choices(conn, partner))
    return pages.render("tickets/tickets_list.html", request, {"rows": rows, "ls": ls, "f": f, **choices})


async def _new_page(request: web.Request, *, form: Mapping[str, Any] | None = None,
                    errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        choices = _choices(await queries.choices(conn, scope(request)[0]))
    form = form if form is not None else {"customer_id": request.query.get("customer_id", "")}
    return pages.render("tickets/ticket_new.html", request, {"form": form, "errors": errors or {}, **choices},
                        status=status)


@AREA.page("/tickets/new", permission="support.add")
async def new_page(request: web.Request) -> web.StreamResponse:
    return await _new_page(request)


@AREA.page("/tickets/new", permission="support.add", method="POST")
async def new_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()  # multipart: read by the CSRF check, the files spooled (uploads.py)
    try:
        data, files = uploads.form_and_files(form, NewTicketForm)
        ticket_id = await _create(request, data, "admin", files)
    except schemas.Invalid as e:
        return await _new_page(request, form=form, errors=e.errors, status=422)
    raise web.HTTPFound(f"/admin/tickets/{ticket_id}?done=created")


async def _detail(request: web.Request, ticket_id: int, *, errors: Mapping[str, str] | None = None,
                  status: int = 200, form: Mapping[str, Any] | None = None) -> web.Response:
    """The ticket's page, with its merged state and watchers (merge.py)."""
    return await merge.render_ticket(request, ticket_id, errors=errors, status=status, form=form)


@AREA.page("/tickets/{id}", permission="support.view")
async def ticket_page(request: web.Request) -> web.StreamResponse:
    return await _detail(request, path_id(request))


@AREA.page("/tickets/{id}", permission="support.edit", method="POST")
async def fields_form(request: web.Request) -> web.StreamResponse:
    ticket_id = path_id(request)
    form = await request.post()
    try:
        data = schemas.from_strings(form, FieldsForm)
        await _change(request, ticket_id, {k: getattr(data, k) for k in FIELDS})
    except schemas.Invalid as e:
        return await _detail(request, ticket_id, errors=e.errors, status=422, form=form)
    raise web.HTTPFound(f"/admin/tickets/{ticket_id}?done=fields")


@AREA.page("/tickets/{id}/messages", permission="support.edit", method="POST")
async def message_form(request: web.Request) -> web.StreamResponse:
    """A reply to the customer (``kind=reply``, mailed with its files) or an internal note
    (``kind=note``)."""
    ticket_id = path_id(request)
    form = await request.post()  # multipart: read by the CSRF check, the files spooled (uploads.py)
    try:
        data, files = uploads.form_and_files(form, MessageIn)
    except schemas.Invalid as e:
        return await _detail(request, ticket_id, errors=e.errors, status=422, form=form)
    await _add(request, ticket_id, data.body, data.kind, files)
    raise web.HTTPFound(f"/admin/tickets/{ticket_id}?done={data.kind}#messages-end")


def content_disposition(name: str) -> str:
    """``attachment`` with the name as RFC 6266: an ASCII ``filename`` (quotes, backslashes and
    anything else outside printable ASCII as ``_``) and the exact name as RFC 5987 ``filename*``."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name) or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@AREA.page("/tickets/{id}/attachments/{aid}", permission="support.view")
async def attachment_download(request: web.Request) -> web.StreamResponse:
    ticket_id, attachment_id = path_id(request), path_id(request, "aid")
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.attachment(conn, *scope(request), ticket_id, attachment_id)
    if row is None:
        raise web.HTTPNotFound(text="no such attachment")
    return web.Response(body=bytes(row["data"]), headers={
        "Content-Type": row["served_type"] or "application/octet-stream",
        "Content-Disposition": content_disposition(row["file_name"]),
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, no-store"})


# -- API --------------------------------------------------------------------------------------

@AREA.api("GET", "/tickets", permission="support.view", summary="List tickets", query=TicketQuery,
          response=Page[Ticket])
async def api_tickets(request: web.Request) -> web.StreamResponse:
    """Tickets the key sees (a partner's: its own), the latest activity first; the filters combine."""
    f = schemas.query(request, TicketQuery)
    ls = listing_of(request, queries.TICKET_SORTS, "last_activity", direction="desc", types=TYPES_BY_SORT)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_tickets(
            conn, *scope(request), status=f.status, priority=f.priority, assignee_id=f.assignee_id,
            group_id=f.group_id, customer_id=f.customer_id, q=f.q, sort=ls.sort, direction=ls.direction,
            after=ls.after, limit=ls.limit + 1)
    page = ls.take(rows, lambda r: (r["sort_value"], r["id"]))
    return schemas.json(Page[Ticket](items=[_ticket_out(r) for r in page], next=ls.next))


async def _detail_out(conn: Connection, row: Row) -> TicketDetail:
    messages = await queries.messages(conn, row["id"])
    return out(row, TicketDetail, messages=[message_out(m) for m in messages])


@AREA.api("GET", "/tickets/{id}", permission="support.view", summary="Get a ticket and its messages",
          response=merge.TicketView)
async def api_ticket(request: web.Request) -> web.StreamResponse:
    """The ticket with every message in order, internal notes included (attachments by id: the
    admin page's /admin/tickets/{id}/attachments/{aid} serves them), the ticket it was merged
    into and its watchers."""
    async with request.app[keys.POOL].acquire() as conn:
        view = await merge.view_out(conn, request, path_id(request))
    return schemas.json(view)


@AREA.api("POST", "/tickets", permission="support.add", summary="Open a ticket for a customer", body=TicketIn,
          response=TicketDetail, status=201)
async def api_create(request: web.Request) -> web.StreamResponse:
    """The body is the first message, written by staff; given a group and no assignee, the
    group's assign mode picks one."""
    data = await schemas.body(request, TicketIn)
    ticket_id = await _create(request, data, "api")
    async with request.app[keys.POOL].acquire() as conn:
        row = await _ticket_or_404(conn, request, ticket_id)
        detail = await _detail_out(conn, row)
    return schemas.json(detail, status=201)


@AREA.api("POST", "/tickets/{id}/messages", permission="support.edit", summary="Reply to a ticket or add a note",
          body=uploads.MessageWithFiles, response=TicketMessage, status=201)
async def api_message(request: web.Request) -> web.StreamResponse:
    """``reply``: mailed to the requester (with its ``attachments``), the ticket then waits on the
    customer; ``note``: internal, never mailed. Files are base64, each at most 20 MiB, at most 30,
    40 MiB together (as an incoming mail's); 422 when one is too big or not base64."""
    ticket_id = path_id(request)
    data = await uploads.api_body(request)
    files = uploads.from_api(data.attachments)
    message_id, _ = await _add(request, ticket_id, data.body, data.kind, files)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.message(conn, message_id)
    assert row is not None
    return schemas.json(message_out(row), status=201)


@AREA.api("PATCH", "/tickets/{id}", permission="support.edit",
          summary="Change a ticket's status, priority, type, group or assignee", body=TicketPatch, response=Ticket)
async def api_change(request: web.Request) -> web.StreamResponse:
    """Only the fields given change (``group_id``/``assignee_id`` null: none). A move to a closed
    status records when it was resolved; one out of it counts a reopen."""
    ticket_id = path_id(request)
    patch = await schemas.body(request, TicketPatch)
    given = {k: getattr(patch, k) for k in FIELDS if getattr(patch, k) is not msgspec.UNSET}
    row = await _change(request, ticket_id, given)
    return schemas.json(_ticket_out(row))

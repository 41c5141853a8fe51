"""Merging and splitting tickets, and their watchers: the ticket page's forms and the API.

A merge moves every message of a ticket (the source) to another (the target), adds the source's
CC addresses and watchers to the target's, keeps the earlier first response on the target and
closes the source (resolved, ``merged_into`` the target), with a system line on both. Both must
be the principal's to see (404 otherwise), of the same partner, two, and neither merged already.
The two rows are locked in id order, so two merges of the same pair wait instead of deadlocking.

A split takes a customer's message of a ticket (not its first) and moves it and every later
message to a new ticket of the same customer (requester, partner, priority, type, group), with a
system line on both.

Watchers: the administrator on the page watches a ticket or stops; the page and the API's
ticket show who watches. Every change has its operations log line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from aiohttp import web

from admin import keys, pages, schemas
from admin.auth.store import Connection
from admin.schemas import Id
from admin.tickets import merge_store, queries, store
from admin.tickets.automation import Author
from admin.tickets.common import AREA, Row, attachments_of, log, message_out, out, scope
from admin.tickets.schemas import PRIORITIES, TYPES, Subject, TicketDetail
from admin.web import path_id


class Watcher(msgspec.Struct):
    id: int
    login: str
    name: str


class TicketView(TicketDetail):
    """A ticket with its messages, the ticket it was merged into (null: none) and its watchers."""

    merged_into: int | None = None
    watchers: list[Watcher] = msgspec.field(default_factory=list)


class MergeIn(msgspec.Struct, kw_only=True):
    into: Annotated[Id, msgspec.Meta(description="the ticket this one is merged into")]


class SplitIn(msgspec.Struct, kw_only=True):
    message_id: Annotated[Id, msgspec.Meta(description="a customer's message of the ticket (not its first): it and "
                                                       "every later message move to the new ticket")]
    subject: Annotated[Subject | None, msgspec.Meta(description="default: Split from #<id>: <subject>")] = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _visible(conn: Connection, request: web.Request, ticket_id: int) -> Row:
    row = await queries.ticket(conn, *scope(request), ticket_id)
    if row is None:
        raise web.HTTPNotFound(text="no such ticket")
    return row


def _choices(row: Row) -> dict[str, Any]:
    return {"statuses": json.loads(row["statuses"]), "groups": json.loads(row["groups"]),
            "assignees": json.loads(row["assignees"]), "priorities": PRIORITIES, "types": TYPES}


async def render_ticket(request: web.Request, ticket_id: int, *, errors: Mapping[str, str] | None = None,
                        status: int = 200, form: Mapping[str, Any] | None = None) -> web.Response:
    """The ticket's page (tickets/ticket.html): its fields, merged state, watchers, messages and forms."""
    async with request.app[keys.POOL].acquire() as conn:
        t = await merge_store.ticket_view(conn, *scope(request), ticket_id)
        if t is None:
            raise web.HTTPNotFound(text="no such ticket")
        messages = await queries.messages(conn, ticket_id)
        choices = _choices(await queries.choices(conn, scope(request)[0]))
    watchers = json.loads(t["watchers"])
    me = keys.principal(request).admin_id
    return pages.render("tickets/ticket.html", request, {
        "t": t, "messages": messages, "attachments_of": attachments_of, "errors": errors or {}, "form": form or {},
        "notice": request.query.get("done", ""), "watchers": watchers,
        "watching": any(w["id"] == me for w in watchers), **choices}, status=status)


async def view_out(conn: Connection, request: web.Request, ticket_id: int) -> TicketView:
    """The API's ticket: its fields, messages, merged_into and watchers (404: not the principal's)."""
    row = await merge_store.ticket_view(conn, *scope(request), ticket_id)
    if row is None:
        raise web.HTTPNotFound(text="no such ticket")
    messages = await queries.messages(conn, ticket_id)
    return out(row, TicketView, messages=[message_out(m) for m in messages],
               watchers=[msgspec.convert(w, Watcher) for w in json.loads(row["watchers"])])


# -- the operations ---------------------------------------------------------------------------

async def merge(request: web.Request, source: int, target: int) -> None:
    """Merge ticket ``source`` into ``target`` (one transaction; schemas.Invalid: refused)."""
    if source == target:
        raise schemas.Invalid({"into": "a ticket cannot be merged into itself"})
    now = _now()
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        locked = await merge_store.lock(conn, source, target)
        s = await _visible(conn, request, source)
        if target not in locked:
            raise web.HTTPNotFound(text="no such ticket")
        t = await _visible(conn, request, target)
        if locked[source]["merged_into"] is not None:
            raise schemas.Invalid({"into": f"ticket #{source} is merged into #{locked[source]['merged_into']} already"})
        if locked[target]["merged_into"] is not None:
            raise schemas.Invalid({"into": f"ticket #{target} is merged into #{locked[target]['merged_into']}"})
        if s["partner_id"] != t["partner_id"]:
            raise schemas.Invalid({"into": "the tickets are of different partners"})
        moved = await merge_store.move_into(conn, source, target)
        await store.set_fields(conn, source, {"status": "resolved"}, now=now)
        await store.add_message(conn, source, store.NewMessage(Author.SYSTEM, f"Merged into #{target}"), now=now)
        await store.add_message(conn, target, store.NewMessage(Author.SYSTEM, f"#{source} merged into this ticket"),
                                now=now)
        await log(conn, request, "merge", s, f"merged ticket #{source} into #{target} ({moved} messages moved)",
                  before={"status": s["status"], "merged_into": None},
                  after={"status": "resolved", "merged_into": target, "messages": moved})
        if t["customer_id"] != s["customer_id"]:  # the target's customer's history shows it too
            await log(conn, request, "merge", t, f"ticket #{source} merged into #{target} ({moved} messages moved)",
                      after={"merged_from": source, "messages": moved})


async def split(request: web.Request, source: int, message_id: int, subject: str | None, kind: str) -> int:
    """Split ``message_id`` and every later message of ``source`` off to a new ticket; its id."""
    who = keys.principal(request)
    now = _now()
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        locked = await merge_store.lock(conn, source)
        s = await _visible(conn, request, source)
        if locked[source]["merged_into"] is not None:
            raise schemas.Invalid({"message_id": f"ticket #{source} is merged into #{locked[source]['merged_into']}"})
        m = await merge_store.message_of(conn, source, message_id)
        if m is None:
            raise schemas.Invalid({"message_id": f"no such message of ticket #{source}"})
        if m["author"] != Author.CUSTOMER.value:
            raise schemas.Invalid({"message_id": "only a customer's message can be split off"})
        if not m["has_earlier"]:
            raise schemas.Invalid({"message_id": "the ticket's first message cannot be split off"})
        title = (subject or "").strip() or f"Split from #{source}: {s['subject']}"
        new_id = await merge_store.split_off(conn, source, message_id, title, source_kind=kind, created_by=who.name,
                                             now=now)
        await store.add_message(conn, source, store.NewMessage(
            Author.SYSTEM, f"Split into #{new_id} (message {message_id} and later)"), now=now)
        await store.add_message(conn, new_id, store.NewMessage(Author.SYSTEM, f"Split from #{source}"), now=now)
        new = await queries.ticket(conn, None, None, new_id)
        assert new is not None
        await log(conn, request, "split", new, f"split ticket #{new_id} off #{source} from message {message_id}",
                  after={"split_from": source, "message_id": message_id, "subject": title})
    return new_id


async def _watch(request: web.Request, ticket_id: int, on: bool) -> None:
    who = keys.principal(request)
    if who.admin_id is None:
        raise web.HTTPForbidden(text="only an administrator watches tickets")
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        ticket = await _visible(conn, request, ticket_id)
        changed = await (merge_store.watch if on else merge_store.unwatch)(conn, ticket_id, who.admin_id)
        if changed:
            await log(conn, request, "watch" if on else "unwatch", ticket,
                      f"{'started' if on else 'stopped'} watching ticket #{ticket_id}",
                      after={"administrator_id": who.admin_id, "watching": on})


# -- pages ------------------------------------------------------------------------------------

@AREA.page("/tickets/{id}/merge", permission="support.edit", method="POST")
async def merge_form(request: web.Request) -> web.StreamResponse:
    ticket_id = path_id(request)
    form = await request.post()
    try:
        data = schemas.from_strings(form, MergeIn)
        await merge(request, ticket_id, data.into)
    except schemas.Invalid as e:
        return await render_ticket(request, ticket_id, errors=e.errors, status=422, form=form)
    raise web.HTTPFound(f"/admin/tickets/{data.into}?done=merged")


@AREA.page("/tickets/{id}/split", permission="support.edit", method="POST")
async def split_form(request: web.Request) -> web.StreamResponse:
    ticket_id = path_id(request)
    form = await request.post()
    try:
        data = schemas.from_strings(form, SplitIn)
        new_id = await split(request, ticket_id, data.message_id, data.subject, "admin")
    except schemas.Invalid as e:
        return await render_ticket(request, ticket_id, errors=e.errors, status=422, form=form)
    raise web.HTTPFound(f"/admin/tickets/{new_id}?done=split")


@AREA.page("/tickets/{id}/watch", permission="support.view", method="POST")
async def watch_form(request: web.Request) -> web.StreamResponse:
    ticket_id = path_id(request)
    await _watch(request, ticket_id, True)
    raise web.HTTPFound(f"/admin/tickets/{ticket_id}?done=watch")


@AREA.page("/tickets/{id}/unwatch", permission="support.view", method="POST")
async def unwatch_form(request: web.Request) -> web.StreamResponse:
    ticket_id = path_id(request)
    await _watch(request, ticket_id, False)
    raise web.HTTPFound(f"/admin/tickets/{ticket_id}?done=unwatch")


# -- API --------------------------------------------------------------------------------------

@AREA.api("POST", "/tickets/{id}/merge", permission="support.edit", summary="Merge a ticket into another",
          body=MergeIn, response=TicketView)
async def api_merge(request: web.Request) -> web.StreamResponse:
    """Every message of the ticket moves to ``into``, with its CC addresses and watchers; the
    ticket is resolved and marked merged. Returns the ticket merged into."""
    ticket_id = path_id(request)
    data = await schemas.body(request, MergeIn)
    await merge(request, ticket_id, data.into)
    async with request.app[keys.POOL].acquire() as conn:
        view = await view_out(conn, request, data.into)
    return schemas.json(view)


@AREA.api("POST", "/tickets/{id}/split", permission="support.edit", summary="Split messages off to a new ticket",
          body=SplitIn, response=TicketView, status=201)
async def api_split(request: web.Request) -> web.StreamResponse:
    """The customer's message ``message_id`` and every later one move to a new ticket of the same
    customer. Returns the new ticket."""
    ticket_id = path_id(request)
    data = await schemas.body(request, SplitIn)
    new_id = await split(request, ticket_id, data.message_id, data.subject, "api")
    async with request.app[keys.POOL].acquire() as conn:
        view = await view_out(conn, request, new_id)
    return schemas.json(view, status=201)

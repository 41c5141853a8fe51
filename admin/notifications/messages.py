"""Notifications -> Messages: the log of every email, SMS and portal message (Splynx's "email and
SMS logs"), filtered by channel, status, kind, partner, customer, date and a search on recipient
and subject, newest first, with the counts per status on top and the CSV export; a message's page
(what was sent, to whom, its attachments, attempts, the provider's answer) with "Retry" for a
failed one and "Cancel" for a scheduled one; and the same in the API.

A message's body is what the operator's template made of a customer's data: an email's HTML is
shown in a sandboxed ``<iframe srcdoc>`` (no scripts, no forms, an opaque origin) that loads
nothing (FRAME_POLICY: no remote pictures, no tracking), escaped into the attribute, never
written into the page. Retry and cancel are the engine's state
changes (store.py), each with its line of the operations log.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, oplog_store, pages, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.customers import queries as customer_queries
from admin.notifications import messages_store as db
from admin.notifications import scheduler
from admin.notifications import store as engine
from admin.notifications.area import AREA
from admin.notifications.model import CHANNELS, KIND_TITLES, STATUSES, Channel, Status
from admin.schemas import Id, Limit, Page
from admin.web import path_id

Kind = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="a message's kind (`invoice`, "
                                   "`reminder_1`, `announcement`, ...)")]
Search = Annotated[str, msgspec.Meta(max_length=100, pattern=r"^[^\x00]*$",
                                     description="a part of the recipient or the subject (case aside)")]
Cursor = Annotated[str, msgspec.Meta(max_length=200)]
CSV_HEADER = ("id", "created_at", "send_at", "sent_at", "status", "channel", "kind", "partner", "customer_number",
              "customer", "recipient", "bcc", "subject", "attempts", "last_error", "provider_id", "marketing",
              "attachments")


class MessageFilter(msgspec.Struct, kw_only=True):
    """Messages by channel, status, kind, partner, customer, the day they were made (``since`` and
    ``until`` included, UTC) and a search on the recipient and the subject."""

    channel: Channel | None = None
    status: Status | None = None
    kind: Kind | None = None
    partner_id: Id | None = None
    customer_id: Id | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    q: Search | None = None


class MessageQuery(MessageFilter, kw_only=True):
    sort: Literal["id", "send_at"] = "id"
    dir: Literal["asc", "desc"] = "desc"
    after: Cursor | None = None
    limit: Limit = 50


class Attachment(msgspec.Struct, kw_only=True):
    """A document whose PDF went with the message."""

    document_id: int
    kind: str | None  # None: the document is gone
    number: str | None


class MessageEntry(msgspec.Struct, kw_only=True):
    """A message: what it is about (``kind``, ``cause``), its channel and recipient (set when sent;
    '' for the portal), and where it is (``status``: scheduled, sending, sent, failed, cancelled)."""

    id: int
    partner_id: int
    partner: str
    customer_id: int | None
    customer_number: str | None
    customer: str | None
    kind: str
    channel: Channel
    cause: str
    document_id: int | None
    marketing: bool
    recipient: str
    bcc: str
    subject: str
    status: Status
    send_at: dt.datetime
    attempts: int
    last_error: str
    provider_id: str
    read_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    sent_at: dt.datetime | None
    attachment_count: int


class MessageDetail(MessageEntry, kw_only=True):
    """A message with what it carried: the body as sent (an email's HTML, an SMS's text), its
    attachments and the provider's answer."""

    body: str
    provider_answer: str
    attachments: list[Attachment]


def _entry(row: Mapping[str, Any] | asyncpg.Record) -> MessageEntry:
    return msgspec.convert({k: row[k] for k in MessageEntry.__struct_fields__}, MessageEntry)


def _scope(who: Principal) -> tuple[int | None, int | None]:
    return who.partner_id, who.creator_id


def _key(row: Any) -> tuple[Any, int]:
    return row["sort_value"], row["id"]


def _cursor(values: list[Any] | None, sort: str) -> list[Any] | None:
    """A decoded cursor with its sort value typed again (JSON has no times); another is 400."""
    if values is None:
        return None
    try:
        first = values[0]
        if sort == "send_at":
            when = dt.datetime.fromisoformat(str(first))
            if when.tzinfo is None:
                raise ValueError(first)
            value: Any = when
        elif isinstance(first, int) and not isinstance(first, bool):
            value = first
        else:
            raise ValueError(first)
    except (ValueError, TypeError):
        raise web.HTTPBadRequest(text="bad page cursor (after=...)") from None
    return [value, values[1]]


async def message_or_404(conn: Connection, request: web.Request, message_id: int) -> asyncpg.Record:
    row = await db.message(conn, *_scope(keys.principal(request)), message_id)
    if row is None:
        raise web.HTTPNotFound()
    return row


async def detail(conn: Connection, row: asyncpg.Record) -> MessageDetail:
    ids = list(row["attachments"])
    docs = await db.documents(conn, ids)
    attachments = [Attachment(document_id=i, kind=docs[i]["kind"] if i in docs else None,
                              number=docs[i]["number"] if i in docs else None) for i in ids]
    return MessageDetail(**msgspec.structs.asdict(_entry(row)), body=row["body"],
                         provider_answer=row["provider_answer"], attachments=attachments)


FRAMING_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
               "frame-ancestors 'none'; form-action 'self'")
"""The policy of a page that frames an email: the admin's own, but for inline styles, which the
frame (an ``about:srcdoc`` document, holding its parent's policy) needs to look as it was sent."""
FRAME_POLICY = ('<meta http-equiv="Content-Security-Policy" '
                'content="default-src \'none\'; style-src \'unsafe-inline\'; img-src data:">')
"""What the framed email holds besides: nothing is loaded (no remote pictures: no tracking)."""


def framed(html: str) -> str:
    """An email's HTML as its sandboxed frame gets it: with FRAME_POLICY in its head."""
    head = re.search(r"<head\b[^>]*>", html, re.IGNORECASE)
    return html[:head.end()] + FRAME_POLICY + html[head.end():] if head else FRAME_POLICY + html


def framing(response: web.Response) -> web.Response:
    """``response`` (a page with a framed email) under FRAMING_CSP."""
    response.headers["Content-Security-Policy"] = FRAMING_CSP
    return response


_HTML = re.compile(r"<(?:!doctype|html|body|p|div|table|br|a|h[1-6]|ul|ol|span|strong|em)\b", re.IGNORECASE)


def looks_html(body: str) -> bool:
    """Whether a body is HTML (an email's) rather than text: it has the tags HTML mail has."""
    return bool(_HTML.search(body))


# -- retry and cancel ---------------------------------------------------------------------------------

class Refused(Exception):
    """The message's state does not allow it (retry a message that did not fail, ...): 409."""


async def retry(conn: Connection, request: web.Request, row: asyncpg.Record) -> None:
    """Send a failed message again (scheduled now; its attempts and last error kept until the next try)."""
    if row["status"] != "failed":
        raise Refused(f"Only a failed message is sent again; this one is {row['status']}.")
    who = keys.principal(request)
    async with conn.transaction():
        if not await engine.retry(conn, row["id"], dt.datetime.now(dt.UTC), who.partner_id):
            raise Refused("The message is no longer failed: it was retried already.")
        await oplog_store.record(conn, who, keys.client_address(request), "retry", "message", row["id"],
                                 customer_id=row["customer_id"], partner_id=row["partner_id"],
                                 summary=f"{row['channel']} message {row['id']} ({row['kind']}) sent again",
                                 before={"status": "failed", "last_error": row["last_error"]},
                                 after={"status": "scheduled"})
        await scheduler.wake(conn)  # the worker delivers it now, not at its next minute


async def cancel(conn: Connection, request: web.Request, row: asyncpg.Record) -> None:
    """Keep a scheduled message from going out (it stays in the log, cancelled)."""
    if row["status"] != "scheduled":
        raise Refused(f"Only a scheduled message is cancelled; this one is {row['status']}.")
    who = keys.principal(request)
    async with conn.transaction():
        if not await engine.cancel(conn, row["id"], who.name, who.partner_id):
            raise Refused("The message is no longer scheduled: it is being sent or was sent.")
        await oplog_store.record(conn, who, keys.client_address(request), "cancel", "message", row["id"],
                                 customer_id=row["customer_id"], partner_id=row["partner_id"],
                                 summary=f"{row['channel']} message {row['id']} ({row['kind']}) cancelled",
                                 before={"status": "scheduled"}, after={"status": "cancelled"})


# -- the list -----------------------------------------------------------------------------------------

def _options(partners: Sequence[asyncpg.Record]) -> dict[str, Any]:
    return {"channels": CHANNELS, "statuses": STATUSES, "kinds": sorted(KIND_TITLES.items(), key=lambda kv: kv[1]),
            "partners": [(p["id"], p["name"]) for p in partners]}


@AREA.page("/notifications/messages", permission="notifications.view")
async def messages_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    ls = listing.Listing.of(request, db.SORTS, "id", default_direction="desc",
                            limit=request.app[keys.SETTINGS].page_size)
    ls.after = _cursor(ls.after, ls.sort)
    errors: dict[str, str] = {}
    try:
        f = schemas.from_strings(request.query, MessageFilter)
    except schemas.Invalid as e:
        errors, f = e.errors, MessageFilter()
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await db.messages(conn, *_scope(who), f, sort=ls.sort, direction=ls.direction,
                                     after=_cursor(after, ls.sort), limit=limit)

    if ls.wants_csv and not errors:
        return await listing.export_csv(
            request, "messages.csv", CSV_HEADER, lambda after, limit: fetch(after, limit - 1), _key,
            lambda r: [r["id"], r["created_at"], r["send_at"], r["sent_at"], r["status"], r["channel"], r["kind"],
                       r["partner"], r["customer_number"], r["customer"], r["recipient"], r["bcc"], r["subject"],
                       r["attempts"], r["last_error"], r["provider_id"], r["marketing"], r["attachment_count"]])
    rows = ls.take(await fetch(ls.after, ls.limit), _key) if not errors else []
    async with pool.acquire() as conn:
        counts = await db.status_counts(conn, *_scope(who), f) if not errors else {}
        partners = await customer_queries.partners(conn, who.partner_id) if who.partner_id is None else []
    values = dict(request.query)
    return pages.render("notifications/messages.html", request, {
        "ls": ls, "rows": rows, "f": f, "errors": errors, "counts": counts, "total": sum(counts.values()),
        "values": values, "titles": KIND_TITLES, "status_url": lambda s: _status_url(ls, s),
        **_options(partners)}, status=422 if errors else 200)


def _status_url(ls: listing.Listing, status: str | None) -> str:
    """The list with the same filters, in ``status`` (None: any)."""
    params = {k: v for k, v in ls.params.items() if k not in ("status", "format")}
    if status:
        params["status"] = status
    return listing.Listing(ls.path, params, ls.sorts, ls.sort, ls.direction, None, ls.limit).first_url()


# -- a message ----------------------------------------------------------------------------------------

async def _message_page(conn: Connection, request: web.Request, row: asyncpg.Record, *, error: str = "",
                        status: int = 200) -> web.Response:
    m = await detail(conn, row)
    html = m.channel == "email" and looks_html(m.body)
    return framing(pages.render("notifications/messages_detail.html", request, {
        "m": m, "html": html, "framed": framed(m.body) if html else "", "titles": KIND_TITLES, "error": error,
        "done": request.query.get("done", "")}, status=status))


@AREA.page("/notifications/messages/{id}", permission="notifications.view")
async def message_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return await _message_page(conn, request, await message_or_404(conn, request, path_id(request)))


@AREA.page("/notifications/messages/{id}/retry", permission="notifications.edit", method="POST")
async def retry_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await message_or_404(conn, request, path_id(request))
        try:
            await retry(conn, request, row)
        except Refused as e:
            return await _message_page(conn, request, row, error=str(e), status=409)
    raise web.HTTPFound(f"/admin/notifications/messages/{row['id']}?done=retried")


@AREA.page("/notifications/messages/{id}/cancel", permission="notifications.edit", method="POST")
async def cancel_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await message_or_404(conn, request, path_id(request))
        try:
            await cancel(conn, request, row)
        except Refused as e:
            return await _message_page(conn, request, row, error=str(e), status=409)
    raise web.HTTPFound(f"/admin/notifications/messages/{row['id']}?done=cancelled")


# -- the API ------------------------------------------------------------------------------------------

@AREA.api("GET", "/messages", permission="notifications.view", summary="List messages (email, SMS, portal)",
          query=MessageQuery, response=Page[MessageEntry])
async def api_messages(request: web.Request) -> web.StreamResponse:
    """Every message sent, scheduled, failed or cancelled, newest first by default; `next` is the
    cursor for `after`."""
    who = keys.principal(request)
    f = schemas.query(request, MessageQuery)
    after = _cursor(listing.decode_cursor(f.after), f.sort)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await db.messages(conn, *_scope(who), f, sort=f.sort, direction=f.dir, after=after, limit=f.limit)
    nxt = listing.encode_cursor(_key(rows[f.limit - 1])) if len(rows) > f.limit else None
    return schemas.json(Page[MessageEntry]([_entry(r) for r in rows[: f.limit]], nxt))


@AREA.api("GET", "/messages/{id}", permission="notifications.view", summary="Get a message",
          response=MessageDetail)
async def api_message(request: web.Request) -> web.StreamResponse:
    """A message with its body as sent, its attachments and the provider's answer."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(await detail(conn, await message_or_404(conn, request, path_id(request))))


async def _api_act(request: web.Request, act: Any) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await message_or_404(conn, request, path_id(request))
        try:
            await act(conn, request, row)
        except Refused as e:
            raise web.HTTPConflict(text=str(e)) from None
        return schemas.json(await detail(conn, await message_or_404(conn, request, row["id"])))


@AREA.api("POST", "/messages/{id}/retry", permission="notifications.edit", response=MessageDetail,
          summary="Send a failed message again")
async def api_retry(request: web.Request) -> web.StreamResponse:
    """A failed message is scheduled now (409 for one that did not fail); the worker sends it."""
    return await _api_act(request, retry)


@AREA.api("POST", "/messages/{id}/cancel", permission="notifications.edit", response=MessageDetail,
          summary="Cancel a scheduled message")
async def api_cancel(request: web.Request) -> web.StreamResponse:
    """A scheduled message is not sent (409 for one that is not scheduled); it stays in the log."""
    return await _api_act(request, cancel)

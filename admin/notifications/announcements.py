"""Announcements: "Send a message to customers" (notifications.add): to the customers a filter
selects (status, partner, category, as the customers list filters them; or, in the API, a list of
customers), by the channels chosen, with a subject and a text. A marketing announcement skips the
customers who opted out of marketing (customers.marketing_opt_out), and the form says how many
before it is sent; a legal one (a planned outage, new terms) goes to everyone selected.

The form shows what would go first (how many customers, how many opted out, how many have no
email or phone for those channels), then "Send" makes the messages through announce.py, one
announcement per partner (each partner's messages go out through its own mail server and
gateway), which the worker delivers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, pages, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.customers import queries as customer_queries
from admin.notifications import announce as engine
from admin.notifications import announcements_store as db
from admin.notifications.area import AREA
from admin.notifications.model import CHANNELS, Channel
from admin.schemas import Id

MAX_CUSTOMERS = 100_000
"""The most customers one announcement goes to (the API's list, the filter's selection)."""
Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=250, pattern=r"^[^\x00\r\n]*\S[^\x00\r\n]*$",
                                      description="one line")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=r"^[^\x00]*\S[^\x00]*$",
                                   description="the message: plain text (the announcement template lays it out)")]
CustomerStatus = Literal["new", "active", "blocked", "inactive"]


class AnnouncementIn(msgspec.Struct, kw_only=True):
    """To whom (the customers of ``status``, ``partner_id``, ``category``; or exactly ``customer_ids``,
    within those), how (``channels``) and what. ``marketing``: skip customers who opted out."""

    channels: Annotated[list[Channel], msgspec.Meta(min_length=1, max_length=3)]
    subject: Subject
    body: Text
    marketing: bool = False
    status: CustomerStatus | None = None
    partner_id: Id | None = None
    category: Literal["person", "company"] | None = None
    customer_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=MAX_CUSTOMERS)] | None = None


class AnnouncementForm(msgspec.Struct, kw_only=True):
    """The page's form: the filter, the channels (checkboxes) and the message."""

    status: CustomerStatus | None = None
    partner_id: Id | None = None
    category: Literal["person", "company"] | None = None
    channels: list[Channel] = []
    subject: Subject | None = None
    body: Text | None = None
    marketing: bool = False


class AnnouncementCounts(msgspec.Struct, kw_only=True):
    """Who an announcement reaches: the customers selected, those skipped as opted out (marketing
    only), those without an email or a phone (their messages by that channel fail, visibly)."""

    customers: int
    opted_out: int
    skipped: int
    no_email: int
    no_phone: int


class Announced(AnnouncementCounts, kw_only=True):
    messages: int  # the messages made (customers reached x channels)


def _counts(rows: Sequence[asyncpg.Record], marketing: bool) -> AnnouncementCounts:
    opted = sum(int(r["opted_out"]) for r in rows)
    return AnnouncementCounts(customers=sum(int(r["customers"]) for r in rows), opted_out=opted,
                              skipped=opted if marketing else 0, no_email=sum(int(r["no_email"]) for r in rows),
                              no_phone=sum(int(r["no_phone"]) for r in rows))


def _partner(who: Principal, asked: int | None) -> int | None:
    """A partner's administrator reaches its own partner's customers only (another partner: none)."""
    if who.partner_id is not None and asked is not None and asked != who.partner_id:
        raise schemas.Invalid({"partner_id": "no such partner"})
    return asked


async def _targets(conn: Connection, who: Principal, *, status: str | None, partner_id: int | None,
                   category: str | None, customer_ids: Sequence[int] | None, ids: bool) -> list[asyncpg.Record]:
    return await db.targets(conn, who.partner_id, who.creator_id, status=status,
                            partner_id=_partner(who, partner_id), category=category, customer_ids=customer_ids,
                            ids=ids)


async def send(conn: Connection, request: web.Request, rows: Sequence[asyncpg.Record], *,
               channels: Sequence[Channel], subject: str, body: str, marketing: bool) -> Announced:
    """The messages made for ``rows`` (targets with ids), one announcement per partner, and the
    operations log's line of each, in one transaction (announce.py wakes the delivery)."""
    who = keys.principal(request)
    counts = _counts(rows, marketing)
    if counts.customers > MAX_CUSTOMERS:
        raise schemas.Invalid({"": f"{counts.customers} customers: one announcement reaches {MAX_CUSTOMERS} at most; "
                                   "narrow the filter"})
    made = 0
    wanted = [c for c in CHANNELS if c in channels]
    async with conn.transaction():
        for r in rows:
            try:
                n = await engine.announce(conn, partner_id=r["partner_id"], customer_ids=list(r["customer_ids"]),
                                          channels=wanted, subject=subject, body=body, marketing=marketing,
                                          created_by=who.name)
            except engine.AnnouncementError as e:
                raise schemas.Invalid({"": str(e)}) from None
            made += n
            await oplog_store.record(
                conn, who, keys.client_address(request), "announce", "announcement", None,
                partner_id=r["partner_id"],
                summary=f"announcement {subject!r} to {r['customers']} customers of {r['partner']} by "
                        f"{', '.join(wanted)}: {n} messages"
                        + (f", {r['opted_out']} opted out skipped" if marketing and r["opted_out"] else ""),
                after={"subject": subject, "channels": wanted, "marketing": marketing, "messages": n})
    return Announced(**msgspec.structs.asdict(counts), messages=made)


# -- the page -------------------------------------------------------------------------------------------

async def _page(conn: Connection, request: web.Request, values: Mapping[str, Any], *,
                errors: Mapping[str, str] | None = None, counts: AnnouncementCounts | None = None,
                status: int = 200) -> web.Response:
    who = keys.principal(request)
    partners = await customer_queries.partners(conn, who.partner_id) if who.partner_id is None else []
    return pages.render("notifications/announce.html", request, {
        "values": values, "channels_checked": list(values.get("channels", [])), "errors": errors or {},
        "counts": counts, "channels": CHANNELS, "statuses": ("new", "active", "blocked", "inactive"),
        "partners": [(p["id"], p["name"]) for p in partners]}, status=status)


@AREA.page("/notifications/announcements/new", permission="notifications.add")
async def new_page(request: web.Request) -> web.StreamResponse:
    """The form, with the active customers and email chosen."""
    async with request.app[keys.POOL].acquire() as conn:
        return await _page(conn, request, {"status": "active", "channels": ["email"]})


def _form_values(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if k not in ("_csrf", "channels", "action")}
    values["channels"] = [str(c) for c in form.getall("channels", [])]
    return values


@AREA.page("/notifications/announcements/new", permission="notifications.add", method="POST")
async def send_form(request: web.Request) -> web.StreamResponse:
    """"Show who it reaches" counts the customers; "Send" (``action=send``) makes the messages."""
    form = await request.post()
    values = _form_values(form)
    who = keys.principal(request)
    sending = form.get("action") == "send"
    async with request.app[keys.POOL].acquire() as conn:
        try:
            f = schemas.from_strings(form, AnnouncementForm)
            rows = await _targets(conn, who, status=f.status, partner_id=f.partner_id, category=f.category,
                                  customer_ids=None, ids=sending)
        except schemas.Invalid as e:
            return await _page(conn, request, values, errors=e.errors, status=422)
        counts = _counts(rows, f.marketing)
        if not sending:
            return await _page(conn, request, values, counts=counts)
        errors = {}
        if not f.channels:
            errors["channels"] = "choose at least one channel"
        if f.subject is None:
            errors["subject"] = "is required"
        if f.body is None:
            errors["body"] = "is required"
        if not counts.customers:
            errors[""] = "no customer matches the filter: nothing to send"
        if errors:
            return await _page(conn, request, values, errors=errors, counts=counts, status=422)
        assert f.subject is not None and f.body is not None
        try:
            done = await send(conn, request, rows, channels=f.channels, subject=f.subject, body=f.body,
                              marketing=f.marketing)
        except schemas.Invalid as e:
            return await _page(conn, request, values, errors=e.errors, counts=counts, status=422)
    raise web.HTTPFound(f"/admin/notifications/messages?kind=announcement&announced={done.messages}"
                        f"&skipped={done.skipped}")


# -- the API ------------------------------------------------------------------------------------------

@AREA.api("POST", "/announcements", permission="notifications.add", body=AnnouncementIn, response=Announced,
          status=201, summary="Send a message to customers")
async def api_announce(request: web.Request) -> web.StreamResponse:
    """To the customers the filter (or `customer_ids`) selects, by each of `channels`; a
    `marketing` one skips customers who opted out (`skipped`). Send an `Idempotency-Key`: a retry
    then sends nothing again."""
    data = await schemas.body(request, AnnouncementIn)
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await _targets(conn, who, status=data.status, partner_id=data.partner_id, category=data.category,
                              customer_ids=data.customer_ids, ids=True)
        if data.customer_ids is not None:
            found = {i for r in rows for i in r["customer_ids"]}
            missing = [i for i in dict.fromkeys(data.customer_ids) if i not in found]
            if missing:
                raise schemas.Invalid({"customer_ids": "no such customer (or not of the filter): "
                                                       + ", ".join(map(str, missing[:20]))})
        if not rows:
            raise schemas.Invalid({"": "no customer matches the filter: nothing to send"})
        done = await send(conn, request, rows, channels=data.channels, subject=data.subject, body=data.body,
                          marketing=data.marketing)
    return schemas.json(done, status=201)

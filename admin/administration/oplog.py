"""The operations log: every change by an administrator or API key, newest first, filtered by who,
customer, object, action and date; each line with its before and after; exported whole as CSV or
JSON. A partner's administrator sees only its partner's lines."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from admin import keys, listing, pages
from admin import schemas as common
from admin.administration import queries
from admin.administration import schemas as s
from admin.administration.area import AREA
from admin.administration.queries import Row
from admin.auth.principal import Principal

CSV_HEADER = ["id", "at", "actor", "address", "action", "object_type", "object_id", "customer_id", "partner_id",
              "summary", "before", "after"]
ACTIONS = ("create", "update", "delete", "block", "unblock", "revoke", "disable", "enable", "login", "password")
_ENCODER = msgspec.json.Encoder()


def to_filter(q: s.LogQuery) -> queries.OplogFilter:
    """The query's filter; the dates are UTC days, both included."""
    def day(d: dt.date) -> dt.datetime:
        return dt.datetime.combine(d, dt.time(), dt.UTC)
    return queries.OplogFilter(
        actor=q.actor, customer_id=q.customer_id, object_type=q.object_type, object_id=q.object_id,
        action=q.action, since=day(q.date_from) if q.date_from else None,
        until=day(q.date_to) + dt.timedelta(days=1) if q.date_to and q.date_to < dt.date.max else None)


def to_api(row: Row) -> s.LogEntry:
    return s.LogEntry(
        id=row["id"], at=row["at"], admin_id=row["admin_id"], api_key_id=row["api_key_id"], actor=row["actor"],
        address=None if row["address"] is None else str(row["address"]), action=row["action"],
        object_type=row["object_type"], object_id=row["object_id"], customer_id=row["customer_id"],
        partner_id=row["partner_id"], summary=row["summary"], before=row["before"], after=row["after"])


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


async def _export_json(request: web.Request, who: Principal, f: queries.OplogFilter) -> web.StreamResponse:
    """The whole filtered log as one JSON array, written ``listing.EXPORT_PAGE`` lines at a time."""
    response = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Content-Disposition": 'attachment; filename="operations-log.json"'})
    await response.prepare(request)
    await response.write(b"[")
    before: int | None = None
    first = True
    pool = request.app[keys.POOL]
    while True:
        async with pool.acquire() as conn:
            rows = await queries.operations(conn, who.partner_id, f, before, listing.EXPORT_PAGE)
        if rows:
            chunk = b",\n".join(_ENCODER.encode(to_api(r)) for r in rows)
            await response.write(chunk if first else b",\n" + chunk)
            first = False
        if len(rows) < listing.EXPORT_PAGE:
            break
        before = rows[-1]["id"]
    await response.write(b"]\n")
    await response.write_eof()
    return response


@AREA.page("/operations-log", permission="administration.view")
async def operations_log(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    lst = listing.Listing.of(request, {"id": "id"}, "id", default_direction="desc",
                             limit=request.app[keys.SETTINGS].page_size)
    errors: dict[str, str] = {}
    try:
        q = common.query(request, s.LogQuery)
    except common.Invalid as e:
        errors, q = e.errors, s.LogQuery()
    f = to_filter(q)
    pool = request.app[keys.POOL]
    fmt = request.query.get("format", "")
    if fmt == "json" and not errors:
        return await _export_json(request, who, f)

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.operations(conn, who.partner_id, f, after[1] if after else None, limit)

    if lst.wants_csv and not errors:
        return await listing.export_csv(request, "operations-log.csv", CSV_HEADER, fetch, lambda r: [r["id"], r["id"]],
                                        lambda r: [r["id"], r["at"], r["actor"], r["address"], r["action"],
                                                   r["object_type"], r["object_id"], r["customer_id"],
                                                   r["partner_id"], r["summary"], _json(r["before"]) or None,
                                                   _json(r["after"]) or None])
    rows = lst.take(await fetch(lst.after, lst.limit + 1), lambda r: [r["id"], r["id"]])
    async with pool.acquire() as conn:
        object_types = await queries.object_types(conn)
    lines = [{**dict(r), "before_json": _json(r["before"]), "after_json": _json(r["after"])} for r in rows]
    return pages.render("administration/operations_log.html", request, {
        "listing": lst, "rows": lines, "q": q, "errors": errors, "object_types": object_types,
        "actions": ACTIONS, "json_url": request.path + "?" + urlencode({**lst.params, "format": "json"})},
        status=422 if errors else 200)


@AREA.api("GET", "/operations-log", permission="administration.view", summary="The operations log",
          query=s.LogQuery, response=common.Page[s.LogEntry])
async def api_operations_log(request: web.Request) -> web.StreamResponse:
    """Changes newest first, filtered like the page (a partner's key sees only its partner's)."""
    who = keys.principal(request)
    q = common.query(request, s.LogQuery)
    lst = listing.Listing.of(request, {"id": "id"}, "id", default_direction="desc",
                             limit=request.app[keys.SETTINGS].page_size)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.operations(conn, who.partner_id, to_filter(q), lst.after[1] if lst.after else None,
                                        lst.limit + 1)
    rows = lst.take(rows, lambda r: [r["id"], r["id"]])
    return common.json(common.Page(items=[to_api(r) for r in rows], next=lst.next))

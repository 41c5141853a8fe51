"""The portal's usage pages (``/portal/usage``): a service's traffic per day over this month and
the last, per hour over a chosen day, the months' totals, and its sessions (newest first, paged).

The charts are drawn by admin/static/portal-usage.js with the vendored uPlot (static files: the
CSP allows scripts from 'self' only) from ``/portal/usage/data``, the same figures as JSON. Days
and months are UTC's, as the traffic rollups and fair-usage counting cut them (schema.sql
``traffic_month_total``). Every read is scoped by the customer (usage_store.py): another
customer's service is 404, on the page and on its data.

The portal serves the vendored uPlot itself (``/portal/static/vendor/``): the admin's
/admin/static is behind the admin's address list, and customers are on the internet.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from admin import keys
from admin.auth.store import Connection
from admin.portal import manifest, pages, usage_store
from admin.portal.common import AREA, customer
from admin.web import PORTAL_CUSTOMER, PORTAL_PUBLIC

DAY_S = 86400
HOUR_S = 3600
SESSIONS_PAGE = 25
VENDOR = frozenset({"uPlot-1.6.32.iife.min.js", "uPlot-1.6.32.min.css"})
"""The vendored files the portal's pages use (admin/static/vendor)."""
CAUSES: dict[str, str] = {
    "User-Request": "You disconnected", "Lost-Carrier": "Connection lost", "Lost-Service": "Connection lost",
    "Idle-Timeout": "Idle for too long", "Session-Timeout": "Session time limit", "Admin-Reset": "Disconnected by us",
    "Admin-Reboot": "Maintenance", "NAS-Reboot": "Maintenance", "NAS-Request": "Disconnected by the network",
    "NAS-Error": "Network error", "Port-Error": "Network error", "Service-Unavailable": "Service unavailable",
    "Port-Preempted": "Replaced by a new session", "Callback": "Callback", "User-Error": "Login error",
    "Host-Request": "Disconnected by the network", "Supplicant-Restart": "Your router reconnected",
    "Reauthentication-Failure": "Login refused", "Port-Reinit": "Reconnected", "Port-Disabled": "Port disabled",
}
"""RFC 2866 Acct-Terminate-Cause values in the customer's words."""


# -- pure: the windows, the buckets ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Months:
    """The first instants (UTC) of last month, this month and the next."""

    last: dt.datetime
    this: dt.datetime
    next: dt.datetime


def months(now: dt.datetime) -> Months:
    this = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = (this - dt.timedelta(days=1)).replace(day=1)
    nxt = (this + dt.timedelta(days=calendar.monthrange(this.year, this.month)[1]))
    return Months(last, this, nxt)


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def parse_day(text: str | None, now: dt.datetime) -> dt.date:
    """The day of the hourly chart (``YYYY-MM-DD``, default today, UTC): one of last month's or
    this month's, up to today; anything else is a 400."""
    today = now.astimezone(dt.UTC).date()
    if not text:
        return today
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise web.HTTPBadRequest(text="day: a date as YYYY-MM-DD") from None
    if not months(now).last.date() <= day <= today:
        raise web.HTTPBadRequest(text="day: a day of this month or the last, up to today")
    return day


@dataclass(frozen=True, slots=True)
class Series:
    """Chart data: bucket start times (Unix), bytes down and up (None: a bucket still to come)."""

    step_s: int
    t: list[int]
    bytes_down: list[int | None]
    bytes_up: list[int | None]
    total_down: int
    total_up: int


def fill(start: dt.datetime, step_s: int, buckets: int, now: dt.datetime,
         rows: Iterable[tuple[dt.datetime, int | Decimal, int | Decimal]]) -> Series:
    """Every bucket from ``start`` (zero where nothing passed, None after ``now``'s), rows summed
    into theirs."""
    first = int(start.timestamp())
    t = [first + i * step_s for i in range(buckets)]
    current = int(now.timestamp())
    down: list[int | None] = [0 if s <= current else None for s in t]
    up: list[int | None] = list(down)
    for bucket, d, u in rows:
        i = (int(bucket.timestamp()) - first) // step_s
        if 0 <= i < buckets:
            down[i] = (down[i] or 0) + int(d)
            up[i] = (up[i] or 0) + int(u)
    return Series(step_s, t, down, up, sum(v or 0 for v in down), sum(v or 0 for v in up))


def encode_cursor(started_at: dt.datetime, unique_id: str) -> str:
    raw = json.dumps([started_at.isoformat(), unique_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None) -> tuple[dt.datetime, str] | None:
    """The sessions' page cursor (``before=``); one made up by hand is a 400."""
    if not text:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        started, unique_id = values
        at = dt.datetime.fromisoformat(started)
        if at.tzinfo is None or not isinstance(unique_id, str):
            raise ValueError(text)
    except (ValueError, TypeError):
        raise web.HTTPBadRequest(text="bad page cursor (before=...)") from None
    return at, unique_id


def cause(text: str | None) -> str:
    if not text:
        return ""
    return CAUSES.get(text, text.replace("-", " ").capitalize())


def month_name(at: dt.datetime) -> str:
    return f"{calendar.month_name[at.month]} {at.year}"


# -- handlers -------------------------------------------------------------------------------

def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _service_param(request: web.Request) -> int | None:
    text = request.query.get("service", "")
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise web.HTTPNotFound(text="no such service")
    return int(text)


async def _chosen(conn: Connection, customer_id: int, wanted: int | None) -> tuple[list[Any], Any]:
    """The customer's services and the one asked for (the first when none is): 404 when it is
    not the customer's, or the customer has none and one was asked for."""
    rows = await usage_store.services(conn, customer_id)
    if wanted is None:
        return rows, rows[0] if rows else None
    for r in rows:
        if r["id"] == wanted:
            return rows, r
    raise web.HTTPNotFound(text="no such service")


@AREA.portal("/usage", access=PORTAL_CUSTOMER)
async def usage_page(request: web.Request) -> web.StreamResponse:
    me = customer(request)
    now = _now()
    day = parse_day(request.query.get("day"), now)
    before = decode_cursor(request.query.get("before"))
    m = months(now)
    async with request.app[keys.POOL].acquire() as conn:
        rows, chosen = await _chosen(conn, me.customer_id, _service_param(request))
        totals = sessions = None
        if chosen is not None:
            totals = await usage_store.month_totals(conn, me.customer_id, chosen["id"], now, m.last)
            sessions = await usage_store.sessions(conn, me.customer_id, chosen["id"], before=before,
                                                  limit=SESSIONS_PAGE + 1)
    more = None
    if sessions is not None and len(sessions) > SESSIONS_PAGE:
        sessions = sessions[:SESSIONS_PAGE]
        more = encode_cursor(sessions[-1]["started_at"], sessions[-1]["acct_unique_id"])
    sid = chosen["id"] if chosen is not None else None
    return pages.render("portal/usage.html", request, {
        "services": rows, "service": chosen, "totals": totals, "sessions": sessions or [], "more": more,
        "paged": before is not None, "day": day, "min_day": m.last.date(), "max_day": now.date(),
        "this_month": month_name(m.this), "last_month": month_name(m.last), "cause": cause,
        "days_url": f"/portal/usage/data?service={sid}&range=days",
        "hours_url": f"/portal/usage/data?service={sid}&range=hours&day={day.isoformat()}",
        "page_url": f"/portal/usage?service={sid}"})


class UsageData(msgspec.Struct, kw_only=True):
    """A service's traffic by day (last month and this, UTC) or by hour (a day): bytes per bucket."""

    service_id: int
    range: str
    step_s: int
    start: dt.datetime
    t: list[int]
    bytes_down: list[int | None]
    bytes_up: list[int | None]
    total_down: int
    total_up: int


@AREA.portal("/usage/data", access=PORTAL_CUSTOMER)
async def usage_data(request: web.Request) -> web.StreamResponse:
    """The charts' figures (admin/static/portal-usage.js fetches them with the page's session)."""
    me = customer(request)
    now = _now()
    range_ = request.query.get("range", "days")
    if range_ == "days":
        m = months(now)
        start, end, step = m.last, m.next, DAY_S
    elif range_ == "hours":
        start = day_start(parse_day(request.query.get("day"), now))
        end, step = start + dt.timedelta(days=1), HOUR_S
    else:
        raise web.HTTPBadRequest(text="range: days or hours")
    service_id = _service_param(request)
    if service_id is None:
        raise web.HTTPBadRequest(text="service: the id of one of your services")
    async with request.app[keys.POOL].acquire() as conn:
        await _chosen(conn, me.customer_id, service_id)
        rows = await usage_store.series(conn, me.customer_id, service_id, start, min(end, now), step)
    buckets = int((end - start).total_seconds()) // step
    s = fill(start, step, buckets, now, [(r["bucket"], r["bytes_down"], r["bytes_up"]) for r in rows])
    body = UsageData(service_id=service_id, range=range_, step_s=step, start=start, t=s.t, bytes_down=s.bytes_down,
                     bytes_up=s.bytes_up, total_down=s.total_down, total_up=s.total_up)
    return web.Response(body=msgspec.json.encode(body), content_type="application/json",
                        headers={"Cache-Control": "private, no-store"})


@AREA.portal("/static/vendor/{name}", access=PORTAL_PUBLIC)
async def vendor(request: web.Request) -> web.StreamResponse:
    """The vendored uPlot, for the usage charts (only the files the portal uses)."""
    name = request.match_info["name"]
    if name not in VENDOR:
        raise web.HTTPNotFound()
    path = f"vendor/{name}"
    response = web.Response(body=(pages.STATIC / path).read_bytes(),
                            content_type="text/css" if name.endswith(".css") else "text/javascript", charset="utf-8")
    version = pages.static_version(path)
    response.headers["Cache-Control"] = manifest.YEAR if request.query.get("v") == version else "no-cache"
    return response

"""Sessions and traffic: who is online (and disconnecting them), session history and "who had
this address then", the post-auth log with the "why can't this customer log in" panel, a
service's traffic graph, and the revenue-leak report. Pages under /admin, the same lists under
/api/v1. Everything is scoped to the principal's partner through the session's service."""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, pages, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.listing import Listing, export_csv
from admin.sessions import diagnose, queries, traffic
from admin.sessions.schemas import (
    REASONS,
    AuthAttempt,
    AuthLogFilter,
    AuthLogQuery,
    CoaQueued,
    HistoryFilter,
    HistoryQuery,
    Leak,
    LeakReport,
    LeaksQuery,
    Session,
    SessionFilter,
    SessionQuery,
    TrafficQuery,
    TrafficSeries,
)
from admin.web import Area, path_id

AREA = Area("sessions", "Sessions", nav=[
    ("Sessions online", "/sessions", "networking.view"),
    ("Session history", "/sessions/history", "networking.view"),
    ("Login log", "/sessions/auth-log", "networking.view"),
    ("Unknown traffic", "/traffic/leaks", "networking.view"),
], order=40)

LEAKS_CSV_ROWS = 10_000
SESSION_CSV = ("acct_unique_id", "login", "service_id", "customer_id", "customer", "nas", "framed_ip",
               "calling_station_id", "started_at", "stopped_at", "duration_s", "input_octets", "output_octets",
               "terminate_cause", "last_coa_result")
AUTH_CSV = ("at", "login", "result", "reason", "service_id", "customer_id", "customer", "nas",
            "calling_station_id", "framed_ip")
LEAK_CSV = ("address", "service_id", "login", "customer_id", "customer", "billing", "bytes", "packets",
            "first_seen", "last_seen")


# -- helpers -----------------------------------------------------------------------------------

S = TypeVar("S", bound=msgspec.Struct)


def _filters(request: web.Request, type_: type[S]) -> S:
    """The query string as ``type_``; text with a NUL (which PostgreSQL text cannot hold) is invalid."""
    value = schemas.from_strings(request.query, type_)
    bad = {k: "must not contain a NUL character" for k, v in msgspec.structs.asdict(value).items()
           if isinstance(v, str) and "\x00" in v}
    if bad:
        raise schemas.Invalid(bad)
    return value


def _scope(who: Principal) -> tuple[int | None, int | None]:
    return who.partner_id, who.creator_id


def _decode_cursor(text: str | None) -> list[Any] | None:
    """A cursor of these lists: [sort value as text, the text that breaks ties (a session id, a login)]."""
    if not text:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        raise web.HTTPBadRequest(text="bad page cursor (after=...)") from None
    if not isinstance(values, list) or len(values) != 2 or \
            not all(isinstance(v, str) and "\x00" not in v for v in values):
        raise web.HTTPBadRequest(text="bad page cursor (after=...)")
    return values


def _listing(request: web.Request, sorts: dict[str, str], default: str) -> Listing:
    """admin.listing's Listing, with a cursor whose tie-breaker is text (admin.listing wants an int id)."""
    plain = request.clone(rel_url=request.rel_url.without_query_params("after"))
    listing = Listing.of(plain, sorts, default, default_direction="desc",
                         limit=request.app[keys.SETTINGS].page_size)
    listing.after = _decode_cursor(request.query.get("after"))
    return listing


def _network(text: str | None, name: str = "ip") -> str | None:
    """An address or a network as PostgreSQL reads it, or Invalid on the field."""
    if not text:
        return None
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise schemas.Invalid({name: "not an IP address or network"}) from None


def _time(text: str | None, name: str = "at") -> datetime | None:
    """ISO 8601 (``2026-12-01T10:00``), UTC when it has no offset."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise schemas.Invalid({name: "not a time: write it as 2026-12-01T10:00 (UTC)"}) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _session(row: Any) -> Session:
    return msgspec.convert(dict(row), Session)


def _attempt(row: Any) -> AuthAttempt:
    return msgspec.convert(dict(row), AuthAttempt)


def _leak(row: Any) -> Leak:
    return msgspec.convert(dict(row), Leak)


def _tie(row: Any) -> tuple[str, str]:
    return row["sort_key"], row["acct_unique_id"]


def _auth_tie(row: Any) -> tuple[str, str]:
    return row["sort_key"], row["login"]


def _session_csv(r: Any) -> list[Any]:
    return [r["acct_unique_id"], r["login"], r["service_id"], r["customer_id"], r["customer"], r["nas"],
            r["framed_ip"], r["calling_station_id"], r["started_at"], r["stopped_at"], r["duration_s"],
            r["input_octets"], r["output_octets"], r["terminate_cause"], r["last_coa_result"]]


def _auth_csv(r: Any) -> list[Any]:
    return [r["at"], r["login"], r["result"], r["reason"], r["service_id"], r["customer_id"], r["customer"],
            r["nas"], r["calling_station_id"], r["framed_ip"]]


Fetch = Callable[[list[Any] | None, int], Awaitable[list[Any]]]


def _cursor_checked(fetch: Fetch) -> Fetch:
    """A cursor's sort value is cast by PostgreSQL: one that is not of the sort's type is a bad cursor."""
    async def checked(after: list[Any] | None, limit: int) -> list[Any]:
        try:
            return await fetch(after, limit)
        except asyncpg.DataError:
            if after is None:
                raise
            raise web.HTTPBadRequest(text="bad page cursor (after=...)") from None
    return checked


# -- live sessions -----------------------------------------------------------------------------

def _live_fetch(conn: Connection, who: Principal, f: SessionFilter, network: str | None, listing: Listing) -> Fetch:
    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        return await queries.live(conn, *_scope(who), login=f.login, nas_id=f.nas, network=network,
                                  sort=listing.sort, direction=listing.direction, after=after, limit=limit)
    return _cursor_checked(fetch)


_LIVE_SORTS = {k: v[0] for k, v in queries.LIVE_SORTS.items()}


@AREA.page("/sessions", permission="networking.view")
async def live_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    listing = _listing(request, _LIVE_SORTS, "started")
    errors: dict[str, str] = {}
    try:
        f = _filters(request, SessionFilter)
        network = _network(f.ip)
    except schemas.Invalid as e:
        errors, f, network = e.errors, SessionFilter(), None
    async with request.app[keys.POOL].acquire() as conn:
        fetch = _live_fetch(conn, who, f, network, listing)
        if listing.wants_csv and not errors:
            return await export_csv(request, "sessions.csv", SESSION_CSV, fetch, _tie, _session_csv)
        listing.take(await fetch(listing.after, listing.limit + 1) if not errors else [], _tie)
        nas = await queries.nas_options(conn)
        pending = await queries.open_requests(conn, *_scope(who))
    queued = request.query.get("queued", "")
    return pages.render("sessions/live.html", request, {
        "listing": listing, "f": f, "errors": errors, "nas_options": nas, "pending": pending,
        "queued": queued if queued.isdigit() else "", "can_disconnect": who.can("networking.edit"),
        "query": request.query}, status=422 if errors else 200)


async def _disconnect(conn: Connection, request: web.Request, who: Principal, acct_unique_id: str) -> Any:
    """Queue a Disconnect-Request for the session's service and log it, in one transaction."""
    if not acct_unique_id or "\x00" in acct_unique_id:
        raise web.HTTPNotFound(text="no such session")
    async with conn.transaction():
        row = await queries.session(conn, *_scope(who), acct_unique_id)
        if row is None:
            raise web.HTTPNotFound(text="no such session")
        if row["stopped_at"] is not None:
            raise web.HTTPConflict(text="this session has ended already")
        if row["service_id"] is None:
            raise web.HTTPConflict(text="this session belongs to no service: radiusd disconnects by service")
        queued = await queries.queue_disconnect(conn, row["service_id"])
        await oplog_store.record(
            conn, who, keys.client_address(request), "disconnect", "service", row["service_id"],
            customer_id=row["customer_id"], partner_id=row["partner_id"],
            summary=f"disconnect {row['login']} (session {acct_unique_id})", before=None,
            after={"coa_request_id": queued["id"], "action": "disconnect", "acct_unique_id": acct_unique_id,
                   "login": row["login"], "framed_ip": row["framed_ip"]})
        return queued


@AREA.page("/sessions/disconnect", permission="networking.edit", method="POST")
async def disconnect_page(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    acct_unique_id = str(form.get("session", "")).strip()
    async with request.app[keys.POOL].acquire() as conn:
        queued = await _disconnect(conn, request, keys.principal(request), acct_unique_id)
    raise web.HTTPSeeOther(f"/admin/sessions?queued={queued['id']}")


@AREA.api("GET", "/sessions", permission="networking.view", summary="List live sessions",
          query=SessionQuery, response=schemas.Page[Session])
async def live_api(request: web.Request) -> web.StreamResponse:
    """Sessions open now (no Accounting-Stop yet), newest first unless sorted otherwise."""
    who = keys.principal(request)
    q = _filters(request, SessionQuery)
    listing = _listing(request, _LIVE_SORTS, "started")
    async with request.app[keys.POOL].acquire() as conn:
        rows = await _live_fetch(conn, who, q, _network(q.ip), listing)(listing.after, listing.limit + 1)
    return schemas.json(schemas.Page([_session(r) for r in listing.take(rows, _tie)], listing.next))


@AREA.api("POST", "/sessions/{acct_unique_id}/disconnect", permission="networking.edit",
          summary="Disconnect a session", response=CoaQueued, status=202)
async def disconnect_api(request: web.Request) -> web.StreamResponse:
    """Queue a Disconnect-Request: radiusd sends it to the NAS of every live session of the
    session's service; the answer appears on the sessions (``last_coa_result``)."""
    async with request.app[keys.POOL].acquire() as conn:
        queued = await _disconnect(conn, request, keys.principal(request), request.match_info["acct_unique_id"])
    return schemas.json(msgspec.convert(dict(queued), CoaQueued), status=202)


# -- history -----------------------------------------------------------------------------------

def _history_fetch(conn: Connection, who: Principal, f: HistoryFilter) -> Fetch:
    network, at = _network(f.ip), _time(f.at)

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        return await queries.history(conn, *_scope(who), login=f.login, network=network, at=at, after=after,
                                     limit=limit)
    return _cursor_checked(fetch)


@AREA.page("/sessions/history", permission="networking.view")
async def history_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    listing = _listing(request, {"started": "r.started_at"}, "started")
    errors: dict[str, str] = {}
    rows: list[Any] = []
    f = HistoryFilter()
    async with request.app[keys.POOL].acquire() as conn:
        try:
            f = _filters(request, HistoryFilter)
            fetch = _history_fetch(conn, who, f)
        except schemas.Invalid as e:
            errors = e.errors
        else:
            if listing.wants_csv:
                return await export_csv(request, "session-history.csv", SESSION_CSV, fetch, _tie, _session_csv)
            rows = await fetch(listing.after, listing.limit + 1)
    listing.take(rows, _tie)
    return pages.render("sessions/history.html", request, {
        "listing": listing, "f": f, "errors": errors, "query": request.query}, status=422 if errors else 200)


@AREA.api("GET", "/sessions/history", permission="networking.view", summary="List sessions (history)",
          query=HistoryQuery, response=schemas.Page[Session])
async def history_api(request: web.Request) -> web.StreamResponse:
    """Every session, live and ended, newest first. ``ip`` with ``at``: who had that address then."""
    who = keys.principal(request)
    q = _filters(request, HistoryQuery)
    listing = _listing(request, {"started": "r.started_at"}, "started")
    async with request.app[keys.POOL].acquire() as conn:
        rows = await _history_fetch(conn, who, q)(listing.after, listing.limit + 1)
    return schemas.json(schemas.Page([_session(r) for r in listing.take(rows, _tie)], listing.next))


# -- the post-auth log -------------------------------------------------------------------------

def _auth_fetch(conn: Connection, who: Principal, f: AuthLogFilter) -> Fetch:
    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        return await queries.auth_log(conn, *_scope(who), login=f.login, result=f.result, reason=f.reason,
                                      after=after, limit=limit)
    return _cursor_checked(fetch)


@AREA.page("/sessions/auth-log", permission="networking.view")
async def auth_log_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    listing = _listing(request, {"at": "p.at"}, "at")
    errors: dict[str, str] = {}
    try:
        f = _filters(request, AuthLogFilter)
    except schemas.Invalid as e:
        errors, f = e.errors, AuthLogFilter()
    facts = None
    attempts: list[Any] = []
    async with request.app[keys.POOL].acquire() as conn:
        fetch = _auth_fetch(conn, who, f)
        if listing.wants_csv and not errors:
            return await export_csv(request, "auth-log.csv", AUTH_CSV, fetch, _auth_tie, _auth_csv)
        listing.take(await fetch(listing.after, listing.limit + 1) if not errors else [], _auth_tie)
        if f.login and not errors:
            facts = await queries.login_facts(conn, *_scope(who), f.login)
            attempts = await queries.auth_log(conn, *_scope(who), login=f.login, result=None, reason=None,
                                              after=None, limit=20)
    found = diagnose.findings(dict(facts) if facts else None, attempts) if f.login and not errors else []
    return pages.render("sessions/auth_log.html", request, {
        "listing": listing, "f": f, "errors": errors, "facts": facts, "attempts": attempts, "findings": found,
        "reasons": REASONS, "query": request.query}, status=422 if errors else 200)


@AREA.api("GET", "/auth-log", permission="networking.view", summary="List Access-Accepts and -Rejects",
          query=AuthLogQuery, response=schemas.Page[AuthAttempt])
async def auth_log_api(request: web.Request) -> web.StreamResponse:
    """The post-auth log, newest first, each line with radiusd's reason."""
    who = keys.principal(request)
    q = _filters(request, AuthLogQuery)
    listing = _listing(request, {"at": "p.at"}, "at")
    async with request.app[keys.POOL].acquire() as conn:
        rows = await _auth_fetch(conn, who, q)(listing.after, listing.limit + 1)
    return schemas.json(schemas.Page([_attempt(r) for r in listing.take(rows, _auth_tie)], listing.next))


# -- traffic per service -----------------------------------------------------------------------

async def _visible_service(conn: Connection, who: Principal, service_id: int) -> Any:
    row = await queries.service(conn, *_scope(who), service_id)
    if row is None:
        raise web.HTTPNotFound(text="no such service")
    return row


async def _series(request: web.Request) -> TrafficSeries:
    who = keys.principal(request)
    service_id = path_id(request)
    range_ = _filters(request, TrafficQuery).range
    start, end = traffic.window(range_, datetime.now(UTC))
    async with request.app[keys.POOL].acquire() as conn:
        await _visible_service(conn, who, service_id)
        rows = await queries.traffic(conn, service_id, range_, start, end)
    t, down, up = traffic.fill(range_, start, [(r["bucket"], r["bytes_down"], r["bytes_up"]) for r in rows])
    return TrafficSeries(service_id=service_id, range=range_, step_s=traffic.WINDOWS[range_].step_s, start=start,
                         end=end, t=t, bytes_down=down, bytes_up=up, total_down=sum(down), total_up=sum(up))


@AREA.page("/services/{id}/traffic", permission="customers.view")
async def traffic_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    service_id = path_id(request)
    range_ = request.query.get("range", "minutes")
    if range_ not in traffic.WINDOWS:
        range_ = "minutes"
    async with request.app[keys.POOL].acquire() as conn:
        service = await _visible_service(conn, who, service_id)
    return pages.render("sessions/traffic.html", request, {
        "service": service, "range": range_, "ranges": [("minutes", "6 hours by minute"),
                                                        ("hours", "7 days by hour"), ("days", "90 days by day")]})


@AREA.page("/services/{id}/traffic.json", permission="customers.view")
async def traffic_json(request: web.Request) -> web.StreamResponse:
    """The graph's data (admin/static/traffic.js fetches it with the page's session)."""
    return schemas.json(await _series(request))


@AREA.api("GET", "/services/{id}/traffic", permission="customers.view", summary="A service's traffic",
          query=TrafficQuery, response=TrafficSeries)
async def traffic_api(request: web.Request) -> web.StreamResponse:
    """Bytes down and up per minute (last 6 h), hour (last 7 days) or day (last 90 days)."""
    return schemas.json(await _series(request))


# -- the revenue-leak report -------------------------------------------------------------------

@AREA.page("/traffic/leaks", permission="networking.view")
async def leaks_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    errors: dict[str, str] = {}
    try:
        q = _filters(request, LeaksQuery)
    except schemas.Invalid as e:
        errors, q = e.errors, LeaksQuery()
    since = traffic.since(q.since, datetime.now(UTC))
    csv = request.query.get("format") == "csv" and not errors
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.leaks(conn, *_scope(who), since, LEAKS_CSV_ROWS if csv else q.limit) if not errors \
            else []
    if csv:
        async def fetch(after: list[Any] | None, _limit: int) -> list[Any]:
            return [] if after else rows  # one page: the report is a top list, not paged
        return await export_csv(request, "unknown-traffic.csv", LEAK_CSV, fetch, lambda r: [str(r["bytes"]), 0],
                                lambda r: [r[k] for k in LEAK_CSV])
    return pages.render("sessions/leaks.html", request, {
        "rows": rows, "q": q, "since": since, "errors": errors}, status=422 if errors else 200)


@AREA.api("GET", "/traffic/leaks", permission="networking.view", summary="Traffic billing gets nothing for",
          query=LeaksQuery, response=LeakReport)
async def leaks_api(request: web.Request) -> web.StreamResponse:
    """Own addresses that passed traffic without a service, and services that passed traffic
    while they or their customer were not active, most bytes first."""
    who = keys.principal(request)
    q = _filters(request, LeaksQuery)
    since = traffic.since(q.since, datetime.now(UTC))
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.leaks(conn, *_scope(who), since, q.limit)
    return schemas.json(LeakReport(since=since, items=[_leak(r) for r in rows]))

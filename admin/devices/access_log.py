"""CPE sessions: the ACS's access log (a line per CWMP session, written by acs when it ends:
device, address, events, RPCs, faults, duration, outcome), with its filters; and the API.

A partner's administrator sees the sessions of the devices it sees (queries.py DEVICE_SCOPE).
The log is newest first; its page cursor is (started_at, device id).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin import keys, listing, pages, schemas
from admin.devices import queries
from admin.devices.common import AREA, out, scope
from admin.devices.schemas import CpeSession, SessionQuery
from admin.listing import as_time, listing_of
from admin.schemas import Page

SORTS = {"started_at": "l.started_at"}
TYPES = {"started_at": as_time}
CSV_COLUMNS = ("started_at", "device_id", "cwmp_id", "address", "events", "rpcs", "faults", "duration_ms", "outcome",
               "instance")
OUTCOMES = ("ok", "fault", "timeout", "error")


def _cell(r: Any, column: str) -> Any:
    return " ".join(r[column]) if column in ("events", "rpcs", "faults") else r[column]


@AREA.page("/cpe/sessions", permission="networking.view")
async def sessions_list(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, SessionQuery)
    ls = listing_of(request, SORTS, "started_at", direction="desc", types=TYPES)
    pool = request.app[keys.POOL]
    partner, creator = scope(request)

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.list_sessions(conn, partner, creator, device_id=f.device_id, q=f.q,
                                               outcome=f.outcome, event=f.event, direction=ls.direction,
                                               after=after, limit=limit)

    def key(r: Any) -> tuple[Any, int]:
        return (r["sort_value"], r["device_id"])

    if ls.wants_csv:
        return await listing.export_csv(request, "cpe-sessions.csv", CSV_COLUMNS, fetch, key,
                                        lambda r: [_cell(r, c) for c in CSV_COLUMNS])
    rows = ls.take(await fetch(ls.after, ls.limit + 1), key)
    return pages.render("devices/sessions_list.html", request, {"rows": rows, "ls": ls, "f": f, "outcomes": OUTCOMES})


@AREA.api("GET", "/cpe/sessions", permission="networking.view", summary="The ACS's access log", query=SessionQuery,
          response=Page[CpeSession])
async def api_sessions(request: web.Request) -> web.StreamResponse:
    """CWMP sessions, newest first (``dir=asc``: oldest first), of the devices the key sees."""
    f = schemas.query(request, SessionQuery)
    ls = listing_of(request, SORTS, "started_at", direction="desc", types=TYPES)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_sessions(conn, *scope(request), device_id=f.device_id, q=f.q, outcome=f.outcome,
                                           event=f.event, direction=ls.direction, after=ls.after,
                                           limit=ls.limit + 1)
    page = ls.take(rows, lambda r: (r["sort_value"], r["device_id"]))
    return schemas.json(Page[CpeSession](items=[out(r, CpeSession) for r in page], next=ls.next))

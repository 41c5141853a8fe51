"""The helpdesk's reports: the SLA report (how soon the tickets opened in a period got their
first reply from staff, in 3/6/9/12/24-hour buckets, per agent or per group, drawn as bars) and
agent performance (assigned, resolved, reopened, first-contact resolution, average first
response, response and resolution times); each as a page, CSV and the API.

The period is whole days in UTC, ``since`` to ``until`` both included (the last 30 days unless
told). An agent in the SLA report is who answered first, or the assignee of a ticket nobody
answered yet; in agent performance, the assignee, or who answered first when nobody is
assigned. First-contact resolution: resolved with one
reply from staff and never reopened, of the resolved.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec
from aiohttp import web

from admin import keys, listing, pages, schemas
from admin.tickets import reports_store, sla
from admin.tickets.common import AREA, scope

DEFAULT_DAYS = 30
MAX_DAYS = 366


class ReportQuery(msgspec.Struct, kw_only=True):
    since: dt.date | None = None
    until: dt.date | None = None
    by: Literal["agent", "group"] = "agent"


class SlaRow(msgspec.Struct):
    id: int | None  # the agent or group; null: nobody
    name: str
    counts: list[int]  # per bucket, as buckets lists them
    total: int


class SlaReport(msgspec.Struct):
    since: dt.date
    until: dt.date
    by: str
    buckets: list[str]
    rows: list[SlaRow]
    totals: list[int]


class AgentRow(msgspec.Struct):
    id: int
    name: str
    assigned: int
    resolved: int
    reopened: int
    first_contact_resolution: float | None  # a share of the resolved, 0..1
    first_response_hours: float | None
    response_hours: float | None
    resolution_hours: float | None


class AgentReport(msgspec.Struct):
    since: dt.date
    until: dt.date
    rows: list[AgentRow]


def _period(f: ReportQuery) -> tuple[dt.date, dt.date, dt.datetime, dt.datetime]:
    until = f.until or dt.datetime.now(dt.UTC).date()
    since = f.since or until - dt.timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise schemas.Invalid({"since": "is after until"})
    if (until - since).days >= MAX_DAYS:
        raise schemas.Invalid({"since": f"the period is at most {MAX_DAYS} days"})
    start = dt.datetime.combine(since, dt.time(), dt.UTC)
    return since, until, start, dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600, 2)


async def sla_report(request: web.Request, f: ReportQuery) -> SlaReport:
    since, until, start, end = _period(f)
    async with request.app[keys.POOL].acquire() as conn:
        counts = await reports_store.sla_counts(conn, *scope(request), start, end, f.by)
        names = await reports_store.names(conn, f.by, sorted({r["key"] for r in counts if r["key"] is not None}))
    by_key: dict[int | None, list[int]] = {}
    for r in counts:
        by_key.setdefault(r["key"], [0] * len(sla.LABELS))[r["bucket"]] += r["n"]
    nobody = "nobody" if f.by == "agent" else "no group"
    rows = [SlaRow(key, names.get(key, f"#{key}") if key is not None else nobody, values, sum(values))
            for key, values in by_key.items()]
    rows.sort(key=lambda r: (r.id is None, r.name.lower()))
    totals = [sum(r.counts[i] for r in rows) for i in range(len(sla.LABELS))]
    return SlaReport(since, until, f.by, list(sla.LABELS), rows, totals)


async def agent_report(request: web.Request, f: ReportQuery) -> AgentReport:
    since, until, start, end = _period(f)
    async with request.app[keys.POOL].acquire() as conn:
        found = await reports_store.agent_rows(conn, *scope(request), start, end)
        names = await reports_store.names(conn, "agent", sorted(r["key"] for r in found))
    rows = [AgentRow(r["key"], names.get(r["key"], f"#{r['key']}"), r["assigned"], r["resolved"], r["reopened"],
                     round(r["first_contact"] / r["resolved"], 3) if r["resolved"] else None,
                     _hours(r["first_response_s"]), _hours(r["response_s"]), _hours(r["resolution_s"]))
            for r in found]
    rows.sort(key=lambda r: r.name.lower())
    return AgentReport(since, until, rows)


def _query(request: web.Request) -> ReportQuery:
    return schemas.query(request, ReportQuery)


@AREA.page("/tickets/reports", permission="support.view")
async def reports_page(request: web.Request) -> web.StreamResponse:
    try:
        f = _query(request)
        report, agents = await sla_report(request, f), await agent_report(request, f)
    except schemas.Invalid as e:
        f = ReportQuery()
        report, agents = await sla_report(request, f), await agent_report(request, f)
        return pages.render("tickets/reports.html", request, {"sla": report, "agents": agents, "errors": e.errors},
                            status=400)
    return pages.render("tickets/reports.html", request, {"sla": report, "agents": agents, "errors": {}})


@AREA.page("/tickets/reports/sla.csv", permission="support.view")
async def sla_csv(request: web.Request) -> web.StreamResponse:
    r = await sla_report(request, _query(request))
    return listing.csv_response(f"sla-{r.since}-{r.until}.csv", [r.by, *r.buckets, "total"],
                                [[row.name, *row.counts, row.total] for row in r.rows])


@AREA.page("/tickets/reports/agents.csv", permission="support.view")
async def agents_csv(request: web.Request) -> web.StreamResponse:
    r = await agent_report(request, _query(request))
    return listing.csv_response(
        f"agents-{r.since}-{r.until}.csv",
        ["agent", "assigned", "resolved", "reopened", "first_contact_resolution", "first_response_hours",
         "response_hours", "resolution_hours"],
        [[a.name, a.assigned, a.resolved, a.reopened, a.first_contact_resolution, a.first_response_hours,
          a.response_hours, a.resolution_hours] for a in r.rows])


@AREA.api("GET", "/tickets/reports/sla", permission="support.view", summary="The SLA report", query=ReportQuery,
          response=SlaReport)
async def api_sla(request: web.Request) -> web.StreamResponse:
    """First responses of the tickets opened in the period, counted per bucket and agent (or group)."""
    return schemas.json(await sla_report(request, _query(request)))


@AREA.api("GET", "/tickets/reports/agents", permission="support.view", summary="Agent performance",
          query=ReportQuery, response=AgentReport)
async def api_agents(request: web.Request) -> web.StreamResponse:
    """Per assignee (or first responder): tickets, resolved and reopened, first-contact resolution, average times."""
    return schemas.json(await agent_report(request, _query(request)))

"""Reports with charts: services running per day with the sum of their prices, monthly recurring
revenue, debt by age, payments per day. One set-based query per chart (admin/finance/queries.py);
the page draws them with uPlot (admin/static/finance.js) from charts.json, the API gives each."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

from aiohttp import web

from admin import keys, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing import periods
from admin.finance import common, queries
from admin.finance.area import AREA
from admin.finance.schemas import Chart, ReportQuery, Series

DEFAULT_DAYS = 90
MAX_DAYS = 3 * 366
AGES = ("not due yet", "1-30 days overdue", "31-60 days overdue", "61-90 days overdue", "more than 90 days overdue")
CENT = Decimal("0.01")


def window(q: ReportQuery, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days asked for: the last DEFAULT_DAYS to ``today`` by default; Invalid when backwards or too long."""
    until = q.until or (today if q.since is None else min(today, q.since + dt.timedelta(days=DEFAULT_DAYS - 1)))
    since = q.since or until - dt.timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise schemas.Invalid({"since": "must not be after until"})
    if (until - since).days >= MAX_DAYS:
        raise schemas.Invalid({"since": f"at most {MAX_DAYS} days at once"})
    return since, until


def _days(since: dt.date, until: dt.date) -> list[dt.date]:
    return [since + dt.timedelta(days=i) for i in range((until - since).days + 1)]


def _series(label: str, unit: str, values: Iterable[Decimal | int]) -> Series:
    return Series(label=label, unit=unit, values=[Decimal(v).quantize(CENT) if unit else Decimal(v) for v in values])


def active_services_chart(rows: Iterable[Any], since: dt.date, until: dt.date) -> Chart:
    days = _days(since, until)
    index = {d: i for i, d in enumerate(days)}
    count = [0] * len(days)
    prices: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(days))
    for r in rows:
        i = index[r["day"]]
        count[i] += r["services"]
        prices[r["currency"]][i] += r["prices"]
    return Chart(title="Active services and the sum of their prices", x=[d.isoformat() for d in days],
                 series=[_series("Active services", "", count),
                         *(_series(f"Prices ({c})", c, v) for c, v in sorted(prices.items()))])


def _months(since: dt.date, until: dt.date) -> list[dt.date]:
    out, month = [], since.replace(day=1)
    while month <= until:
        out.append(month)
        month = periods.add_months(month, 1)
    return out


def mrr_chart(rows: Iterable[Any], since: dt.date, until: dt.date) -> Chart:
    months = _months(since, until)
    index = {m: i for i, m in enumerate(months)}
    values: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(months))
    for r in rows:
        values[r["currency"]][index[r["month"]]] += r["mrr"]
    return Chart(title="Monthly recurring revenue (charges by their days in each month)",
                 x=[m.isoformat() for m in months],
                 series=[_series(f"MRR ({c})", c, v) for c, v in sorted(values.items())])


def debt_chart(rows: Iterable[Any]) -> Chart:
    invoices = [0] * len(AGES)
    values: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(AGES))
    for r in rows:
        invoices[r["bucket"]] += r["invoices"]
        values[r["currency"]][r["bucket"]] += r["open"]
    return Chart(title="Open invoices by age (today)", x=list(AGES),
                 series=[*(_series(f"Open ({c})", c, v) for c, v in sorted(values.items())),
                         _series("Invoices", "", invoices)])


def payments_chart(rows: Iterable[Any], since: dt.date, until: dt.date) -> Chart:
    days = _days(since, until)
    index = {d: i for i, d in enumerate(days)}
    count = [0] * len(days)
    values: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(days))
    for r in rows:
        i = index[r["day"]]
        count[i] += r["payments"]
        values[r["currency"]][i] += r["amount"]
    return Chart(title="Payments received per day", x=[d.isoformat() for d in days],
                 series=[*(_series(f"Payments ({c})", c, v) for c, v in sorted(values.items())),
                         _series("Payments", "", count)])


Build = Callable[[Connection, Principal, dt.date, dt.date], Awaitable[Chart]]


async def _active(conn: Connection, who: Principal, since: dt.date, until: dt.date) -> Chart:
    return active_services_chart(await queries.active_services(conn, *common.scope(who), since, until), since, until)


async def _mrr(conn: Connection, who: Principal, since: dt.date, until: dt.date) -> Chart:
    return mrr_chart(await queries.mrr(conn, *common.scope(who), since, until), since, until)


async def _debt(conn: Connection, who: Principal, since: dt.date, until: dt.date) -> Chart:
    return debt_chart(await queries.debt(conn, *common.scope(who)))


async def _payments(conn: Connection, who: Principal, since: dt.date, until: dt.date) -> Chart:
    return payments_chart(await queries.payments(conn, *common.scope(who), since, until), since, until)


CHARTS: dict[str, Build] = {"active_services": _active, "mrr": _mrr, "debt": _debt, "payments": _payments}


@AREA.page("/finance/reports", permission="finance.view")
async def reports_page(request: web.Request) -> web.StreamResponse:
    errors: dict[str, str] = {}
    try:
        q = common.query(request, ReportQuery)
        since, until = window(q, common.today())
    except schemas.Invalid as e:
        errors = e.errors
        since, until = window(ReportQuery(), common.today())
    return common.render("finance/reports.html", request, {
        "since": since, "until": until, "errors": errors, "charts": list(CHARTS),
        "values": dict(request.query)}, status=422 if errors else 200)


@AREA.page("/finance/reports/charts.json", permission="finance.view")
async def charts_json(request: web.Request) -> web.StreamResponse:
    """Every chart of the page (admin/static/finance.js fetches it with the page's session)."""
    who = keys.principal(request)
    since, until = window(common.query(request, ReportQuery), common.today())
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json({name: await build(conn, who, since, until) for name, build in CHARTS.items()})


def _api(name: str, path: str, summary: str) -> None:
    build = CHARTS[name]

    async def report(request: web.Request) -> web.StreamResponse:
        who = keys.principal(request)
        since, until = window(common.query(request, ReportQuery), common.today())
        async with request.app[keys.POOL].acquire() as conn:
            return schemas.json(await build(conn, who, since, until))

    report.__name__ = report.__qualname__ = f"api_{name}_report"
    report.__doc__ = (build.__doc__ or "").strip() or None
    AREA.api("GET", path, permission="finance.view", summary=summary, query=ReportQuery, response=Chart)(report)


_api("active_services", "/finance/reports/active-services",
     "Services running per day and the sum of their prices")
_api("mrr", "/finance/reports/mrr", "Monthly recurring revenue")
_api("debt", "/finance/reports/debt", "Open invoices by age (today; the dates are not used)")
_api("payments", "/finance/reports/payments", "Payments received per day")

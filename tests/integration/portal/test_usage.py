"""The portal's usage page (/portal/usage) and its charts' data (/portal/usage/data) over the real
app and database: traffic written as flowcollector writes it (two flushes in a minute, rolled up,
then a late row in an hour already rolled) read per day, per hour and per month exactly; another
customer's service is 404 on the page and on the data and its traffic never counts; sessions
newest first, paged, with their causes in words."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from typing import Any

from admin.auth.store import Connection
from admin.portal import usage
from flowcollector import store as flows
from tests.integration.admin.conftest import Admin
from tests.integration.portal.conftest import admin, portal_customer, portal_login  # noqa: F401

NOW = dt.datetime.now(dt.UTC)
MONTHS = usage.months(NOW)


def text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


async def service(conn: Connection, customer_id: int, login: str) -> int:
    tariff = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ($1, 50000, 10000) "
                                 "RETURNING id", f"Home {login}")
    return int(await conn.fetchval("INSERT INTO services (customer_id, tariff_id, login, password) "
                                   "VALUES ($1, $2, $3, 'pw-12345678') RETURNING id", customer_id, tariff, login))


async def write(conn: Connection, rows: list[tuple[int, dt.datetime, int, int]]) -> None:
    """Traffic as flowcollector writes it: one flush (COPY, late hours marked dirty)."""
    async with conn.transaction():
        await flows.write_usage(conn, {(sid, int(at.timestamp())): [down, up, 1, 1] for sid, at, down, up in rows}, {})


async def get_json(c: Any, path: str) -> tuple[int, Any]:
    status, body = await c.get(path)
    return status, json.loads(body) if status == 200 else body


async def test_traffic_per_day_hour_and_month_is_exact_and_only_the_customers(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    bob = await portal_customer(admin, login="bob")
    last_day = MONTHS.last + dt.timedelta(days=2, hours=10)   # the 3rd of last month, 10:00
    first = MONTHS.this                                        # 00:00 on the 1st: never after now
    minute = NOW.replace(second=0, microsecond=0)
    async with admin.pool.acquire() as conn:
        a = await service(conn, anna, "anna-fibre")
        b = await service(conn, bob, "bob-fibre")
        await write(conn, [(a, last_day, 1000, 100), (b, last_day, 5555, 5555), (a, first, 70, 7)])
        await write(conn, [(a, last_day, 500, 50), (a, minute, 3, 1), (b, minute, 9999, 9999)])  # a second flush
        await conn.execute("SELECT lastmile_rollup_traffic($1)", MONTHS.last)
        # late: a row in an hour already rolled up (marked dirty: still counted exactly)
        await write(conn, [(a, last_day + dt.timedelta(minutes=30), 20000, 2000)])
        assert await conn.fetchval("SELECT count(*) FROM traffic_rollup_dirty") == 1
    last_total = (1000 + 500 + 20000, 100 + 50 + 2000)
    this_total = (70 + 3, 7 + 1)
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get("/portal/usage")
        assert status == 200, body[:500]
        words = text(body)
        this_name, last_name = usage.month_name(MONTHS.this), usage.month_name(MONTHS.last)
        assert f"{this_name} {sum(this_total)} B {this_total[0]} B down · {this_total[1]} B up" in words, words
        assert f"{last_name} 23.6 kB 21.5 kB down · 2.1 kB up" in words, words
        assert f'data-url="/portal/usage/data?service={a}&amp;range=days"' in body
        assert "<script>" not in body and " style=" not in body  # the CSP allows no inline script or style
        assert "portal-usage.js" in body and "/portal/static/vendor/uPlot-1.6.32.iife.min.js" in body

        status, days = await get_json(c, f"/portal/usage/data?service={a}&range=days")
        assert status == 200, days
        assert days["step_s"] == 86400 and len(days["t"]) == (MONTHS.next - MONTHS.last).days
        assert days["t"][0] == int(MONTHS.last.timestamp())
        assert days["bytes_down"][2] == last_total[0] and days["bytes_up"][2] == last_total[1]
        i = (MONTHS.this - MONTHS.last).days
        today = (NOW - MONTHS.last).days
        assert days["bytes_down"][i] == (73 if today == i else 70)
        assert days["bytes_down"][today] >= 3
        assert all(v is None for v in days["bytes_down"][today + 1:])  # days still to come
        assert all(v == 0 for k, v in enumerate(days["bytes_down"][:today + 1]) if k not in (2, i, today))
        assert (days["total_down"], days["total_up"]) == (last_total[0] + this_total[0], last_total[1] + this_total[1])

        day = last_day.date().isoformat()
        status, hours = await get_json(c, f"/portal/usage/data?service={a}&range=hours&day={day}")
        assert status == 200 and hours["step_s"] == 3600 and len(hours["t"]) == 24
        assert hours["bytes_down"][10] == last_total[0] and sum(hours["bytes_down"]) == last_total[0]
        status, hours = await get_json(c, f"/portal/usage/data?service={a}&range=hours")  # today
        assert status == 200 and hours["bytes_down"][NOW.hour] >= 3
        assert all(v is None for v in hours["bytes_down"][NOW.hour + 1:])
        status, body = await c.get(f"/portal/usage?service={a}&day={day}")
        assert status == 200 and f"Per hour on {day}" in body and f"day={day}" in body

        # another customer's service: 404 on the page and the data, whatever the range
        for path in (f"/portal/usage?service={b}", f"/portal/usage/data?service={b}&range=days",
                     f"/portal/usage/data?service={b}&range=hours", f"/portal/usage?service={b}&day={day}",
                     "/portal/usage?service=99999999", "/portal/usage/data?service=99999999&range=days",
                     "/portal/usage?service=1e3", "/portal/usage/data?service=-1&range=days"):
            assert (await c.get(path))[0] == 404, path
        for path in (f"/portal/usage/data?service={a}&range=years", "/portal/usage/data?range=days",
                     f"/portal/usage/data?service={a}&range=hours&day=2001-01-01",
                     f"/portal/usage/data?service={a}&range=hours&day=tomorrow",
                     f"/portal/usage?service={a}&day={(NOW + dt.timedelta(days=1)).date().isoformat()}",
                     f"/portal/usage?service={a}&before=bm90IGEgY3Vyc29y"):
            assert (await c.get(path))[0] == 400, path
    async with await portal_login(admin, "bob") as c:
        status, days = await get_json(c, f"/portal/usage/data?service={b}&range=days")
        assert status == 200 and days["bytes_down"][2] == 5555
        assert (await c.get(f"/portal/usage/data?service={a}&range=days"))[0] == 404


async def sessions(conn: Connection, service_id: int, login: str, n: int, *, prefix: str) -> None:
    """``n`` ended sessions an hour apart (the newest an hour ago), then one online now."""
    rows: list[tuple[Any, ...]] = []
    for k in range(n):
        started = NOW - dt.timedelta(hours=k + 1, minutes=30)
        rows.append((f"{prefix}-{k:02}", started, started + dt.timedelta(minutes=20), 1200, "Lost-Carrier"
                     if k % 2 else "User-Request", f"100.64.0.{k + 1}", 1000 * (k + 1), 100 * (k + 1)))
    rows.append((f"{prefix}-live", NOW - dt.timedelta(minutes=5), None, 0, None, "100.64.9.9", 7, 3))
    await conn.executemany("INSERT INTO radius_session_index VALUES ($1, $2)", [(r[0], r[1]) for r in rows])
    await conn.executemany(
        "INSERT INTO radius_sessions (acct_unique_id, started_at, stopped_at, session_time_s, terminate_cause, "
        "framed_ip, input_octets, output_octets, service_id, username, acct_session_id, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6::text::inet, $8, $7, $9, $10, $1, now())",
        [(*r, service_id, login) for r in rows])


def session_ids(page: str) -> list[str]:
    return re.findall(r'<td data-label="Address"><code>(100\.64\.[0-9.]+)</code></td>', page)


async def test_sessions_are_newest_first_paged_and_only_the_customers(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    bob = await portal_customer(admin, login="bob")
    async with admin.pool.acquire() as conn:
        a = await service(conn, anna, "anna-fibre")
        b = await service(conn, bob, "bob-fibre")
        await sessions(conn, a, "anna-fibre", 30, prefix="a")
        await sessions(conn, b, "bob-fibre", 3, prefix="b")
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get(f"/portal/usage?service={a}")
        assert status == 200, body[:500]
        first = session_ids(body)
        assert len(first) == usage.SESSIONS_PAGE
        assert first[0] == "100.64.9.9" and first[1:4] == ["100.64.0.1", "100.64.0.2", "100.64.0.3"]
        words = text(body)
        assert "● online" in words and "You disconnected" in words and "Connection lost" in words
        assert "00:20:00" in words  # the session's time
        # down is what the NAS sent (its output), up what it got
        assert re.search(r'1\.0 kB</td> ?<td data-label="Upload" class="num">100 B', re.sub(r"\s+", " ", body))
        more = re.search(r'href="([^"]*before=[^"#]*)#sessions" rel="next"', body)
        assert more is not None
        status, body = await c.get(html.unescape(more.group(1)))
        assert status == 200
        second = session_ids(body)
        assert second == [f"100.64.0.{k + 1}" for k in range(24, 30)] and not set(first) & set(second)
        assert 'rel="next"' not in body and "Newest sessions" in body
        assert "100.64.9.9" not in second
    async with await portal_login(admin, "bob") as c:
        status, body = await c.get("/portal/usage")
        assert status == 200 and len(session_ids(body)) == 4
        assert (await c.get(f"/portal/usage?service={a}"))[0] == 404


async def test_a_customer_without_services_and_the_vendored_chart(admin: Admin) -> None:  # noqa: F811
    await portal_customer(admin, login="carl")
    async with await portal_login(admin, "carl") as c:
        status, body = await c.get("/portal/usage")
        assert status == 200 and "You have no service yet." in body
        assert (await c.get("/portal/usage/data?service=1&range=days"))[0] == 404
    async with admin.client() as c:  # the chart's files are public, like the portal's stylesheet
        status, js = await c.get("/portal/static/vendor/uPlot-1.6.32.iife.min.js")
        assert status == 200 and "uPlot" in js
        assert (await c.get("/portal/static/vendor/htmx-2.0.11.min.js"))[0] == 404
        assert (await c.get("/portal/static/portal-usage.js"))[0] == 200
        status, _ = await c.get("/portal/usage", allow_redirects=False)
        assert status == 302
        status, _ = await c.get("/portal/usage/data?service=1&range=days", allow_redirects=False)
        assert status == 302


def test_the_windows_and_buckets() -> None:
    m = usage.months(dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC))
    assert (m.last, m.this, m.next) == (dt.datetime(2025, 12, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                                        dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    m = usage.months(dt.datetime(2026, 3, 1, 0, 0, tzinfo=dt.UTC))
    assert (m.last.month, m.this.month, m.next.month) == (2, 3, 4)
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    s = usage.fill(start, 3600, 4, start + dt.timedelta(hours=1, minutes=5),
                   [(start, 5, 1), (start, 5, 1), (start + dt.timedelta(hours=1), 2, 2),
                    (start - dt.timedelta(hours=1), 9, 9)])
    assert s.bytes_down == [10, 2, None, None] and s.bytes_up == [2, 2, None, None]
    assert (s.total_down, s.total_up) == (12, 4)
    at = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
    assert usage.decode_cursor(usage.encode_cursor(at, "x-1")) == (at, "x-1")
    assert usage.cause("Idle-Timeout") == "Idle for too long" and usage.cause("Some-New-Cause") == "Some new cause"

"""Traffic tables and their SQL functions against a real PostgreSQL: rollups, late rows and the
month total (issue 8), written as flowcollector writes them (flowcollector/store.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import asyncpg

from flowcollector import store

HOUR = 3600


def _hour(t: float) -> int:
    return int(t) // HOUR * HOUR


async def write(conn: asyncpg.Connection, rows: dict[tuple[int, int], list[int]]) -> None:
    async with conn.transaction():
        await store.write_usage(conn, rows, {})


async def raw_by_month(conn: asyncpg.Connection, service: int) -> dict[datetime, tuple[int, int]]:
    rows = await conn.fetch(
        "SELECT date_trunc('month', minute AT TIME ZONE 'UTC') AS m, sum(bytes_down)::bigint AS d, "
        "sum(bytes_up)::bigint AS u FROM traffic_usage WHERE service_id = $1 GROUP BY 1", service)
    return {r["m"]: (r["d"], r["u"]) for r in rows}


async def month_totals(conn: asyncpg.Connection, service: int, months: list[datetime]) -> dict[datetime,
                                                                                                 tuple[int, int]]:
    out = {}
    for m in months:
        row = await conn.fetchrow("SELECT * FROM traffic_month_total($1, $2)", service, m.replace(tzinfo=UTC))
        assert row is not None
        out[m] = (int(row["bytes_down"]), int(row["bytes_up"]))
    return out


async def test_month_total_is_exact_with_late_rows_after_a_rollup(conn: asyncpg.Connection) -> None:
    """Late minute rows for hours already rolled up count at once, and once only, before and
    after the next rollup, even when they are older than the rollup's `since`."""
    now = time.time()
    recent, old = _hour(now) - 2 * HOUR, _hour(now) - 10 * HOUR  # `since` is now - 3 h
    await write(conn, {(1, recent + 60): [1000, 10, 1, 1], (1, old + 120): [500, 5, 1, 1],
                       (1, _hour(now)): [7, 7, 1, 1], (2, recent): [99, 9, 1, 1]})
    await conn.execute("SELECT lastmile_rollup_traffic(now() - interval '10 hours')")
    late = {(1, recent + 600): [153_997_355, 3, 1, 1], (1, old + 180): [40, 4, 1, 1]}
    await write(conn, late)
    assert await conn.fetchval("SELECT count(*) FROM traffic_rollup_dirty") == 2
    raw = await raw_by_month(conn, 1)
    assert await month_totals(conn, 1, list(raw)) == raw  # before the next rollup
    await store.rollup_traffic(conn)  # as flowcollector does
    assert await conn.fetchval("SELECT count(*) FROM traffic_rollup_dirty") == 0
    assert await month_totals(conn, 1, list(raw)) == raw  # after it: not counted twice
    hourly = await conn.fetchval("SELECT bytes_down FROM traffic_usage_hourly WHERE service_id = 1 AND hour = $1",
                                 datetime.fromtimestamp(old, UTC))
    assert hourly == 540  # rolled again although older than `since`
    daily = await conn.fetchval("SELECT sum(bytes_down) FROM traffic_usage_daily WHERE service_id = 1")
    assert daily == 1000 + 500 + 153_997_355 + 40  # the current hour is not rolled yet


async def test_series_by_hour_sees_late_rows(conn: asyncpg.Connection) -> None:
    now = time.time()
    hour = _hour(now) - 5 * HOUR
    await write(conn, {(3, hour + 60): [100, 0, 1, 0]})
    await conn.execute("SELECT lastmile_rollup_traffic(now() - interval '6 hours')")
    await write(conn, {(3, hour + 120): [23, 0, 1, 0]})
    series = await conn.fetch("SELECT bucket, bytes_down FROM traffic_series(3, $1, $2, interval '1 hour')",
                              datetime.fromtimestamp(hour - HOUR, UTC), datetime.fromtimestamp(now, UTC))
    assert [(r["bucket"].timestamp(), r["bytes_down"]) for r in series] == [(hour, 123)]


async def test_a_rollup_never_skips_hours_it_did_not_roll(conn: asyncpg.Connection) -> None:
    """The collector was away for longer than `since` reaches back: the hours in between are
    rolled up when it comes back, not jumped over by the mark."""
    now = time.time()
    await store.rollup_traffic(conn)  # as flowcollector does
    await conn.execute("UPDATE traffic_rollup_state SET rolled_until = $1",
                       datetime.fromtimestamp(_hour(now) - 20 * HOUR, UTC))  # as if it ran 20 h ago
    gap = _hour(now) - 12 * HOUR
    await write(conn, {(4, gap): [321, 0, 1, 0]})
    await store.rollup_traffic(conn)  # as flowcollector does
    assert await conn.fetchval("SELECT bytes_down FROM traffic_usage_hourly WHERE service_id = 4") == 321


async def test_traffic_leaks_says_what_billing_says(conn: asyncpg.Connection) -> None:
    """The query `lastmile flows leaks` and the admin's revenue-leak report read."""
    from tests.integration.radius_env import add_service

    v6 = await add_service(conn, "six", "x", ipv6_prefix="2001:db8:1::/64", status="disabled")
    await add_service(conn, "pd", "x", delegated_ipv6_prefix="2001:db8:2::/56", customer_status="blocked")
    await add_service(conn, "now", "x", ipv4="100.64.0.5")
    dynamic = await add_service(conn, "dyn", "x", status="blocked")
    await conn.execute("INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, username, "
                       "acct_session_id, framed_ip, updated_at) VALUES ('u1', now(), $1, 'dyn', 's1', "
                       "'100.64.0.77', now())", dynamic)
    now = int(time.time()) // 60 * 60
    unknown = {("192.0.2.1", now, "2001:db8:1::9"): [600, 6], ("192.0.2.1", now, "2001:db8:2:ff::1"): [500, 5],
               ("192.0.2.1", now, "100.64.0.5"): [400, 4], ("192.0.2.1", now, "0.0.0.0/0"): [300, 3],
               ("192.0.2.1", now, "100.64.0.200"): [200, 2], ("192.0.2.1", now, None): [10_000, 1],
               ("192.0.2.1", now - 3 * HOUR, "100.64.0.201"): [9_999, 1]}
    async with conn.transaction():
        await store.write_usage(conn, {(dynamic, now): [50, 50, 1, 1], (v6, now): [1, 0, 1, 0]}, unknown,
                                {dynamic: "service_blocked"})
    rows = await store.leaks(conn, datetime.fromtimestamp(now - HOUR, UTC), 100)
    got = [(str(r["address"]), r["login"], r["billing"], int(r["bytes"])) for r in rows]
    assert got == [("2001:db8:1::9", "six", "service_disabled", 600),
                   ("2001:db8:2:ff::1", "pd", "customer_blocked", 500),
                   ("100.64.0.5", "now", "service_active", 400), ("0.0.0.0/0", None, "other_addresses", 300),
                   ("100.64.0.200", None, "no_service", 200), ("100.64.0.77", "dyn", "service_blocked", 100)]
    assert len(await store.leaks(conn, datetime.fromtimestamp(now - HOUR, UTC), 2)) == 2  # the limit

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
    await conn.execute("SELECT lastmile_rollup_traffic(now() - interval '3 hours')")
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
    await conn.execute("SELECT lastmile_rollup_traffic(now() - interval '3 hours')")
    await conn.execute("UPDATE traffic_rollup_state SET rolled_until = $1",
                       datetime.fromtimestamp(_hour(now) - 20 * HOUR, UTC))  # as if it ran 20 h ago
    gap = _hour(now) - 12 * HOUR
    await write(conn, {(4, gap): [321, 0, 1, 0]})
    await conn.execute("SELECT lastmile_rollup_traffic(now() - interval '3 hours')")
    assert await conn.fetchval("SELECT bytes_down FROM traffic_usage_hourly WHERE service_id = 4") == 321

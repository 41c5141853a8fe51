"""radiusd's session upsert against PostgreSQL: the same answer as acct.merge, in any order."""

from datetime import UTC, datetime, timedelta
from itertools import permutations

import asyncpg

from radiusd import acct, store
from radiusd.acct import SessionRecord

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def rec(status: int, seconds: int, octets: int, cause: str | None = None) -> SessionRecord:
    when = (T0 + timedelta(seconds=seconds)).timestamp()
    return SessionRecord("u1", status, when, T0.timestamp(), "ann", "s", 1, 5, "127.0.0.1", None, None, None,
                         "100.64.0.9", None, None, seconds, octets, octets, 1, 1, when if status == 2 else None, cause)


async def test_upsert_matches_merge_in_every_order(conn: asyncpg.Connection) -> None:
    records = [rec(1, 0, 0), rec(3, 300, 5000), rec(2, 900, 9000, "User-Request"), rec(2, 600, 7000, "Lost-Carrier")]
    expected = acct.merge_batch(records)[0]
    for order in permutations(records):
        await conn.execute("TRUNCATE radius_sessions, radius_session_index")
        for r in order:
            async with conn.transaction():
                await store.write_sessions(conn, [r], lease_ttl=600)
        row = await conn.fetchrow("SELECT * FROM radius_sessions")
        assert row is not None
        assert row["stopped_at"].timestamp() == expected.stopped_at == (T0 + timedelta(seconds=600)).timestamp()
        assert row["terminate_cause"] == expected.terminate_cause == "Lost-Carrier"
        assert (row["input_octets"], row["session_time_s"]) == (9000, 900)
        assert row["started_at"] == T0


async def test_changes_report_opened_and_closed_once(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        opened = await store.write_sessions(conn, [rec(1, 0, 0)], lease_ttl=600)
    async with conn.transaction():
        again = await store.write_sessions(conn, [rec(3, 60, 10)], lease_ttl=600)
    async with conn.transaction():
        closed = await store.write_sessions(conn, [rec(2, 120, 20)], lease_ttl=600)
    async with conn.transaction():
        repeat = await store.write_sessions(conn, [rec(2, 120, 20)], lease_ttl=600)
    # Only changes of state come back: the Interim and the repeated Stop return nothing.
    assert [(c.opened, c.closed) for c in opened] == [(True, False)]
    assert again == [] and repeat == []
    assert [(c.opened, c.closed) for c in closed] == [(False, True)]

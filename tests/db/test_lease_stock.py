"""The per-instance address stock (radiusd/leases.py) against PostgreSQL: two holders never share
an address, a dead holder's stock comes back only by expiry, a hand-out becomes a reservation
(or a binding, when the Accounting-Start came first), and stickiness comes first."""

import asyncpg

from radiusd import store
from tests.integration.radius_env import add_service


async def _pool(conn: asyncpg.Connection, network: str) -> int:
    pool_id: int = await conn.fetchval("INSERT INTO ip_pools (name, network) VALUES ('p', $1) RETURNING id", network)
    return pool_id


async def _service(conn: asyncpg.Connection, pool_id: int, login: str) -> int:
    return await add_service(conn, login, "pw", pool_id=pool_id)


async def test_two_holders_never_share_and_the_database_lease_skips_stock(conn: asyncpg.Connection) -> None:
    pool_id = await _pool(conn, "100.97.0.0/29")  # 6 addresses
    a = await store.stock_take(conn, pool_id, "A", 4, 120)
    b = await store.stock_take(conn, pool_id, "B", 4, 120)
    assert len(a) == 4 and len(b) == 2 and not set(a) & set(b)
    service = await _service(conn, pool_id, "s1")
    assert await store.lease(conn, [(pool_id, service, True)], 120) == [None]  # all in stocks: full
    assert await store.stock_take(conn, pool_id, "C", 4, 120) == []
    assert await store.stock_release(conn, "B") == 2
    got = await store.lease(conn, [(pool_id, service, True)], 120)
    assert got[0] in b


async def test_a_dead_holders_stock_returns_only_after_its_expiry(conn: asyncpg.Connection) -> None:
    pool_id = await _pool(conn, "100.97.1.0/30")  # 2 addresses
    taken = await store.stock_take(conn, pool_id, "dead", 2, 120)
    assert await store.expire_leases(conn) == 0  # still held: it may be in an Accept just sent
    assert await store.stock_take(conn, pool_id, "other", 2, 120) == []
    await conn.execute("UPDATE ip_leases SET expires_at = now() - interval '1 second' WHERE holder = 'dead'")
    assert await store.expire_leases(conn) == 2
    assert sorted(await store.stock_take(conn, pool_id, "other", 2, 120)) == sorted(taken)
    # The dead holder's late hand-out record changes nothing: the rows are no longer its own.
    service = await _service(conn, pool_id, "s2")
    assert await store.stock_handed(conn, "dead", [(taken[0], service)], 120, 720) == set()


async def test_a_dead_holders_address_in_use_is_bound_not_freed(conn: asyncpg.Connection) -> None:
    pool_id = await _pool(conn, "100.97.4.0/30")  # 2 addresses
    service = await _service(conn, pool_id, "s4")
    used, spare = await store.stock_take(conn, pool_id, "crashed", 2, 120)
    # The crashed radiusd had sent `used` in an Accept; the NAS's Accounting-Start came to another.
    await conn.execute(
        "INSERT INTO radius_session_index (acct_unique_id, started_at) VALUES ('u4', now());"
        "INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, username, acct_session_id, updated_at, "
        f"framed_ip) VALUES ('u4', (SELECT started_at FROM radius_session_index WHERE acct_unique_id = 'u4'), "
        f"{service}, 's4', 's', now(), '{used}')")
    await conn.execute("UPDATE ip_leases SET expires_at = now() - interval '1 second' WHERE holder = 'crashed'")
    assert await store.expire_leases(conn) == 1  # only the unused one
    row = await conn.fetchrow("SELECT state, service_id, acct_unique_id FROM ip_leases WHERE address = $1::inet", used)
    assert row is not None
    assert tuple(row) == ("bound", service, "u4")
    other = await _service(conn, pool_id, "s5")
    assert await store.lease(conn, [(pool_id, other, True)], 120) == [spare]
    assert await store.lease(conn, [(pool_id, other, True)], 120) == [spare]  # its own reservation again


async def test_hand_out_becomes_reserved_or_bound(conn: asyncpg.Connection) -> None:
    pool_id = await _pool(conn, "100.97.2.0/29")
    s1, s2 = await _service(conn, pool_id, "h1"), await _service(conn, pool_id, "h2")
    a1, a2 = await store.stock_take(conn, pool_id, "A", 2, 120)
    # h2's Accounting-Start reached the database before the hand-out was recorded.
    await conn.execute(
        "INSERT INTO radius_session_index (acct_unique_id, started_at) VALUES ('u2', now());"
        "INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, username, acct_session_id, updated_at, "
        "framed_ip) "
        f"VALUES ('u2', (SELECT started_at FROM radius_session_index WHERE acct_unique_id = 'u2'), {s2}, 'h2', 's', "
        "now(), "
        f"'{a2}')")
    assert await store.stock_handed(conn, "A", [(a1, s1), (a2, s2)], 120, 720) == {a1, a2}
    rows = {r["address"]: r for r in await conn.fetch(
        "SELECT host(address) AS address, state, service_id, acct_unique_id, holder, "
        "expires_at > now() + interval '100 seconds' AS long FROM ip_leases WHERE pool_id = $1 AND state <> 'free'",
        pool_id)}
    assert (rows[a1]["state"], rows[a1]["service_id"], rows[a1]["holder"], rows[a1]["long"]) == (
        "reserved", s1, None, True)
    assert (rows[a2]["state"], rows[a2]["acct_unique_id"]) == ("bound", "u2")
    # A reservation whose Start raced its recording is bound at expiry, not freed.
    await conn.execute("UPDATE ip_leases SET state = 'reserved', acct_unique_id = NULL, "
                       "expires_at = now() - interval '1 second' WHERE address = $1::inet", a2)
    await store.expire_leases(conn)
    assert await conn.fetchval("SELECT state FROM ip_leases WHERE address = $1::inet", a2) == "bound"


async def test_stock_takes_addresses_no_service_had_first(conn: asyncpg.Connection) -> None:
    pool_id = await _pool(conn, "100.97.3.0/29")  # 6 addresses
    service = await _service(conn, pool_id, "st")
    (previous,) = await store.lease(conn, [(pool_id, service, False)], 120)
    await conn.execute("UPDATE ip_leases SET state = 'free', expires_at = NULL, updated_at = now() - interval '1 day' "
                       "WHERE address = $1::inet", previous)  # the longest free, but the service's own
    taken = await store.stock_take(conn, pool_id, "A", 5, 120)
    assert previous not in taken
    assert await store.previous_addresses(conn) == {service: (pool_id, previous)}
    assert await store.lease(conn, [(pool_id, service, False)], 120) == [previous]

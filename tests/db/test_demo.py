import ipaddress

import asyncpg

from daemons import demo


async def test_demo_data_is_realistic_and_consistent(conn: asyncpg.Connection) -> None:
    assert not await demo.has_customers(conn)
    assert await demo.load(conn, 2000, seed=7) == 2000
    assert await demo.has_customers(conn)
    assert await conn.fetchval("SELECT count(*) FROM customers") == 2000
    assert await conn.fetchval("SELECT count(*) FROM services") == 2000
    speeds = await conn.fetch("SELECT download_kbps, upload_kbps FROM tariffs ORDER BY download_kbps")
    assert (speeds[0]["download_kbps"], speeds[0]["upload_kbps"]) == (5000, 1000)
    assert (speeds[-1]["download_kbps"], speeds[-1]["upload_kbps"]) == (1000000, 100000)
    ips = [r["ipv4"] for r in await conn.fetch("SELECT ipv4 FROM services WHERE ipv4 IS NOT NULL")]
    assert 1000 < len(ips) < 1400
    assert all(ip in ipaddress.IPv4Network("100.64.0.0/10") and int(ip) & 0xFF not in (0, 255) for ip in ips)
    statuses = {r["status"]: r["count"] for r in await conn.fetch("SELECT status, count(*) FROM customers GROUP BY 1")}
    assert statuses["active"] > 1800 and statuses["blocked"] > 20
    nas = await conn.fetchrow("SELECT address, secret FROM nas")
    assert nas is not None
    assert str(nas["address"]) == "127.0.0.1/32" and len(nas["secret"]) >= 16
    # A second load adds more customers and keeps every address unique.
    await demo.load(conn, 500, seed=8)
    assert await conn.fetchval("SELECT count(*) FROM customers") == 2500
    assert await conn.fetchval("SELECT count(DISTINCT ipv4) = count(ipv4) FROM services")
    assert await conn.fetchval("SELECT count(DISTINCT delegated_ipv6_prefix) FROM services") == 2500

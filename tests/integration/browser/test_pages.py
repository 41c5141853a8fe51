"""Every main page, as a super administrator over the demo data (plus some sessions, logins and
traffic): each answers 200, has its <h1>, logs no error in the browser, and leaves a screenshot in
var/screenshots/ (the issue's "screenshots of the main pages kept as test artefacts").

Menu entries not listed here are visited too, so a new area's pages are covered by this test
from the day they join the menu."""

from __future__ import annotations

import re

import asyncpg

from daemons import demo
from tests.integration.admin.conftest import make_admin
from tests.integration.browser.conftest import Tab

# (screenshot name, path): {customer}, {service}, {tariff}, {router}, {nas}, {pool} are demo rows' ids.
PAGES = [
    ("dashboard", "/admin/"),
    ("customers", "/admin/customers"),
    ("customer", "/admin/customers/{customer}"),
    ("service", "/admin/services/{service}"),
    ("service-traffic", "/admin/services/{service}/traffic"),
    ("search", "/admin/search?q=Vienna&go=1"),
    ("tariffs", "/admin/tariffs"),
    ("tariff", "/admin/tariffs/{tariff}"),
    ("nas", "/admin/nas"),
    ("nas-one", "/admin/nas/{nas}"),
    ("routers", "/admin/routers"),
    ("router", "/admin/routers/{router}"),
    ("ip-pools", "/admin/ip-pools"),
    ("ip-pool", "/admin/ip-pools/{pool}"),
    ("flow-exporters", "/admin/flow-exporters"),
    ("sessions", "/admin/sessions"),
    ("session-history", "/admin/sessions/history"),
    ("auth-log", "/admin/sessions/auth-log"),
    ("traffic-leaks", "/admin/traffic/leaks"),
    ("administrators", "/admin/administrators"),
    ("roles", "/admin/roles"),
    ("api-keys", "/admin/api-keys"),
    ("operations-log", "/admin/operations-log"),
    ("custom-fields", "/admin/custom-fields"),
    ("settings", "/admin/settings"),
    ("api-docs", "/api/v1/docs"),
]

TALL = {"api-docs"}  # tens of thousands of pixels long: the first screen tells enough


async def activity(conn: asyncpg.Connection) -> dict[str, int]:
    """Sessions (5 online, 5 ended), logins (accepts and rejects), two hours of traffic for one
    service and unknown traffic, over the demo's rows; the ids the pages' paths need."""
    ids: dict[str, int] = {
        "customer": await conn.fetchval("SELECT min(customer_id) FROM services WHERE ipv4 IS NOT NULL"),
        "tariff": await conn.fetchval("SELECT min(id) FROM tariffs"),
        "router": await conn.fetchval("SELECT min(id) FROM routers"),
        "nas": await conn.fetchval("SELECT min(id) FROM nas"),
        "pool": await conn.fetchval("SELECT min(id) FROM ip_pools"),
    }
    ids["service"] = await conn.fetchval("SELECT min(id) FROM services WHERE customer_id = $1", ids["customer"])
    services = await conn.fetch("SELECT id, login, host(ipv4) AS ip FROM services WHERE ipv4 IS NOT NULL "
                                "ORDER BY id LIMIT 10")
    for i, s in enumerate(services):
        uid = f"demo-{i}"
        await conn.execute("INSERT INTO radius_session_index VALUES ($1, now() - make_interval(hours => $2))",
                           uid, i + 1)
        ended = i >= 5
        await conn.execute(
            "INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, nas_id, username, acct_session_id, "
            "nas_address, framed_ip, calling_station_id, updated_at, stopped_at, session_time_s, input_octets, "
            "output_octets, terminate_cause) "
            "SELECT $1, started_at, $2, $3, $4, $1, '127.0.0.1', $5::inet, $6, now(), CASE WHEN $7 THEN now() END, "
            "$8, $9, $10, CASE WHEN $7 THEN 'User-Request' END FROM radius_session_index WHERE acct_unique_id = $1",
            uid, s["id"], ids["nas"], s["login"], s["ip"], f"AA:BB:CC:00:00:{i:02X}", ended, 3600 * (i + 1),
            10**8 * (i + 1), 10**9 * (i + 1))
        await conn.execute(
            "INSERT INTO radius_postauth (at, username, service_id, nas_id, result, reason, framed_ip) VALUES "
            "(now() - make_interval(mins => $1), $2, $3, $4, $5, $6, $7::inet)",
            i * 7, s["login"], s["id"], ids["nas"], "reject" if i % 3 == 2 else "accept",
            "wrong password" if i % 3 == 2 else "ok", s["ip"])
    await conn.execute(
        "INSERT INTO traffic_usage (service_id, minute, bytes_down, bytes_up, packets_down, packets_up) "
        "SELECT $1, date_trunc('minute', now()) - make_interval(mins => m), 2e7 + 1e7 * sin(m / 9.0), "
        "2e6 + 1e6 * cos(m / 7.0), 2e4, 3e3 FROM generate_series(0, 119) AS m", ids["service"])
    await conn.execute(
        "INSERT INTO traffic_unknown (exporter, minute, bytes, packets, address) "
        "SELECT '127.0.0.1', date_trunc('minute', now()) - make_interval(mins => m), 5e6, 4e3, "
        "('100.64.250.' || (m % 4 + 1))::inet FROM generate_series(0, 29) AS m")
    return ids


async def test_every_main_page_renders(conn: asyncpg.Connection, tab: Tab) -> None:
    await make_admin(conn, "root")
    await demo.load(conn, 30, seed=1)
    ids = await activity(conn)
    await tab.login("root")
    menu = {href for href in await tab.page.locator("nav.side a").evaluate_all("as => as.map(a => a.pathname)")}
    pages = [(name, path.format(**ids)) for name, path in PAGES]
    listed = {path.split("?")[0] for _, path in pages}
    pages += [("menu-" + re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-"), p) for p in sorted(menu - listed)]
    for name, path in pages:
        await tab.goto(path)
        heading = tab.page.locator("h1").first
        await heading.wait_for()
        assert (await heading.inner_text()).strip(), f"{path}: an empty <h1>"
        assert tab.unexpected() == [], f"{path}: {tab.unexpected()}"
        await tab.shot(name, full_page=name not in TALL)
    assert menu <= {path.split("?")[0] for _, path in pages}

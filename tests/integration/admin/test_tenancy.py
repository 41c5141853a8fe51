"""Tenant isolation: an administrator or API key scoped to partner A never sees partner B's
customers, services or sessions (another partner's row is "not found", 404, never 403), and a
Customer creator sees only the customers it created. The routes are taken from the app, so a
customer or service route added later is covered too."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
import pytest

from admin.web import PERMISSIONS
from daemons import demo
from tests.integration.admin.conftest import Admin, Client, api_key, make_admin

MISSING = 999999999


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of ``pool``, typed as the helpers (conftest's make_admin) take it."""
    async with pool.acquire() as conn:
        yield cast(asyncpg.Connection, conn)


@dataclass
class Tenant:
    partner_id: int
    customers: list[int]
    services: list[int]
    names: list[str]
    logins: list[str]
    ips: list[str]
    macs: list[str]
    emails: list[str]
    phones: list[str]
    numbers: list[str]
    session: str              # acct_unique_id of a live session of its first service
    session_ip: str


async def add_tenant(conn: asyncpg.Connection, partner_id: int, tag: str, n: int) -> Tenant:
    """Three customers of ``partner_id`` named "<Tag> Tenantvale <i>", each with a service and a
    static address, a MAC, an email, a phone; a live session on the first service."""
    tariff = await conn.fetchval("SELECT min(id) FROM tariffs")
    t = Tenant(partner_id, [], [], [], [], [], [], [], [], [], f"acct-{tag}", f"203.0.113.{n}")
    for i, status in enumerate(("active", "blocked", "new"), start=1):
        name = f"{tag.title()} Tenantvale {i}"
        number, email, phone = f"T{tag[0].upper()}{i:05d}", f"{tag}{i}@tenant.example", f"+43 1 55{n}{i:04d}"
        cid = await conn.fetchval(
            "INSERT INTO customers (partner_id, number, name, email, phone, street, city, status) "
            "VALUES ($1, $2, $3, $4, $5, $6, 'Tenantburg', $7) RETURNING id",
            partner_id, number, name, email, phone, f"{tag.title()}gasse {i}", status)
        login, ip, mac = f"{tag}-login-{i}", f"198.51.100.{n * 10 + i}", f"02:00:00:00:{n:02x}:{i:02x}"
        sid = await conn.fetchval(
            "INSERT INTO services (customer_id, tariff_id, login, password, ipv4, mac) "
            "VALUES ($1, $2, $3, 'pw-secret', $4::inet, $5::macaddr) RETURNING id", cid, tariff, login, ip, mac)
        t.customers.append(cid)
        t.services.append(sid)
        t.names.append(name)
        t.logins.append(login)
        t.ips.append(ip)
        t.macs.append(mac)
        t.emails.append(email)
        t.phones.append(phone)
        t.numbers.append(number)
    await conn.execute(
        "INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, username, acct_session_id, framed_ip, "
        "updated_at) VALUES ($1, now() - interval '5 minutes', $2, $3, $1, $4::inet, now())",
        t.session, t.services[0], t.logins[0], t.session_ip)
    return t


@dataclass
class World:
    admin: Admin
    a: Tenant
    b: Tenant
    alpha: Client            # an administrator (Super administrator's role) scoped to partner A
    root: Client             # an unscoped Super administrator
    key: str                 # an API key (Super administrator's role) scoped to A
    root_key: str


@pytest.fixture
async def world(admin: Admin) -> Any:
    async with connection(admin.pool) as conn:
        await demo.load(conn, 20, seed=1)
        a_id = await conn.fetchval("SELECT id FROM partners WHERE name = 'Demo ISP'")
        b_id = await conn.fetchval("INSERT INTO partners (name) VALUES ('Other ISP') RETURNING id")
        a = await add_tenant(conn, a_id, "alpha", 1)
        b = await add_tenant(conn, b_id, "bravo", 2)
        await make_admin(conn, "alpha", "super", partner_id=a_id)
        await make_admin(conn, "root", "super")
        key = await api_key(conn, "super", partner_id=a_id)
        root_key = await api_key(conn, "super")
    async with admin.client() as alpha, admin.client() as root:
        for c, login in ((alpha, "alpha"), (root, "root")):
            status, _, url = await c.login(login)
            assert status == 200 and url.endswith("/admin/")
            await c.get("/admin/profile")
        yield World(admin, a, b, alpha, root, key, root_key)


async def call(c: Client, method: str, path: str, *, key: str | None = None, json_body: Any = None,
               form: dict[str, str] | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {"X-CSRF-Token": c.csrf}
    kw: dict[str, Any] = {}
    if json_body is not None:
        kw["data"] = json.dumps(json_body)
        headers["Content-Type"] = "application/json"
    elif form is not None:
        kw["data"] = form
    async with c.session.request(method, c.url + path, headers=headers, allow_redirects=False, **kw) as r:
        return r.status, (await r.read()).decode(errors="replace")  # (a statement's PDF is no text)


_ROW = re.compile(r"^/(admin|api/v1)/(customers|services|sessions)/\{\w+\}")


def b_routes(world: World) -> list[tuple[str, str]]:
    """(method, declared path) of every route about one customer, service or session."""
    out = []
    for route in world.admin.app.router.routes():
        if route.handler in PERMISSIONS and route.resource is not None:
            path = route.resource.canonical
            m = _ROW.match(path)
            if m is not None:
                assert "{" not in path[m.end():], f"{path}: a second parameter this test does not fill"
                out.append((route.method, path))
    return out


def fill(path: str, customer: int, service: int, session: str) -> str:
    """The declared ``path`` with the row's id (by what the path is about)."""
    m = _ROW.match(path)
    assert m is not None
    value = {"customers": str(customer), "services": str(service), "sessions": session}[m.group(2)]
    return f"/{m.group(1)}/{m.group(2)}/{value}" + path[m.end():]


async def snapshot(conn: asyncpg.Pool, partner_id: int) -> list[str]:
    return [r[0] for r in await conn.fetch(
        "SELECT row_to_json(c)::text || coalesce((SELECT json_agg(s ORDER BY s.id)::text FROM services s "
        "WHERE s.customer_id = c.id), '') FROM customers c WHERE c.partner_id = $1 ORDER BY c.id", partner_id)]


async def test_another_partners_rows_are_not_found(world: World) -> None:
    routes = b_routes(world)
    for must in (("GET", "/admin/customers/{id}"), ("GET", "/admin/services/{id}"),
                 ("GET", "/api/v1/customers/{id}"), ("GET", "/api/v1/services/{id}"),
                 ("PATCH", "/api/v1/customers/{id}"), ("DELETE", "/api/v1/customers/{id}")):
        assert must in routes, must
    before = await snapshot(world.admin.pool, world.b.partner_id)
    wrong = []
    for method, declared in routes:
        path = fill(declared, world.b.customers[0], world.b.services[0], world.b.session)
        api = path.startswith("/api/")
        unsafe = method != "GET"
        body: dict[str, Any] | None = {} if api and method in ("POST", "PATCH", "PUT") else None
        key = world.key if api else None
        status, text = await call(world.alpha, method, path, key=key, json_body=body)
        # An empty body may be refused (422) before the row is looked for: then exactly as for a row
        # that does not exist, which tells nothing. (The next test sends well-formed ones.)
        expected = {404}
        if unsafe:
            missing = fill(declared, MISSING, MISSING, "no-such-session")
            expected |= {(await call(world.alpha, method, missing, key=key, json_body=body))[0]} & {422}
        if status not in expected:
            who = "key" if api else "administrator"
            wrong.append(f"{method} {declared} as A's {who}: {status} (expected {expected}) {text[:100]}")
        if not unsafe:  # the same request unscoped finds it: the 404 is the scope's
            status, _ = await call(world.root, method, path, key=world.root_key if api else None)
            if status == 404 or status >= 500:
                wrong.append(f"{method} {declared} unscoped: {status}")
    assert wrong == [], "\n".join(wrong)
    assert await snapshot(world.admin.pool, world.b.partner_id) == before
    assert await world.admin.pool.fetchval("SELECT count(*) FROM operations_log") == 0


async def test_well_formed_changes_to_another_partners_rows_are_not_found(world: World) -> None:
    """Not only empty bodies: a valid change of B's row is refused as not found, and changes nothing."""
    b_customer, b_service = world.b.customers[0], world.b.services[0]
    before = await snapshot(world.admin.pool, world.b.partner_id)
    await world.alpha.get(f"/admin/customers/{world.a.customers[0]}/edit")  # (its CSRF token)
    form = {"name": "Taken Over", "category": "person", "email": "x@evil.example", "_csrf": world.alpha.csrf}
    attempts = [
        ("POST", f"/admin/customers/{b_customer}/edit", form, None),
        ("POST", f"/admin/customers/{b_customer}/status", {"action": "block", "_csrf": world.alpha.csrf}, None),
        ("POST", f"/admin/customers/{b_customer}/delete", {"_csrf": world.alpha.csrf}, None),
        ("POST", f"/admin/services/{b_service}/edit", {"login": "taken", "password": "taken-over-1",
                                                       "_csrf": world.alpha.csrf}, None),
        ("PATCH", f"/api/v1/customers/{b_customer}", None, {"name": "Taken Over"}),
        ("POST", f"/api/v1/customers/{b_customer}/status", None, {"action": "block"}),
        ("DELETE", f"/api/v1/customers/{b_customer}", None, None),
        ("PATCH", f"/api/v1/services/{b_service}", None, {"password": "taken-over-1"}),
        ("POST", f"/api/v1/customers/{b_customer}/services", None, {
            "tariff_id": await world.admin.pool.fetchval("SELECT min(id) FROM tariffs"), "login": "intruder",
            "password": "intruder-pass"}),
    ]
    for method, path, form_body, json_body in attempts:
        api = path.startswith("/api/")
        status, text = await call(world.alpha, method, path, key=world.key if api else None, json_body=json_body,
                                  form=form_body)
        assert status == 404, (method, path, status, text[:200])
    # Creating a customer for partner B, named in the body, is refused (or the customer is A's).
    status, text = await call(world.alpha, "POST", "/api/v1/customers", key=world.key,
                              json_body={"name": "Planted", "partner_id": world.b.partner_id})
    assert status in (404, 422) or (status == 201 and json.loads(text)["partner_id"] == world.a.partner_id), text
    assert await snapshot(world.admin.pool, world.b.partner_id) == before
    assert await world.admin.pool.fetchval("SELECT count(*) FROM services WHERE login = 'intruder'") == 0


async def test_lists_show_only_the_partners_rows(world: World) -> None:
    a_total = await world.admin.pool.fetchval(
        "SELECT count(*) FROM customers WHERE partner_id = $1 AND status <> 'deleted'", world.a.partner_id)
    status, body = await world.alpha.get("/admin/customers")
    assert status == 200
    assert all(name in body for name in world.a.names)
    assert not any(name in body for name in world.b.names)
    assert "Other ISP" not in body
    for query in (f"?partner_id={world.b.partner_id}", "?q=Bravo", "?q=Tenantvale", "?status=blocked",
                  f"?partner_id={world.b.partner_id}&format=csv", "?format=csv"):
        status, body = await world.alpha.get("/admin/customers" + query)
        assert status in (200, 422) and not any(n in body for n in world.b.names), query
    status, body = await world.root.get("/admin/customers?q=Tenantvale")  # the control: unscoped sees both
    assert status == 200 and all(n in body for n in world.a.names + world.b.names)

    seen: list[dict[str, Any]] = []
    async with world.alpha.session.get(world.admin.url + "/api/v1/customers?limit=500",
                                       headers={"Authorization": f"Bearer {world.key}"}) as r:
        assert r.status == 200
        seen = (await r.json())["items"]
    assert len(seen) == a_total and {c["partner_id"] for c in seen} == {world.a.partner_id}
    for query in (f"partner_id={world.b.partner_id}", "q=bravo"):
        async with world.alpha.session.get(world.admin.url + "/api/v1/customers?" + query,
                                           headers={"Authorization": f"Bearer {world.key}"}) as r:
            assert r.status in (200, 422), query
            if r.status == 200:
                assert (await r.json())["items"] == [], query


async def test_the_search_box_finds_only_the_partners_rows(world: World) -> None:
    wrong = []
    for tenant, visible in ((world.a, True), (world.b, False)):
        queries = [tenant.names[0], tenant.logins[0], tenant.ips[0], tenant.macs[0], tenant.emails[0],
                   tenant.phones[0], tenant.numbers[0], tenant.session_ip]
        for q in queries:
            status, body = await world.alpha.get("/admin/search", params={"q": q, "go": "1"})
            # (The page repeats the query in its search box: look for the hits' links, not the names.)
            found_page = status == 200 and any(f'href="/admin/customers/{c}"' in body for c in tenant.customers)
            async with world.alpha.session.get(world.admin.url + "/api/v1/search", params={"q": q},
                                               headers={"Authorization": f"Bearer {world.key}"}) as r:
                hits = await r.json() if r.status == 200 else []
                if status != 200 or r.status != 200:
                    wrong.append(f"{q!r}: page {status}, API {r.status}")
            found_api = any(h["customer_id"] in tenant.customers for h in hits)
            if found_page != visible or found_api != visible:
                wrong.append(f"{q!r} ({'A' if visible else 'B'}): page found={found_page}, API found={found_api}")
            if not visible:
                assert not any(h["customer_id"] in world.b.customers for h in hits)
    assert wrong == [], "\n".join(wrong)
    # The control: an unscoped administrator finds B's.
    status, body = await world.root.get("/admin/search", params={"q": world.b.ips[0], "go": "1"})
    assert status == 200 and f'href="/admin/customers/{world.b.customers[0]}"' in body


def figures(body: str) -> dict[str, int]:
    return {label: int(n) for n, label in re.findall(r'<div class="n">(\d+)</div><div class="l">([^<]+)</div>', body)}


async def test_the_dashboard_counts_only_the_partners_customers(world: World) -> None:
    counts = {r["status"]: r["count"] for r in await world.admin.pool.fetch(
        "SELECT status, count(*) FROM customers WHERE partner_id = $1 GROUP BY status", world.a.partner_id)}
    everyone = {r["status"]: r["count"] for r in await world.admin.pool.fetch(
        "SELECT status, count(*) FROM customers GROUP BY status")}
    status, body = await world.alpha.get("/admin/")
    assert status == 200
    got = figures(body)
    for s in ("active", "blocked", "new"):
        assert got[s] == counts.get(s, 0), (s, got)
    assert got["sessions online"] == 1  # A's one live session, not B's
    status, body = await world.root.get("/admin/")
    got = figures(body)
    assert got["active"] == everyone["active"] and got["sessions online"] == 2


async def test_sessions_of_another_partner_are_not_listed(world: World) -> None:
    routes = [r for r in world.admin.app.router.routes() if r.handler in PERMISSIONS and r.method == "GET"
              and r.resource is not None and r.resource.canonical in ("/admin/sessions", "/api/v1/sessions")]
    assert len(routes) == 2
    status, body = await world.alpha.get("/admin/sessions")
    assert status == 200 and world.a.logins[0] in body and world.b.logins[0] not in body
    async with world.alpha.session.get(world.admin.url + "/api/v1/sessions",
                                       headers={"Authorization": f"Bearer {world.key}"}) as r:
        assert r.status == 200
        text = await r.text()
    assert world.a.logins[0] in text and world.b.logins[0] not in text and world.b.session_ip not in text


# --- the Customer creator ---------------------------------------------------------------------------------

async def test_a_customer_creator_sees_only_its_own_customers(world: World) -> None:
    pool = world.admin.pool
    async with connection(pool) as conn:
        maker = await make_admin(conn, "maker", "creator")
        mine = world.a.customers[:2]
        await conn.execute("UPDATE customers SET created_by = $1 WHERE id = ANY($2::bigint[])", maker, mine)
        others = [c for c in world.a.customers + world.b.customers if c not in mine]
        own_services = await conn.fetch("SELECT id FROM services WHERE customer_id = ANY($1::bigint[])", mine)
        other_services = await conn.fetch("SELECT id FROM services WHERE customer_id = ANY($1::bigint[])", others)
    async with world.admin.client() as c:
        await c.login("maker")
        status, body = await c.get("/admin/customers")
        assert status == 200
        assert world.a.names[0] in body and world.a.names[1] in body
        assert world.a.names[2] not in body and not any(n in body for n in world.b.names)
        assert body.count('<tr><td class="mono">') == 2
        for cid in mine:
            assert (await c.get(f"/admin/customers/{cid}"))[0] == 200
        for cid in others:
            assert (await c.get(f"/admin/customers/{cid}"))[0] == 404
        for r in own_services:
            assert (await c.get(f"/admin/services/{r['id']}"))[0] == 200
        for r in other_services:
            assert (await c.get(f"/admin/services/{r['id']}"))[0] == 404
        status, body = await c.get("/admin/search", params={"q": "Tenantvale", "go": "1"})
        assert status == 200 and world.a.names[0] in body and world.a.names[2] not in body
        status, body = await c.get("/admin/search", params={"q": world.a.ips[2], "go": "1"})
        assert status == 200 and world.a.names[2] not in body
        status, body = await c.get("/admin/")
        got = figures(body)
        assert (got["active"], got["blocked"], got["new"]) == (1, 1, 0)
        assert got["sessions online"] == 1  # its first customer's
        # What it creates is its own.
        status, body = await c.get("/admin/customers/new")
        assert status == 200
        status, body, url = await c.post("/admin/customers/new", {
            "name": "Made By Maker", "category": "person", "partner_id": str(world.a.partner_id)})
        assert status == 200 and "Made By Maker" in body, (url, body[:500])
    assert await pool.fetchval("SELECT created_by FROM customers WHERE name = 'Made By Maker'") == maker


async def test_an_api_key_of_the_customer_creator_role_sees_no_others_customers(world: World) -> None:
    """A key is no administrator: it created no customer, so a "own customers only" role's key must
    not see everyone's (it sees none)."""
    async with connection(world.admin.pool) as conn:
        key = await api_key(conn, "creator")
    async with world.alpha.session.get(world.admin.url + "/api/v1/customers",
                                       headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 200
        assert (await r.json())["items"] == []
    status, _ = await call(world.alpha, "GET", f"/api/v1/customers/{world.a.customers[0]}", key=key)
    assert status == 404
    status, _ = await call(world.alpha, "GET", f"/api/v1/customers/{MISSING}", key=key)
    assert status == 404

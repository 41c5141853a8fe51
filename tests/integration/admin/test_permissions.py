"""Every route declares its permission, and the permission matrix holds: every built-in role x
every route, pages and API alike, derived from admin.auth.permissions.BUILTIN and
admin.web.PERMISSIONS (so a route an area adds later is covered without editing this file)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from admin.app import create_app
from admin.auth import tokens
from admin.auth.permissions import ALL, BUILTIN, SUPER, effective
from admin.settings import AdminSettings
from admin.web import LOGGED_IN, PERMISSIONS, PORTAL, PORTAL_PUBLIC, PUBLIC, SECOND_FACTOR, SIGNED
from daemons import db
from daemons.config import DatabaseSettings
from daemons.secrets import Keyring
from tests.conftest import free_port
from tests.integration.admin.conftest import Admin, Client, api_key, make_admin

MISSING_ID = "999999999"
SPECIAL = (PUBLIC, LOGGED_IN, SECOND_FACTOR, SIGNED)
#: Served by address (the middleware's [admin] metrics_allow), not by a login: no declared permission.
BY_ADDRESS = {("GET", "/metrics")}
LAST = {("POST", "/admin/logout")}  # it ends the session the other requests reuse


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of ``pool``, typed as the helpers (conftest's make_admin) take it."""
    async with pool.acquire() as conn:
        yield cast(asyncpg.Connection, conn)


@dataclass(frozen=True)
class Route:
    method: str
    path: str          # as declared: /admin/customers/{id}
    permission: str

    @property
    def url(self) -> str:
        """The path with every parameter an id that does not exist."""
        return re.sub(r"\{[^}]+\}", MISSING_ID, self.path)

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


def undeclared(app: web.Application) -> list[tuple[str, str]]:
    """The routes of ``app`` without a declared permission (static files and HEAD aside)."""
    out = []
    for route in app.router.routes():
        if route.method == "HEAD" or isinstance(route.resource, web.StaticResource):
            continue
        assert route.resource is not None
        path = route.resource.canonical
        if route.handler not in PERMISSIONS and (route.method, path) not in BY_ADDRESS:
            out.append((route.method, path))
    return out


def declared(app: web.Application, *, portal: bool = False) -> list[Route]:
    """The admin's and the API's routes (``portal``: the customer portal's instead, PORTAL_*: behind
    the portal's own login, tests/integration/portal/)."""
    routes = []
    for route in app.router.routes():
        if route.handler in PERMISSIONS and route.resource is not None and \
                (PERMISSIONS[route.handler] in PORTAL) == portal:
            routes.append(Route(route.method, route.resource.canonical, PERMISSIONS[route.handler]))
    assert len({(r.method, r.path) for r in routes}) == len(routes)
    return sorted(routes, key=lambda r: ((r.method, r.path) in LAST, r.path, r.method))


# --- (a) every route declares -----------------------------------------------------------------------------

def test_every_route_of_the_admin_declares_its_permission() -> None:
    app = create_app(AdminSettings(), Keyring(os.urandom(32)))
    assert undeclared(app) == []
    routes = declared(app)
    assert {("GET", "/admin/login"), ("POST", "/admin/login"), ("GET", "/admin/")} <= {(r.method, r.path)
                                                                                        for r in routes}
    for r in routes:
        assert r.permission in ALL or r.permission in SPECIAL, r
        assert r.path.startswith(("/admin", "/api/v1/", "/hooks/")), r
        assert (r.permission == SIGNED) == r.path.startswith("/hooks/"), r  # a webhook proves itself, nothing else does
        if r.permission == PUBLIC:  # few, and nothing that shows or changes data
            assert r.path in ("/admin/login", "/api/v1/openapi.json", "/api/v1/docs"), r
        if r.permission == SECOND_FACTOR:
            assert r.path == "/admin/login/code", r
        if r.permission == LOGGED_IN:
            assert r.path.startswith(("/admin/profile", "/admin/logout")), r
    portal = declared(app, portal=True)
    assert {("GET", "/portal/login"), ("POST", "/portal/login")} <= {(r.method, r.path) for r in portal}
    for r in portal:  # the customer portal's pages are its own, and only they are (and / : a redirect)
        assert r.path.startswith("/portal/") or (r.path, r.permission) == ("/", PORTAL_PUBLIC), r


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    port = free_port()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def test_a_route_added_without_a_permission_is_refused_with_500(db_url: str) -> None:
    pool = await db.create_pool(DatabaseSettings(), db_url, max_size=2)
    app = create_app(AdminSettings(), Keyring(os.urandom(32)), pool=pool)

    async def secret(_: web.Request) -> web.StreamResponse:
        return web.Response(text="the secret page")

    app.router.add_get("/admin/forgotten", secret)
    app.router.add_post("/admin/forgotten", secret)
    app.router.add_get("/api/v1/forgotten", secret)
    app.router.add_get("/elsewhere", secret)
    assert sorted(undeclared(app)) == [("GET", "/admin/forgotten"), ("GET", "/api/v1/forgotten"),
                                       ("GET", "/elsewhere"), ("POST", "/admin/forgotten")]
    runner, url = await serve(app)
    try:
        async with connection(pool) as conn:
            await make_admin(conn, "root")
            key = await api_key(conn, SUPER)
        async with Client(url) as anonymous, Client(url) as root:
            await root.login("root")
            for c in (anonymous, root):
                for method, path in (("GET", "/admin/forgotten"), ("GET", "/elsewhere"), ("GET", "/api/v1/forgotten"),
                                     ("POST", "/admin/forgotten")):
                    async with c.session.request(method, url + path, allow_redirects=False, headers={
                            "X-CSRF-Token": c.csrf, "Authorization": f"Bearer {key}"}) as r:
                        body = await r.text()
                        assert r.status == 500 and "the secret page" not in body, (method, path, r.status)
    finally:
        await runner.cleanup()
        await pool.close()


async def test_metrics_is_served_by_address_only(db_url: str) -> None:
    """The one route without a permission: the middleware serves it to [admin] metrics_allow only."""
    pool = await db.create_pool(DatabaseSettings(), db_url, max_size=2)
    try:
        for allow, status in (("192.0.2.0/24", 403), ("127.0.0.0/8", 200)):
            runner, url = await serve(create_app(AdminSettings(metrics_allow=allow), Keyring(os.urandom(32)),
                                                 pool=pool))
            try:
                async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
                    assert r.status == status, allow
            finally:
                await runner.cleanup()
    finally:
        await pool.close()


# --- (b) the matrix ---------------------------------------------------------------------------------------

@pytest.fixture
async def everyone(admin: Admin) -> AsyncIterator[dict[str, tuple[Client, str]]]:
    """For each built-in role: a logged-in administrator's client (its CSRF token read) and an API key."""
    out: dict[str, tuple[Client, str]] = {}
    async with connection(admin.pool) as conn:
        for b in BUILTIN:
            await make_admin(conn, f"role-{b.key}", b.key)
            out[b.key] = (admin.client(), await api_key(conn, b.key))
    try:
        for b in BUILTIN:
            c = out[b.key][0]
            status, _, url = await c.login(f"role-{b.key}")
            assert status == 200 and url.endswith("/admin/"), (b.key, status, url)
            await c.get("/admin/profile")
            assert c.csrf
        yield out
    finally:
        for c, _ in out.values():
            await c.__aexit__()


async def request(c: Client, route: Route, headers: dict[str, str]) -> tuple[int, str]:
    async with c.session.request(route.method, c.url + route.url, headers=headers, allow_redirects=False) as r:
        await r.read()
        return r.status, r.headers.get("Location", "")


async def run_all(routes: list[Route], *, c: Client, headers: dict[str, str]) -> dict[Route, tuple[int, str]]:
    """Every route once (eight at a time; the LAST ones after the others), with ``headers``."""
    gate = asyncio.Semaphore(8)

    async def one(route: Route) -> tuple[int, str]:
        async with gate:
            return await request(c, route, headers)

    first = [r for r in routes if (r.method, r.path) not in LAST]
    results = dict(zip(first, await asyncio.gather(*(one(r) for r in first)), strict=True))
    for r in routes:
        if (r.method, r.path) in LAST:
            results[r] = await one(r)
    return results


def may(role: str, permission: str) -> bool:
    """What BUILTIN says the role may do (a role's rows are BUILTIN's: tests/db/test_admin_roles.py)."""
    if permission in SPECIAL:
        return True
    b = next(b for b in BUILTIN if b.key == role)
    return permission in effective(b.permissions, (), (), super_role=b.key == SUPER)


async def test_the_permission_matrix(admin: Admin, everyone: dict[str, tuple[Client, str]]) -> None:
    routes = declared(admin.app)
    pages = [r for r in routes if not r.api]
    apis = [r for r in routes if r.api]
    assert pages and apis
    wrong: list[str] = []
    for b in BUILTIN:
        c, key = everyone[b.key]
        page_results = await run_all(pages, c=c, headers={"X-CSRF-Token": c.csrf})
        async with Client(admin.url) as bare:
            api_results = await run_all(apis, c=bare, headers={"Authorization": f"Bearer {key}"})
        for route, (status, location) in {**page_results, **api_results}.items():
            allowed = may(b.key, route.permission)
            if status >= 500:
                wrong.append(f"{b.key} {route.method} {route.url}: {status}")
            elif allowed and status == 403:
                wrong.append(f"{b.key} {route.method} {route.url}: 403 though the role has {route.permission}")
            elif not allowed and status != 403:
                wrong.append(f"{b.key} {route.method} {route.url}: {status} though the role lacks {route.permission}")
            elif not route.api and status in (302, 303) and location.startswith("/admin/login?"):
                wrong.append(f"{b.key} {route.method} {route.url}: sent to the login page (session lost?)")
            elif route.api and status == 401:
                wrong.append(f"{b.key} {route.method} {route.url}: 401 with a valid key")
    assert wrong == [], "\n".join(wrong)


async def test_unauthenticated_requests_go_to_the_login_or_get_401(admin: Admin) -> None:
    routes = declared(admin.app)
    wrong: list[str] = []
    async with admin.client() as c:
        await c.get("/admin/login")
        results = await run_all(routes, c=c, headers={})
    for route, (status, location) in results.items():
        if route.permission == PUBLIC:
            if status >= 500 or status == 401 or location.startswith("/admin/login?"):
                wrong.append(f"{route.method} {route.url}: {status} {location} (a public route)")
        elif route.permission == SIGNED:  # a webhook without its signature: refused, never served
            if not 400 <= status < 500:
                wrong.append(f"{route.method} {route.url}: {status} {location} (an unsigned webhook)")
        elif route.api:
            if status != 401:
                wrong.append(f"{route.method} {route.url}: {status}, not 401")
        elif status not in (302, 303) or not location.startswith("/admin/login?next="):
            wrong.append(f"{route.method} {route.url}: {status} {location}, not the login page")
    assert wrong == [], "\n".join(wrong)
    # A key of the wrong shape, an unknown key and a revoked key are all 401 on the API.
    api = next(r for r in routes if r.api and r.permission not in SPECIAL and r.method == "GET")
    async with connection(admin.pool) as conn:
        revoked = await api_key(conn, SUPER)
        await conn.execute("UPDATE api_keys SET revoked_at = now()")
    unknown, _ = tokens.new_api_key()
    async with admin.client() as c:
        for header in ("Bearer nonsense", f"Bearer {unknown}", f"Bearer {revoked}", f"Basic {unknown}", unknown):
            status, _ = await request(c, api, {"Authorization": header})
            assert status == 401, header


async def test_the_portal_without_a_portal_session_is_its_login_or_public(
        admin: Admin, everyone: dict[str, tuple[Client, str]]) -> None:
    """Every portal route, without a session and with an administrator's: a customer's page sends
    to the portal's login (the admin's session is no portal login), a public one is served."""
    routes = declared(admin.app, portal=True)
    c, _ = everyone[SUPER]
    wrong: list[str] = []
    async with Client(admin.url) as bare:
        for who, client in (("nobody", bare), ("super", c)):
            for route, (status, location) in (await run_all(routes, c=client, headers={})).items():
                if status >= 500:
                    wrong.append(f"{who} {route.method} {route.url}: {status}")
                elif route.permission != PORTAL_PUBLIC and (
                        status not in (302, 303) or not location.startswith("/portal/login?next=")) and \
                        not (route.method != "GET" and status == 403):  # (403: a form without its token)
                    wrong.append(f"{who} {route.method} {route.url}: {status} {location}, not the portal login")
    assert wrong == [], "\n".join(wrong)


async def test_an_administrators_grants_and_revokes_change_what_it_may_do(admin: Admin) -> None:
    routes = [r for r in declared(admin.app) if r.method == "GET" and not r.api and "{" not in r.path
              and r.permission not in SPECIAL]
    technician = next(b for b in BUILTIN if b.key == "technician").permissions
    granted = next(r for r in routes if r.permission not in technician)
    revoked = next(r for r in routes if r.permission in technician and r.permission != "dashboard.view")
    async with connection(admin.pool) as conn:
        await make_admin(conn, "tech", "technician", grants=[granted.permission], revokes=[revoked.permission])
        await make_admin(conn, "boss", SUPER, revokes=sorted(ALL))
    async with admin.client() as tech, admin.client() as boss:
        await tech.login("tech")
        await boss.login("boss")
        assert (await request(tech, granted, {}))[0] != 403, granted
        assert (await request(tech, revoked, {}))[0] == 403, revoked
        for r in (granted, revoked):  # a super administrator's revokes take nothing away
            assert (await request(boss, r, {}))[0] != 403, r


async def test_a_role_edited_in_the_database_takes_effect_on_the_next_request(
        admin: Admin, everyone: dict[str, tuple[Client, str]]) -> None:
    route = next(r for r in declared(admin.app) if r.method == "GET" and not r.api and r.permission == "tariffs.view"
                 and "{" not in r.path)
    api = next(r for r in declared(admin.app) if r.method == "GET" and r.api and r.permission == "tariffs.view"
               and "{" not in r.path)
    c, _ = everyone["finance"]
    assert (await request(c, route, {}))[0] == 200
    await admin.pool.execute("UPDATE admin_roles SET permissions = array_remove(permissions, 'tariffs.view') "
                             "WHERE builtin = 'finance'")
    assert (await request(c, route, {}))[0] == 403
    # (An API key's role is cached a few seconds, admin/auth/middleware.py KEY_CACHE_S: a new key sees it at once.)
    async with connection(admin.pool) as conn:
        fresh = await api_key(conn, "finance")
    async with admin.client() as bare:
        assert (await request(bare, api, {"Authorization": f"Bearer {fresh}"}))[0] == 403


async def test_a_session_does_not_open_the_api_nor_a_key_the_pages(
        admin: Admin, everyone: dict[str, tuple[Client, str]]) -> None:
    """The API takes keys only (a browser's cookie is no credential there: no CSRF through the API),
    and the pages take sessions only."""
    routes = [r for r in declared(admin.app) if r.permission not in SPECIAL]
    c, key = everyone[SUPER]
    api = await run_all([r for r in routes if r.api], c=c, headers={"X-CSRF-Token": c.csrf})
    assert {status for status, _ in api.values()} == {401}
    async with Client(admin.url) as bare:
        pages = await run_all([r for r in routes if not r.api], c=bare, headers={"Authorization": f"Bearer {key}"})
    assert all(status == 302 and location.startswith("/admin/login?") for status, location in pages.values())

"""The brand of each portal host, kept in the admin process (admin/portal/brand_cache.py): a
portal page looks it up once, not on every request, and the brand's files and static files touch
the database not at all; a change shows at once in the process that made it (a publish, a host
added or removed, the partner's document branding), in another process as soon as its listener
hears the NOTIFY (the publish's own, or partners' trigger), and after the TTL in any case; a load
that raced a change is not kept."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web

from admin.app import create_app
from admin.auth.store import Connection
from admin.portal import brand_cache, brands_store
from admin.portal.brand import Brand
from admin.settings import AdminSettings
from daemons import db
from daemons.config import DatabaseSettings
from daemons.secrets import Keyring
from tests.conftest import free_port
from tests.integration.admin.conftest import Admin, api_key, call
from tests.integration.portal.conftest import admin, partner, portal_customer, portal_login  # noqa: F401

BRAND_TABLES = ("portal_hosts", "portal_brands", "partner_branding", "min(id) FROM partners")


class Recorder:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, record: asyncpg.connection.LoggedQuery) -> None:
        if not record.query.lstrip().upper().startswith(("SELECT T.OID", "WITH RECURSIVE")):  # type introspection
            self.statements.append(" ".join(record.query.split()))


@pytest.fixture
async def counted(db_url: str) -> AsyncIterator[tuple[Admin, Recorder]]:
    """The admin app over a pool whose connections report each statement."""
    recorder = Recorder()

    async def init(conn: asyncpg.Connection) -> None:
        await db.init_connection(conn)
        conn.add_query_logger(recorder)

    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4, init=init, reset=db._keep_session)
    settings = AdminSettings(port=free_port())
    app = create_app(settings, Keyring(os.urandom(32)), pool=pool)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    try:
        yield Admin(f"http://127.0.0.1:{settings.port}", pool, Keyring(os.urandom(32)), app), recorder
    finally:
        await runner.cleanup()
        await pool.close()


async def test_a_page_looks_the_brand_up_once_and_static_files_not_at_all(
        counted: tuple[Admin, Recorder]) -> None:
    site, recorder = counted
    await portal_customer(site, login="anna")
    async with await portal_login(site, "anna") as c:
        status, _ = await c.get("/portal/")
        assert status == 200
        loads = site.app[brand_cache.CACHE].loads
        recorder.statements.clear()
        for path in ("/portal/", "/portal/services", "/portal/profile"):
            status, _ = await c.get(path)
            assert status == 200, path
        brand_queries = [s for s in recorder.statements if any(t in s for t in BRAND_TABLES)]
        assert brand_queries == []
        assert site.app[brand_cache.CACHE].loads == loads
        recorder.statements.clear()
        for path in ("/portal/static/portal.css", "/portal/brand.css", "/portal/manifest.webmanifest",
                     "/portal/static/vendor/uPlot-1.6.32.min.css"):
            status, _ = await c.get(path)
            assert status == 200, path
        assert recorder.statements == []  # not even the session


async def brand_css(site: Admin, host: str | None = None) -> str:
    async with site.client(**({"Host": host} if host else {})) as c:
        status, css = await c.get("/portal/brand.css")
    assert status == 200
    return css


async def test_a_publish_a_host_and_the_document_branding_show_at_once(admin: Admin) -> None:  # noqa: F811
    isp = await partner(admin, "Our ISP")
    other = await partner(admin, "Violet Fibre")
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
    assert "--accent: #1f6feb" in await brand_css(admin, "portal.violet.example")  # the ISP's own: the default
    status, _ = await call(admin, key, "PUT", f"/portal/brands/{other}", {"accent_color": "#6f2dbd"})
    assert status == 200
    status, _ = await call(admin, key, "POST", f"/portal/brands/{other}/hosts", {"host": "portal.violet.example"})
    assert status == 201
    assert "--accent: #1f6feb" in await brand_css(admin, "portal.violet.example")  # a draft is not shown
    status, _ = await call(admin, key, "POST", f"/portal/brands/{other}/publish")
    assert status == 200
    assert "--accent: #6f2dbd" in await brand_css(admin, "portal.violet.example")
    assert "--accent: #1f6feb" in await brand_css(admin)  # another host: still the ISP's
    # the ISP's documents' accent is its portal's while its brand has none of its own
    status, _ = await call(admin, key, "PATCH", f"/finance/partners/{isp}/branding", {"accent_color": "#aa3300"})
    assert status == 200
    assert "--accent: #aa3300" in await brand_css(admin)
    status, _ = await call(admin, key, "DELETE", f"/portal/brands/{other}/hosts/portal.violet.example")
    assert status == 200
    assert "--accent: #aa3300" in await brand_css(admin, "portal.violet.example")


async def test_another_process_follows_the_notifications(admin: Admin, db_url: str) -> None:  # noqa: F811
    other = await partner(admin, "Violet Fibre", host="portal.violet.example")
    pool = await db.create_pool(DatabaseSettings(), db_url, max_size=2)
    settings = AdminSettings(port=free_port())
    second = create_app(settings, Keyring(os.urandom(32)), pool=pool)  # another admin process's app
    cache = second[brand_cache.CACHE]
    heard = asyncio.Event()

    def notified(channel: str, payload: object) -> None:
        cache.invalidate(channel, payload)
        heard.set()

    listener = db.Listener(db_url, brand_cache.CHANNELS, notified, on_reconnect=cache.invalidate)
    task = asyncio.create_task(listener.run())
    runner = web.AppRunner(second)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    there = Admin(f"http://127.0.0.1:{settings.port}", pool, admin.keyring, second)
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        assert "--accent: #1f6feb" in await brand_css(there, "portal.violet.example")
        async with admin.pool.acquire() as conn:
            key = await api_key(conn)
        await call(admin, key, "PUT", f"/portal/brands/{other}", {"accent_color": "#6f2dbd", "name": "Violet"})
        await call(admin, key, "POST", f"/portal/brands/{other}/publish")
        await asyncio.wait_for(heard.wait(), 5)
        assert "--accent: #6f2dbd" in await brand_css(there, "portal.violet.example")
        # a partner renamed (partners' own trigger): the name a brand without one shows
        heard.clear()
        await call(admin, key, "PUT", f"/portal/brands/{other}", {"accent_color": "#6f2dbd"})
        await call(admin, key, "POST", f"/portal/brands/{other}/publish")
        await asyncio.wait_for(heard.wait(), 5)
        async with there.client(Host="portal.violet.example") as c:
            assert "Violet Fibre" in (await c.get("/portal/login"))[1]
        heard.clear()
        async with admin.pool.acquire() as conn:
            await conn.execute("UPDATE partners SET name = 'Lilac Fibre' WHERE id = $1", other)
        await asyncio.wait_for(heard.wait(), 5)
        async with there.client(Host="portal.violet.example") as c:
            assert "Lilac Fibre" in (await c.get("/portal/login"))[1]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()
        await pool.close()


async def test_without_a_notification_the_ttl_ends_a_brand(admin: Admin) -> None:  # noqa: F811
    now = [1000.0]
    cache = brand_cache.BrandCache(ttl=60, clock=lambda: now[0])
    isp = await partner(admin, "Our ISP")
    other = await partner(admin, "Violet Fibre", host="portal.violet.example")
    found = await cache.lookup(admin.pool, "Portal.Violet.Example")
    assert found.partner_id == other and found.brand.name == "Violet Fibre"
    async with admin.pool.acquire() as conn:
        await conn.execute("UPDATE partners SET name = 'Lilac Fibre' WHERE id = $1", other)
    now[0] += 59
    assert (await cache.lookup(admin.pool, "portal.violet.example")).brand.name == "Violet Fibre"
    now[0] += 2
    assert (await cache.lookup(admin.pool, "portal.violet.example")).brand.name == "Lilac Fibre"
    assert (await cache.lookup(admin.pool, "elsewhere.example")).partner_id == isp


async def test_a_load_that_raced_a_change_is_not_kept(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    other = await partner(admin, "Violet Fibre", host="portal.violet.example")
    cache = brand_cache.BrandCache()
    real = brands_store.brand_of

    async def racing(conn: Connection, partner_id: int, *, draft: bool = False) -> Brand:
        brand = await real(conn, partner_id, draft=draft)
        cache.invalidate()  # a publish committed while this request was loading the old brand
        return brand

    monkeypatch.setattr(brands_store, "brand_of", racing)
    assert (await cache.lookup(admin.pool, "portal.violet.example")).partner_id == other
    monkeypatch.setattr(brands_store, "brand_of", real)
    loads = cache.loads
    await cache.lookup(admin.pool, "portal.violet.example")
    assert cache.loads == loads + 1  # loaded again: the raced load was used once, not kept

"""The admin app on 127.0.0.1 over a fresh database, administrators of every role, and a client
that logs in as a browser does (cookies, the forms' CSRF tokens)."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from admin.app import create_app
from admin.auth import passwords, tokens
from admin.auth.store import Connection
from admin.settings import AdminSettings
from daemons import db
from daemons.config import DatabaseSettings
from daemons.secrets import Keyring
from tests.conftest import free_port

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="_csrf" value="([^"]*)"')


@functools.cache
def password_hash() -> str:
    """One argon2 hash for every test administrator (a hash costs ~0.1 s)."""
    return passwords.hash_password(PASSWORD)


async def make_admin(conn: Connection, login: str, role: str = "super", *, partner_id: int | None = None,
                     **columns: Any) -> int:
    """An administrator with the built-in role ``role`` (its key) and password PASSWORD."""
    admin_id = await conn.fetchval(
        "INSERT INTO administrators (login, name, password_hash, role_id, partner_id) "
        "SELECT $1, $1, $2, id, $4 FROM admin_roles WHERE builtin = $3 RETURNING id",
        login, password_hash(), role, partner_id)
    assert admin_id is not None, role
    for column, value in columns.items():
        await conn.execute(f"UPDATE administrators SET {column} = $2 WHERE id = $1", admin_id, value)
    return int(admin_id)


@dataclasses.dataclass
class Admin:
    url: str
    pool: asyncpg.Pool
    keyring: Keyring
    app: web.Application

    def client(self, **headers: str) -> Client:
        return Client(self.url, headers)


class Client:
    """A browser-like client: a cookie jar, and the CSRF token of the last page it read."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers)
        self.csrf = ""

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.session.close()

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        async with self.session.get(self.url + path, allow_redirects=kw.pop("allow_redirects", True), **kw) as r:
            text = await r.text()
            if m := _CSRF.search(text):
                self.csrf = m.group(1)
            return r.status, text

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
                   allow_redirects: bool = True) -> tuple[int, str, str]:
        """POST a form (with the CSRF token); (status, body, the URL it ended at)."""
        form = dict(data or {})
        if csrf:
            form.setdefault("_csrf", self.csrf)
        async with self.session.post(self.url + path, data=form, allow_redirects=allow_redirects) as r:
            text = await r.text()
            if m := _CSRF.search(text):
                self.csrf = m.group(1)
            return r.status, text, str(r.url)

    async def login(self, login: str, password: str = PASSWORD) -> tuple[int, str, str]:
        await self.get("/admin/login")
        return await self.post("/admin/login", {"login": login, "password": password})


@pytest.fixture
async def admin(db_url: str) -> AsyncIterator[Admin]:
    """The admin app serving on 127.0.0.1 over the test's database."""
    pool = await db.create_pool(DatabaseSettings(), db_url, max_size=4)
    keyring = Keyring(os.urandom(32))
    settings = AdminSettings(port=free_port())
    app = create_app(settings, keyring, pool=pool)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", settings.port)
    await site.start()
    try:
        yield Admin(f"http://127.0.0.1:{settings.port}", pool, keyring, app)
    finally:
        await runner.cleanup()
        await pool.close()


async def api_key(conn: Connection, role: str = "super", *, partner_id: int | None = None) -> str:
    """An API key with the permissions of the built-in role ``role`` (scoped to ``partner_id``)."""
    key, prefix = tokens.new_api_key()
    await conn.execute("INSERT INTO api_keys (name, prefix, key_hash, role_id, partner_id) "
                       "SELECT $1, $2, $3, id, $5 FROM admin_roles WHERE builtin = $4",
                       f"test-{role}-{prefix}", prefix, tokens.digest(key), role, partner_id)
    return key


async def call(admin: Admin, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """An API request with ``key``: (status, the decoded JSON or None)."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s, \
            s.request(method, admin.url + "/api/v1" + path, json=body) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None


async def logged_in(admin: Admin, login: str = "root", role: str = "super") -> Client:
    """A client logged in as a new administrator of ``role`` (close it: ``async with``)."""
    async with admin.pool.acquire() as conn:
        await make_admin(conn, login, role)
    c = admin.client()
    status, body, _ = await c.login(login)
    assert status == 200, body
    return c

"""Administration: administrators, roles and their permission matrix, per-administrator overrides,
partner scope, API keys (shown once, Bearer, revoke, allow-list, request log), the operations log
with its filters and exports, global two-factor, custom field definitions; and their API."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import asyncpg
import pyotp
import pytest

from admin import keys, listing
from admin.account.routes import TOTP_PURPOSE
from admin.auth import tokens
from tests.integration.admin.conftest import PASSWORD, Admin, make_admin


@contextlib.asynccontextmanager
async def db(admin: Admin) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the app's pool (typed as the conftest's helpers take it)."""
    async with admin.pool.acquire() as conn:
        yield cast(asyncpg.Connection, conn)


async def role_id(conn: asyncpg.Connection, builtin: str) -> int:
    return int(await conn.fetchval("SELECT id FROM admin_roles WHERE builtin = $1", builtin))


async def partner(conn: asyncpg.Connection, name: str) -> int:
    return int(await conn.fetchval("INSERT INTO partners (name) VALUES ($1) RETURNING id", name))


async def make_key(conn: asyncpg.Connection, role: str = "super", *, partner_id: int | None = None,
                   allow_from: list[str] | None = None) -> str:
    key, prefix = tokens.new_api_key()
    await conn.execute(
        "INSERT INTO api_keys (name, prefix, key_hash, role_id, partner_id, allow_from) "
        "SELECT 'test ' || $2, $2, $1, id, $4, $5::cidr[] FROM admin_roles WHERE builtin = $3",
        tokens.digest(key), prefix, role, partner_id, allow_from or [])
    return key


def api(key: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"})


def admin_form(login: str, role: int, **extra: Any) -> dict[str, Any]:
    return {"login": login, "name": login.title(), "email": f"{login}@example.net", "role_id": str(role),
            "partner_id": "", "password": PASSWORD, "idle_minutes": "30", "absolute_hours": "12", **extra}


async def test_an_administrator_made_with_the_form_logs_in(admin: Admin) -> None:
    async with db(admin) as conn:
        await make_admin(conn, "root")
        engineer = await role_id(conn, "engineer")
    async with admin.client() as root, admin.client() as new:
        await root.login("root")
        status, body = await root.get("/admin/administrators/new")
        assert status == 200 and 'name="login"' in body
        status, body, _ = await root.post("/admin/administrators", admin_form("Eve", engineer, password="short"))
        assert status == 422 and "at least 10 characters" in body
        status, body, _ = await root.post("/admin/administrators", admin_form("Bad Login!", engineer))
        assert status == 422 and "lower-case letters" in body
        status, body, url = await root.post("/admin/administrators", admin_form("eve", engineer))
        assert status == 200 and re.search(r"/admin/administrators/\d+\?done=created$", url), (status, url)
        assert "Administrator created" in body and "Engineer" in body
        status, body, _ = await root.post("/admin/administrators", admin_form("eve", engineer))
        assert status == 422 and "is taken" in body
        status, body = await root.get("/admin/administrators?q=ev")
        assert status == 200 and ">eve<" in body and "root" not in body.split("<tbody>")[1]

        status, body, url = await new.login("eve")
        assert status == 200 and url.endswith("/admin/"), (status, url)
        status, _ = await new.get("/admin/administrators")
        assert status == 403

    async with db(admin) as conn:
        row = await conn.fetchrow("SELECT idle_timeout_s, absolute_timeout_s, last_login_at FROM administrators "
                                  "WHERE login = 'eve'")
        assert row is not None and row["idle_timeout_s"] == 1800 and row["absolute_timeout_s"] == 43200
        assert row["last_login_at"] is not None
        logged = await conn.fetchrow("SELECT actor, action, after::text AS after FROM operations_log "
                                     "WHERE object_type = 'administrator' AND action = 'create'")
        assert logged is not None and logged["actor"] == "root"
        assert '"login": "eve"' in logged["after"] and "argon2" not in logged["after"]


async def test_a_copied_role_and_its_matrix_decide_what_its_administrators_may_do(admin: Admin) -> None:
    async with db(admin) as conn:
        await make_admin(conn, "root")
        technician = await role_id(conn, "technician")
        super_role = await role_id(conn, "super")
    async with admin.client() as root, admin.client() as lead:
        await root.login("root")
        status, body = await root.get("/admin/roles")
        assert status == 200 and "Technician" in body
        status, body = await root.get(f"/admin/roles/{super_role}")
        assert status == 200 and "every permission" in body and 'name="perm"' not in body

        status, body, _ = await root.post(f"/admin/roles/{technician}/copy", {"name": "Technician"})
        assert status == 422 and "another role has this name" in body
        status, body, url = await root.post(f"/admin/roles/{technician}/copy", {"name": "Support lead"})
        assert status == 200 and "?done=copied" in url, (status, url)
        lead_role = int(url.rsplit("/", 1)[1].split("?")[0])
        assert 'value="support.view" aria-label="Support view" checked' in body

        status, _, _ = await root.post("/admin/administrators", admin_form("lead", lead_role))
        assert status == 200
        await lead.login("lead")
        assert (await lead.get("/admin/roles"))[0] == 403
        assert (await lead.get("/admin/"))[0] == 200

        await root.get(f"/admin/roles/{lead_role}")
        perms = ["dashboard.view", "support.view", "support.edit", "administration.view"]
        status, body, url = await root.post(f"/admin/roles/{lead_role}", {"perm": perms, "name": "Support lead",
                                                                          "require_2fa": ""})
        assert status == 200 and "done=saved" in url
        status, body = await lead.get("/admin/roles")
        assert status == 200 and "Support lead" in body
        assert (await lead.get("/admin/administrators/new"))[0] == 403  # administration.add not given

        # A built-in role keeps its name; a role in use cannot be deleted.
        await root.post(f"/admin/roles/{technician}", {"perm": ["dashboard.view"], "name": "Renamed"})
        status, body, _ = await root.post(f"/admin/roles/{lead_role}/delete")
        assert status == 409 and "used by 1 administrator" in body
    async with db(admin) as conn:
        assert await conn.fetchval("SELECT name FROM admin_roles WHERE id = $1", technician) == "Technician"
        assert await conn.fetchval("SELECT permissions FROM admin_roles WHERE id = $1", lead_role) == sorted(perms)
        unused = await conn.fetchval("INSERT INTO admin_roles (name) VALUES ('Unused') RETURNING id")
    async with admin.client() as root:
        await root.login("root")
        await root.get(f"/admin/roles/{unused}")
        status, body, url = await root.post(f"/admin/roles/{unused}/delete")
        assert status == 200 and url.endswith("/admin/roles?done=deleted") and "Unused" not in body
        status, body, _ = await root.post(f"/admin/roles/{technician}/delete")
        assert status == 409 and "built-in role cannot be deleted" in body


async def test_grants_and_revokes_of_one_administrator(admin: Admin) -> None:
    async with db(admin) as conn:
        await make_admin(conn, "root")
        tech = await make_admin(conn, "tech", "technician")
        technician = await role_id(conn, "technician")
    async with admin.client() as root, admin.client() as c:
        await c.login("tech")
        assert (await c.get("/admin/roles"))[0] == 403
        assert (await c.get("/admin/"))[0] == 200
        await root.login("root")
        status, body = await root.get(f"/admin/administrators/{tech}/edit")
        assert status == 200 and 'name="revoke" value="dashboard.view"' in body
        assert 'name="grant" value="administration.view"' in body
        form = admin_form("tech", technician, password="", grant=["administration.view", "bogus.view"],
                          revoke=["dashboard.view"])
        status, body, _ = await root.post(f"/admin/administrators/{tech}/edit", form)
        assert status == 422 and "no such permission: bogus.view" in body
        form["grant"] = ["administration.view"]
        status, body, url = await root.post(f"/admin/administrators/{tech}/edit", form)
        assert status == 200 and "done=saved" in url, body
        assert (await c.get("/admin/roles"))[0] == 200
        assert (await c.get("/admin/"))[0] == 403
    async with db(admin) as conn:
        row = await conn.fetchrow("SELECT grants, revokes FROM administrators WHERE id = $1", tech)
        assert row is not None and row["grants"] == ["administration.view"] and row["revokes"] == ["dashboard.view"]


async def test_only_a_super_administrator_makes_a_super_one_and_nobody_gives_what_it_lacks(admin: Admin) -> None:
    async with db(admin) as conn:
        await make_admin(conn, "boss", "admin")
        root = await make_admin(conn, "root")
        eng = await make_admin(conn, "eng", "engineer")
        super_role, engineer = await role_id(conn, "super"), await role_id(conn, "engineer")
    async with admin.client() as boss:
        await boss.login("boss")
        status, body = await boss.get("/admin/administrators/new")
        assert "Super administrator" not in body.split('name="role_id"')[1].split("</select>")[0]
        status, body, _ = await boss.post("/admin/administrators", admin_form("sneaky", super_role))
        assert status == 422 and "only a super administrator" in body
        assert (await boss.get(f"/admin/administrators/{root}/edit"))[0] == 403
        assert (await boss.post(f"/admin/administrators/{root}/disable"))[0] == 403
        status, body, _ = await boss.post(f"/admin/administrators/{eng}/edit", admin_form(
            "eng", engineer, password="", grant=["config.edit"]))
        assert status == 422 and "permissions you do not have: config.edit" in body
        status, _, url = await boss.post(f"/admin/administrators/{eng}/edit", admin_form(
            "eng", engineer, password="", grant=["finance.view"]))
        assert status == 200 and "done=saved" in url


async def test_disabling_ends_sessions_and_nobody_disables_themselves(admin: Admin) -> None:
    async with db(admin) as conn:
        root = await make_admin(conn, "root")
        tech = await make_admin(conn, "tech", "technician", totp_secret="lm1:not-a-real-one",
                                recovery_codes=["abc"])
    async with admin.client() as r, admin.client() as t:
        await r.login("root")
        status, _, url = await t.login("tech")
        assert "/admin/login/code" in url  # it has a second factor
        status, body, url = await r.post(f"/admin/administrators/{tech}/reset-two-factor")
        assert "done=reset-two-factor" in url and "recovery codes" not in body
        await t.login("tech")
        assert (await t.get("/admin/"))[0] == 200
        status, body, url = await r.post(f"/admin/administrators/{root}/disable")
        assert "done=self" in url and "cannot disable yourself" in body
        status, body, url = await r.post(f"/admin/administrators/{tech}/disable")
        assert "done=disable" in url
        status, body = await t.get("/admin/")  # its session is gone: back to the login page
        assert 'name="password"' in body
        status, body, url = await t.login("tech")
        assert status == 401
        status, body, url = await r.post(f"/admin/administrators/{tech}/enable")
        assert "done=enable" in url
        status, body, url = await t.login("tech")
        assert url.endswith("/admin/")
        await r.post(f"/admin/administrators/{tech}/end-sessions")
        status, body = await t.get("/admin/")
        assert 'name="password"' in body
        assert (await r.get("/admin/"))[0] == 200  # its own session stays
    async with db(admin) as conn:
        row = await conn.fetchrow("SELECT totp_secret, recovery_codes FROM administrators WHERE id = $1", tech)
        assert row is not None and row["totp_secret"] is None and row["recovery_codes"] == []
        actions = [r["action"] for r in await conn.fetch(
            "SELECT action FROM operations_log WHERE object_id = $1 AND object_type = 'administrator' ORDER BY id",
            tech)]
        assert actions == ["reset_two_factor", "disable", "enable", "end_sessions"]
        assert "lm1:" not in await conn.fetchval("SELECT string_agg(before::text || after::text, '') "
                                                 "FROM operations_log")


async def test_a_partner_administrator_sees_only_its_partner(admin: Admin) -> None:
    async with db(admin) as conn:
        a, b = await partner(conn, "North"), await partner(conn, "South")
        await make_admin(conn, "pa", "admin", partner_id=a)
        mine = await make_admin(conn, "north1", "engineer", partner_id=a)
        theirs = await make_admin(conn, "south1", "engineer", partner_id=b)
        await make_admin(conn, "root")
        engineer = await role_id(conn, "engineer")
        for p, what in ((a, "north change"), (b, "south change"), (None, "global change")):
            await conn.execute("INSERT INTO operations_log (actor, action, object_type, partner_id, summary) "
                               "VALUES ('x', 'update', 'router', $1, $2)", p, what)
    async with admin.client() as pa:
        await pa.login("pa")
        status, body = await pa.get("/admin/administrators")
        assert status == 200 and "north1" in body and "south1" not in body and ">root<" not in body
        assert (await pa.get(f"/admin/administrators/{mine}"))[0] == 200
        assert (await pa.get(f"/admin/administrators/{theirs}"))[0] == 404
        assert (await pa.get(f"/admin/administrators/{theirs}/edit"))[0] == 404
        assert (await pa.post(f"/admin/administrators/{theirs}/disable"))[0] == 404
        status, body, _ = await pa.post("/admin/administrators", admin_form("x1", engineer, partner_id=str(b)))
        assert status == 422 and "must be your own partner" in body
        status, _, url = await pa.post("/admin/administrators", admin_form("north2", engineer, partner_id=str(a)))
        assert "done=created" in url
        status, body = await pa.get("/admin/operations-log")
        assert "north change" in body and "south change" not in body and "global change" not in body
        assert "created administrator north2" in body
        status, body = await pa.get("/admin/operations-log?format=csv")
        assert "north change" in body and "south change" not in body
        assert (await pa.post("/admin/roles/1/copy", {"name": "Mine"}))[0] == 403
        for path in ("/admin/roles", f"/admin/roles/{engineer}", "/admin/api-keys/new", "/admin/administrators/new"):
            status, body = await pa.get(path)
            assert status == 200 and "South" not in body, path
        assert 'name="perm" value="dashboard.view" aria-label="Dashboard view" checked disabled' in (
            await pa.get(f"/admin/roles/{engineer}"))[1]  # roles are every partner's: read-only here
    async with db(admin) as conn:
        key = await make_key(conn, "admin", partner_id=a)
    async with api(key) as s:
        async with s.get(f"{admin.url}/api/v1/administrators") as r:
            logins = [i["login"] for i in (await r.json())["items"]]
            assert r.status == 200 and "north1" in logins and "south1" not in logins
        async with s.get(f"{admin.url}/api/v1/administrators/{theirs}") as r:
            assert r.status == 404
        async with s.get(f"{admin.url}/api/v1/operations-log") as r:
            assert {i["partner_id"] for i in (await r.json())["items"]} == {a}


async def test_an_api_key_is_shown_once_works_until_revoked_and_logs_its_requests(admin: Admin) -> None:
    async with db(admin) as conn:
        await make_admin(conn, "root")
        admin_role = await role_id(conn, "admin")
    async with admin.client() as root:
        await root.login("root")
        status, body = await root.get("/admin/api-keys/new")
        assert status == 200
        status, body, _ = await root.post("/admin/api-keys", {"name": "bad", "role_id": str(admin_role),
                                                              "allow_from": "10.0.0.0/8, nonsense"})
        assert status == 422 and "nonsense&#39; is not an address" in body
        status, body, _ = await root.post("/admin/api-keys", {"name": "billing", "role_id": str(admin_role)})
        assert status == 201, body
        match = re.search(r'value="(lm_[0-9a-f]{8}_[^"]+)"', body)
        assert match is not None
        key = match.group(1)
        key_id = int(re.search(r'href="/admin/api-keys/(\d+)"', body).group(1))  # type: ignore[union-attr]
        status, page = await root.get(f"/admin/api-keys/{key_id}")
        assert status == 200 and key not in page and key[:11] in page
        status, listing = await root.get("/admin/api-keys")
        assert "billing" in listing and key not in listing

        async with api(key) as s:
            async with s.get(f"{admin.url}/api/v1/administrators?limit=5") as r:
                assert r.status == 200 and (await r.json())["items"][0]["login"] == "root"
            async with s.get(f"{admin.url}/api/v1/roles") as r:
                assert r.status == 200
        await admin.app[keys.API_LOG].flush()
        status, page = await root.get(f"/admin/api-keys/{key_id}")
        assert "GET /api/v1/administrators?limit=5" in page and "GET /api/v1/roles" in page
        assert page.index("/api/v1/roles") < page.index("/api/v1/administrators?limit=5")  # newest first

        status, page, url = await root.post(f"/admin/api-keys/{key_id}/revoke")
        assert "done=revoked" in url and "no longer works" in page
        async with api(key) as s, s.get(f"{admin.url}/api/v1/roles") as r:
            assert r.status == 401  # at once: revoking drops it from this process's key cache

    async with db(admin) as conn:
        fenced = await make_key(conn, "admin", allow_from=["10.0.0.0/8"])
        logged = await conn.fetchval("SELECT string_agg(after::text, '') FROM operations_log "
                                     "WHERE object_type = 'api_key'")
        stored = await conn.fetchval("SELECT key_hash FROM api_keys WHERE id = $1", key_id)
    secret = key[len("lm_12345678_"):]  # the prefix is fixed; the secret may itself hold "_"
    assert secret not in logged and stored.hex() not in logged
    async with api(fenced) as s, s.get(f"{admin.url}/api/v1/roles") as r:
        assert r.status == 403 and "not allowed from this address" in await r.text()


async def test_the_api_makes_administrators_and_keys(admin: Admin) -> None:
    async with db(admin) as conn:
        root_id = await make_admin(conn, "root")
        key = await make_key(conn, "super")
        engineer, super_role = await role_id(conn, "engineer"), await role_id(conn, "super")
        limited = await make_key(conn, "admin")
    base = f"{admin.url}/api/v1"
    async with api(key) as s:
        body = {"login": "api.eve", "role_id": engineer, "password": "short"}
        async with s.post(f"{base}/administrators", json=body) as r:
            assert r.status == 422 and "password" in (await r.json())["errors"]
        body["password"] = PASSWORD
        async with s.post(f"{base}/administrators", json=body) as r:
            made = await r.json()
            assert r.status == 201 and made["role"] == "Engineer" and "networking.edit" in made["permissions"]
        patch = {"name": "Eve", "revokes": ["networking.edit"]}
        async with s.patch(f"{base}/administrators/{made['id']}", json=patch) as r:
            changed = await r.json()
            assert r.status == 200 and changed["name"] == "Eve" and "networking.edit" not in changed["permissions"]
        async with s.patch(f"{base}/administrators/{made['id']}", json={"enabled": False}) as r:
            assert r.status == 200 and (await r.json())["enabled"] is False
        async with s.patch(f"{base}/administrators/{made['id']}", json={"nope": 1}) as r:
            assert r.status == 422
        async with s.get(f"{base}/administrators/{made['id']}") as r:
            assert r.status == 200 and (await r.json())["login"] == "api.eve"
        async with s.get(f"{base}/administrators/999999") as r:
            assert r.status == 404
        async with s.get(f"{base}/roles") as r:
            roles = {i["name"]: i for i in (await r.json())["items"]}
            assert roles["Engineer"]["administrators"] == 1 and roles["Super administrator"]["api_keys"] == 1
        async with s.post(f"{base}/api-keys", json={"name": "ci", "role_id": engineer,
                                                   "allow_from": ["192.0.2.0/24"]}) as r:
            created = await r.json()
            assert r.status == 201 and created["key"].startswith("lm_" + created["prefix"])
            assert created["allow_from"] == ["192.0.2.0/24"]
        async with s.get(f"{base}/api-keys") as r:
            items = (await r.json())["items"]
            assert items[0]["id"] == created["id"] and "key" not in items[0]
        async with s.post(f"{base}/api-keys/{created['id']}/revoke") as r:
            assert r.status == 200 and (await r.json())["revoked_at"] is not None
    async with api(limited) as s:
        async with s.post(f"{base}/administrators", json={"login": "x", "role_id": super_role,
                                                        "password": PASSWORD}) as r:
            assert r.status == 422 and "super" in (await r.json())["errors"]["role_id"]
        async with s.post(f"{base}/api-keys", json={"name": "up", "role_id": super_role}) as r:
            assert r.status == 422
        async with s.patch(f"{base}/administrators/{root_id}", json={"name": "pwned"}) as r:
            assert r.status == 403


async def test_the_operations_log_filters_and_exports(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    async with db(admin) as conn:
        await make_admin(conn, "root")
        rows = [("alice", "update", "customer", 7, "2025-01-10"), ("alice", "block", "customer", 8, "2025-01-11"),
                ("bob", "create", "tariff", None, "2025-02-01"), ("bob", "update", "customer", 7, "2025-02-02")]
        for actor, action, otype, customer, day in rows:
            await conn.execute(
                "INSERT INTO operations_log (at, actor, action, object_type, object_id, customer_id, summary, before, "
                "after) VALUES ($1::text::timestamptz, $2, $3, $4, $5, $5, $6, $7::jsonb, $8::jsonb)",
                day + " 12:00Z", actor, action, otype, customer, f"{actor} {action} {otype} {day}",
                {"status": "active"}, {"status": "blocked", "note": "=cmd()"})
    async with admin.client() as root:
        await root.login("root")
        status, body = await root.get("/admin/operations-log?actor=alice")
        assert status == 200 and body.count("alice ") == 2 and "bob " not in body
        assert "<details>" in body and "&#34;blocked&#34;" in body
        status, body = await root.get("/admin/operations-log?customer_id=7")
        assert "alice update" in body and "bob update" in body and "alice block" not in body
        status, body = await root.get("/admin/operations-log?object_type=tariff")
        assert "bob create" in body and "customer 2025" not in body
        status, body = await root.get("/admin/operations-log?action=block")
        assert "alice block" in body and "alice update" not in body
        status, body = await root.get("/admin/operations-log?date_from=2025-01-11&date_to=2025-02-01")
        assert "alice block" in body and "bob create" in body and "alice update" not in body
        assert "bob update" not in body
        status, body = await root.get("/admin/operations-log?date_from=yesterday")
        assert status == 422
        status, body = await root.get("/admin/operations-log?limit=2&actor=")
        assert "bob update" in body and "bob create" in body and "alice block" not in body
        after = re.search(r'href="([^"]*after=[^"]*)" rel="next"', body)
        assert after is not None
        status, body = await root.get(after.group(1).replace("&amp;", "&"))
        assert "alice block" in body and "alice update" in body and "bob create" not in body

        status, text = await root.get("/admin/operations-log?format=csv&actor=alice")
        table = list(csv.reader(io.StringIO(text)))
        assert table[0][:3] == ["id", "at", "actor"] and [r[2] for r in table[1:]] == ["alice", "alice"]
        assert json.loads(table[1][11]) == {"note": "=cmd()", "status": "blocked"}
        status, text = await root.get("/admin/operations-log?format=json&customer_id=7")
        entries = json.loads(text)
        assert [e["summary"] for e in entries] == ["bob update customer 2025-02-02", "alice update customer 2025-01-10"]
        assert entries[0]["before"] == {"status": "active"}
        status, text = await root.get("/admin/operations-log?format=json&actor=nobody")
        assert json.loads(text) == []
        monkeypatch.setattr(listing, "EXPORT_PAGE", 3)  # the exports go by pages: 3 lines, then 1
        status, text = await root.get("/admin/operations-log?format=json")
        assert [e["customer_id"] for e in json.loads(text)] == [7, None, 8, 7]
        status, text = await root.get("/admin/operations-log?format=csv")
        assert len(list(csv.reader(io.StringIO(text)))) == 5
    async with db(admin) as conn:
        key = await make_key(conn, "admin")
    async with api(key) as s:
        async with s.get(f"{admin.url}/api/v1/operations-log?actor=bob&limit=1") as r:
            page = await r.json()
            assert r.status == 200 and [i["summary"] for i in page["items"]] == ["bob update customer 2025-02-02"]
        async with s.get(f"{admin.url}/api/v1/operations-log?actor=bob&limit=1&after={page['next']}") as r:
            page = await r.json()
            assert [i["action"] for i in page["items"]] == ["create"] and page["next"] is None


async def test_requiring_two_factor_for_everyone_sends_them_to_set_it_up(admin: Admin) -> None:
    secret = pyotp.random_base32()
    async with db(admin) as conn:
        await make_admin(conn, "root")
        await make_admin(conn, "boss", totp_secret=admin.keyring.seal(secret, TOTP_PURPOSE))
        await make_admin(conn, "eng", "engineer")
    async with admin.client() as root, admin.client() as boss, admin.client() as eng:
        await eng.login("eng")
        assert (await eng.get("/admin/"))[0] == 200
        assert (await eng.get("/admin/settings"))[0] == 403
        await root.login("root")
        status, body = await root.get("/admin/settings")
        assert status == 200 and "Require two-factor login for every administrator" in body
        status, body, url = await root.post("/admin/settings", {"require_2fa": "1"})
        assert status == 409 and "Set up your own two-factor login first" in body  # root has none

        await boss.login("boss")
        await boss.post("/admin/login/code", {"code": pyotp.TOTP(secret).now()})
        status, body = await boss.get("/admin/settings")
        assert status == 200
        status, body, url = await boss.post("/admin/settings", {"require_2fa": "1"})
        assert "done=saved" in url
        for c in (eng, root):
            async with c.session.get(admin.url + "/admin/", allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"] == "/admin/profile/two-factor?required=1"
        await boss.get("/admin/settings")
        await boss.post("/admin/settings", {})
        assert (await eng.get("/admin/"))[0] == 200
    async with db(admin) as conn:
        assert await conn.fetchval("SELECT count(*) FROM operations_log WHERE object_type = 'settings'") == 2


async def test_custom_field_definitions(admin: Admin) -> None:
    async with db(admin) as conn:
        await make_admin(conn, "root")
        await make_admin(conn, "boss", "admin")
    async with admin.client() as root, admin.client() as boss:
        await boss.login("boss")
        assert (await boss.get("/admin/custom-fields"))[0] == 403  # config.* is the super administrator's
        await root.login("root")
        status, body = await root.get("/admin/custom-fields/new?object_type=router")
        assert status == 200
        form = {"object_type": "customer", "key": "contract", "label": "Contract", "kind": "choice", "choices": "",
                "position": "1"}
        status, body, _ = await root.post("/admin/custom-fields", form)
        assert status == 422 and "needs its choices" in body
        status, body, _ = await root.post("/admin/custom-fields", form | {"key": "Bad Key", "kind": "text"})
        assert status == 422 and "lower-case letters" in body
        status, body, url = await root.post("/admin/custom-fields", form | {"choices": "Monthly\nYearly\nMonthly"})
        assert "done=created" in url and "Monthly, Yearly" in body
        status, body, _ = await root.post("/admin/custom-fields", form | {"choices": "a", "label": "Again"})
        assert status == 422 and "has this key already" in body
        await root.post("/admin/custom-fields", {"object_type": "customer", "key": "site", "label": "Site",
                                                 "kind": "url", "position": "0", "required": "1"})
        async with db(admin) as conn:
            from admin.administration import custom
            defs = await custom.definitions(conn, "customer")
            assert [(d.key, d.kind, d.required) for d in defs] == [("site", "url", True), ("contract", "choice", False)]
            assert defs[1].choices == ("Monthly", "Yearly")
            assert await custom.definitions(conn, "router") == []
            field_id = defs[1].id
        status, body = await root.get(f"/admin/custom-fields/{field_id}")
        assert status == 200 and "Monthly\nYearly</textarea>" in body
        status, body, url = await root.post(f"/admin/custom-fields/{field_id}", {
            "label": "Contract term", "kind": "choice", "choices": "Monthly, Yearly, Two years", "position": "5",
            "key": "hijack", "object_type": "router"})
        assert "done=saved" in url and "Contract term" in body
        status, body, url = await root.post(f"/admin/custom-fields/{field_id}/delete")
        assert "done=deleted" in url and "Contract term" not in body
    async with db(admin) as conn:
        assert await conn.fetchval("SELECT count(*) FROM custom_fields WHERE key = 'hijack'") == 0
        actions = [r[0] for r in await conn.fetch("SELECT action FROM operations_log WHERE object_type = "
                                                  "'custom_field' ORDER BY id")]
        assert actions == ["create", "create", "update", "delete"]


async def test_pages_of_the_area_render_for_a_super_administrator(admin: Admin) -> None:
    async with db(admin) as conn:
        root = await make_admin(conn, "root")
        await make_key(conn, "engineer")
        engineer = await role_id(conn, "engineer")
    async with admin.client() as c:
        await c.login("root")
        for path in ("/admin/administrators", f"/admin/administrators/{root}", f"/admin/administrators/{root}/edit",
                     "/admin/roles", f"/admin/roles/{engineer}", f"/admin/roles/{engineer}/copy", "/admin/api-keys",
                     "/admin/api-keys?revoked=no", "/admin/operations-log", "/admin/custom-fields", "/admin/settings",
                     "/admin/administrators?format=csv", "/admin/api-keys?format=csv"):
            status, body = await c.get(path)
            assert status == 200, (path, body[:500])
        _, body = await c.get("/admin/")
        for label in ("Administrators", "Roles", "API keys", "Operations log", "Custom fields", "Settings"):
            assert f">{label}</a>" in body, label
        assert (await c.get("/admin/administrators/abc"))[0] == 404
        assert (await c.get("/admin/api-keys/99999"))[0] == 404

"""NAS, routers, IP pools and flow exporters through the forms and the API: create, edit, delete,
checks next to each field (the tables' constraints included), deletes refused while something
refers to the object, secrets never shown, "sync now" reaching provisiond's channel, the
operations log, and permissions."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.listing import encode_cursor
from daemons.secrets import ROUTER_PURPOSE
from tests.integration.admin.conftest import Admin, api_key, call, logged_in

NAS_FORM = {"name": "bras-1", "address": "192.0.2.1", "secret": "s3cret-Radius-42", "type": "mikrotik",
            "coa_port": "3799", "require_message_authenticator": "1", "limit_proxy_state": "1"}
ROUTER_FORM = {"name": "core-1", "host": "core-1.example.net", "api_port": "8729", "api_tls": "1",
               "api_tls_verify": "1", "username": "lastmile", "password": "Router-Pass-1", "enabled": "1",
               "auth_mode": "radius"}


def field_error(html: str, name: str) -> str:
    m = re.search(rf'<p class="error" id="e-{re.escape(name)}">([^<]*)</p>', html)
    return m.group(1) if m else ""


def created_id(url: str) -> int:
    m = re.search(r"/(\d+)\?done=created$", url)
    assert m, url
    return int(m.group(1))


async def actions(admin: Admin, object_type: str, object_id: int) -> list[asyncpg.Record]:
    async with admin.pool.acquire() as conn:
        return list(await conn.fetch("SELECT * FROM operations_log WHERE object_type = $1 AND object_id = $2 "
                                     "ORDER BY id", object_type, object_id))


async def service(conn: Connection, login: str, *, router_id: int | None = None, pool_id: int | None = None) -> int:
    partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('P') ON CONFLICT (name) DO UPDATE "
                                  "SET name = EXCLUDED.name RETURNING id")
    tariff = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ('T', 1, 1) "
                                 "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id")
    customer = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, $2) "
                                   "RETURNING id", partner, f"N-{login}")
    return int(await conn.fetchval(
        "INSERT INTO services (customer_id, tariff_id, login, password, router_id, pool_id) "
        "VALUES ($1, $2, $3, 'pw', $4, $5) RETURNING id", customer, tariff, login, router_id, pool_id))


async def router_row(conn: Connection, name: str, *, enabled: bool = True) -> int:
    return int(await conn.fetchval("INSERT INTO routers (name, host, username, password, enabled) "
                                   "VALUES ($1, '192.0.2.254', 'u', 'lm1:x', $2) RETURNING id", name, enabled))


# -- NAS ------------------------------------------------------------------------------------------

async def test_a_nas_is_created_edited_and_deleted_through_the_forms_its_secret_never_shown(admin: Admin) -> None:
    async with await logged_in(admin) as c:
        await c.get("/admin/nas/new")
        status, body, url = await c.post("/admin/nas/new", NAS_FORM)
        assert status == 200, body
        nas_id = created_id(url)
        assert "192.0.2.1/32" in body and "••••••42" in body and "s3cret-Radius-42" not in body
        status, body = await c.get("/admin/nas")
        assert "bras-1" in body and "••••••42" in body and "s3cret" not in body
        status, body = await c.get(f"/admin/nas/{nas_id}/edit")
        assert "s3cret" not in body and 'value="192.0.2.1/32"' in body
        # an empty secret keeps the secret; unticking Message-Authenticator alone is allowed
        status, body, url = await c.post(f"/admin/nas/{nas_id}/edit", {
            **NAS_FORM, "secret": "", "address": "192.0.2.0/30", "type": "cisco", "coa_port": "1700",
            "require_message_authenticator": ""})
        assert status == 200 and url.endswith("?done=saved"), body
        async with admin.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM nas WHERE id = $1", nas_id)
        assert row is not None
        assert row["secret"] == "s3cret-Radius-42" and str(row["address"]) == "192.0.2.0/30"
        assert row["type"] == "cisco" and row["coa_port"] == 1700 and not row["require_message_authenticator"]
        status, body, url = await c.post(f"/admin/nas/{nas_id}/edit", {**NAS_FORM, "secret": "another-one-99"})
        assert status == 200
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT secret FROM nas WHERE id = $1", nas_id) == "another-one-99"
        status, body, url = await c.post(f"/admin/nas/{nas_id}/delete", {})
        assert status == 200 and "NAS bras-1 deleted" in body
    log = await actions(admin, "nas", nas_id)
    assert [r["action"] for r in log] == ["create", "update", "update", "delete"]
    assert log[1]["before"] == {"address": "192.0.2.1/32", "type": "mikrotik", "coa_port": 3799,
                                "require_message_authenticator": True}
    assert log[2]["after"] == {"address": "192.0.2.1/32", "type": "mikrotik", "coa_port": 3799,
                               "require_message_authenticator": True, "secret": "(changed)"}
    assert not any("s3cret" in json.dumps([r["before"], r["after"]]) or "another-one" in
                   json.dumps([r["before"], r["after"]]) for r in log)
    assert all(r["partner_id"] is None and r["customer_id"] is None for r in log)


async def test_nas_fields_are_checked_and_the_constraints_said_in_words(admin: Admin) -> None:
    async with await logged_in(admin) as c:
        await c.get("/admin/nas/new")
        status, body, _ = await c.post("/admin/nas/new", {**NAS_FORM, "address": "192.0.2.1/24", "secret": "",
                                                          "coa_port": "70000"})
        assert status == 422
        assert field_error(body, "address") == "has bits set after the prefix: the prefix is 192.0.2.0/24"
        assert field_error(body, "secret") == "is required"
        assert "65535" in field_error(body, "coa_port")
        status, body, _ = await c.post("/admin/nas/new", {**NAS_FORM, "address": "not an address"})
        assert status == 422 and field_error(body, "address").startswith("must be an address or a prefix")
        # nas_blastradius_protected
        status, body, _ = await c.post("/admin/nas/new", {**NAS_FORM, "require_message_authenticator": "",
                                                          "limit_proxy_state": ""})
        assert status == 422 and "BlastRADIUS" in field_error(body, "limit_proxy_state"), body
        # nas_address_no_overlap, naming the other NAS
        status, _, _ = await c.post("/admin/nas/new", {**NAS_FORM, "address": "198.51.100.0/29"})
        assert status == 200
        status, body, _ = await c.post("/admin/nas/new", {**NAS_FORM, "name": "bras-2", "address": "198.51.100.4"})
        assert status == 422
        assert field_error(body, "address") == "overlaps the address of NAS bras-1 (198.51.100.0/29)"
        status, body, _ = await c.post("/admin/nas/new", {**NAS_FORM, "address": "203.0.113.9"})
        assert status == 422 and field_error(body, "name") == "another NAS has this name"
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM nas") == 1
        assert await conn.fetchval("SELECT count(*) FROM operations_log WHERE object_type = 'nas'") == 1


async def test_the_nas_api(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
        router_id = await router_row(conn, "r1")
    status, n = await call(admin, key, "POST", "/nas", {"name": "api-nas", "address": "10.9.0.0/28",
                                                        "secret": "shh-secret-77", "router_id": router_id})
    assert status == 201, n
    assert n["address"] == "10.9.0.0/28" and n["secret_hint"] == "••••••77" and "secret" not in n
    assert n["router"] == "r1" and n["type"] == "mikrotik" and n["require_message_authenticator"] is True
    status, got = await call(admin, key, "GET", f"/nas/{n['id']}")
    assert status == 200 and got == n
    status, changed = await call(admin, key, "PATCH", f"/nas/{n['id']}", {"coa_port": 3800, "router_id": None})
    assert status == 200 and changed["coa_port"] == 3800 and changed["router_id"] is None
    status, problem = await call(admin, key, "PATCH", f"/nas/{n['id']}", {"require_message_authenticator": False,
                                                                          "limit_proxy_state": False})
    assert status == 422 and "BlastRADIUS" in problem["errors"]["limit_proxy_state"]
    status, problem = await call(admin, key, "POST", "/nas", {"name": "x", "address": "10.9.0.8", "secret": "s"})
    assert status == 422 and problem["errors"]["address"].startswith("overlaps the address of NAS api-nas")
    status, problem = await call(admin, key, "POST", "/nas", {"name": "x", "address": "10.8.0.1", "secret": "s",
                                                              "router_id": 999999})
    assert status == 422 and problem["errors"] == {"router_id": "no such router"}
    status, problem = await call(admin, key, "POST", "/nas", {"name": "x", "address": "10.8.0.1"})
    assert status == 422 and "secret" in problem["detail"]
    status, problem = await call(admin, key, "POST", "/nas", {"name": "nul\u0000", "address": "10.7.0.1",
                                                              "secret": "s"})
    assert status == 422, problem
    for query in (f"sort=address&after={encode_cursor(['not-an-ip', 1])}", f"after={encode_cursor([3, 1])}"):
        status, problem = await call(admin, key, "GET", f"/nas?{query}")
        assert status == 400 and "cursor" in problem["detail"], problem
    status, page = await call(admin, key, "GET", "/nas?q=api")
    assert status == 200 and [i["name"] for i in page["items"]] == ["api-nas"] and page["next"] is None
    status, _ = await call(admin, key, "DELETE", f"/nas/{n['id']}")
    assert status == 200
    assert (await call(admin, key, "GET", f"/nas/{n['id']}"))[0] == 404
    log = await actions(admin, "nas", n["id"])
    assert [r["action"] for r in log] == ["create", "update", "delete"]
    assert log[0]["actor"].startswith("key:") and log[0]["after"]["secret"] == "(set)"


# -- routers --------------------------------------------------------------------------------------

async def test_a_router_is_created_with_a_sealed_password_edited_and_deleted_through_the_forms(
        admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        await conn.execute("INSERT INTO custom_fields (object_type, key, label, kind) "
                           "VALUES ('router', 'wiki', 'Wiki page', 'url'), ('router', 'rack', 'Rack', 'text')")
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/routers/new")
        assert 'name="custom.wiki"' in body and 'name="password"' in body
        status, body, _ = await c.post("/admin/routers/new", {**ROUTER_FORM, "password": "", "host": "bad host!",
                                                              "api_port": "0", "custom.wiki": "nope"})
        assert status == 422
        assert field_error(body, "password") == "is required"
        assert field_error(body, "host").startswith("must be a host name or an IP address")
        assert field_error(body, "api_port") != ""
        assert field_error(body, "custom.wiki") == "must be a web address (http:// or https://)"
        assert 'value="bad host!"' in body and "Router-Pass" not in body
        status, body, url = await c.post("/admin/routers/new", {**ROUTER_FORM, "custom.wiki": "https://wiki/r1",
                                                                "custom.rack": "A3"})
        assert status == 200, body
        router_id = created_id(url)
        assert '<a href="https://wiki/r1"' in body and "A3" in body and "Router-Pass-1" not in body
        assert "never synced" in body and "Sync now" in body
        async with admin.pool.acquire() as conn:
            sealed = await conn.fetchval("SELECT password FROM routers WHERE id = $1", router_id)
        assert sealed.startswith("lm1:") and admin.keyring.open(sealed, ROUTER_PURPOSE) == "Router-Pass-1"

        status, body = await c.get(f"/admin/routers/{router_id}/edit")
        assert "Router-Pass" not in body and "lm1:" not in body and 'value="core-1.example.net"' in body
        status, body, url = await c.post(f"/admin/routers/{router_id}/edit", {
            **ROUTER_FORM, "password": "", "api_tls": "", "api_port": "8728", "custom.rack": "B1",
            "custom.wiki": "https://wiki/r1"})
        assert status == 200 and url.endswith("?done=saved"), body
        async with admin.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM routers WHERE id = $1", router_id)
        assert row is not None
        assert row["password"] == sealed and row["api_tls"] is False and row["api_port"] == 8728
        assert row["custom"] == {"wiki": "https://wiki/r1", "rack": "B1"}
        status, body, url = await c.post(f"/admin/routers/{router_id}/edit", {**ROUTER_FORM, "password": "New-1"})
        async with admin.pool.acquire() as conn:
            again = await conn.fetchval("SELECT password FROM routers WHERE id = $1", router_id)
        assert admin.keyring.open(again, ROUTER_PURPOSE) == "New-1"
        status, body, url = await c.post(f"/admin/routers/{router_id}/delete", {})
        assert status == 200 and "Router core-1 deleted" in body
    log = await actions(admin, "router", router_id)
    assert [r["action"] for r in log] == ["create", "update", "update", "delete"]
    assert log[1]["before"]["api_tls"] is True and log[1]["after"]["custom"] == {"wiki": "https://wiki/r1",
                                                                                  "rack": "B1"}
    assert log[2]["after"]["password"] == "(changed)"
    assert not any("lm1:" in json.dumps([r["before"], r["after"]]) or "Pass" in json.dumps([r["before"], r["after"]])
                   for r in log)


async def test_the_routers_list_shows_sync_state_and_filters_those_out_of_sync(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        ids = {name: await router_row(conn, name) for name in ("in-step", "drifted", "failing", "never", "down")}
        ids["off"] = await router_row(conn, "off", enabled=False)
        await conn.executemany(
            "INSERT INTO router_sync (router_id, generation, reachable, last_attempt_at, last_success_at, last_error, "
            "adds, sets, removes, drift, report) VALUES ($1, 3, $2, now(), now() - interval '2 minutes', $3, "
            "$4, 1, 0, $5, $6)",
            [(ids["in-step"], True, None, 0, 0, {}),
             (ids["drifted"], True, None, 2, 2, {"drift": ["queue/simple alice: max-limit 1M/1M -> 5M/5M"],
                                                  "leaks": ["PPP secret mallory matches no active service"],
                                                  "missing": [], "failed": []}),
             (ids["failing"], True, "timed out reading /queue/simple", 0, 0, {}),
             (ids["down"], False, "connection refused", 0, 0, {})])
        await service(conn, "alice", router_id=ids["drifted"])
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/routers")
        assert status == 200
        names = re.findall(r'<a href="/admin/routers/\d+">([\w-]+)</a>', body)
        assert names == ["down", "drifted", "failing", "in-step", "never", "off"]
        for name, state in (("in-step", "in step"), ("drifted", "in step, drift repaired"), ("failing", "failed"),
                            ("never", "never synced"), ("down", "unreachable"), ("off", "disabled")):
            assert re.search(rf'>{name}</a>.*?<td class="mono">[^<]*</td>\s*<td><span class="status [\w-]+">{state}<',
                             body, re.S), name
        assert "timed out reading /queue/simple" in body and "+2 / ~1 / −0" in body
        status, body = await c.get("/admin/routers?sync=out")
        # drift the last run repaired is in step: not listed
        assert re.findall(r'<a href="/admin/routers/\d+">([\w-]+)</a>', body) == ["down", "failing", "never"]
        status, body = await c.get(f"/admin/routers/{ids['drifted']}")
        assert "queue/simple alice: max-limit 1M/1M -&gt; 5M/5M" in body
        assert "PPP secret mallory matches no active service" in body and "Revenue leaks" in body
        assert "1 service" in body
        status, body = await c.get("/admin/")
        assert re.search(r'href="/admin/routers\?sync=out"><div class="n">3<', body)  # the dashboard agrees
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
    status, page = await call(admin, key, "GET", "/routers?sync=out&limit=2")
    assert status == 200 and [r["name"] for r in page["items"]] == ["down", "failing"] and page["next"]
    assert page["items"][1]["in_sync"] is False
    assert all("password" not in r for r in page["items"])
    status, page = await call(admin, key, "GET", f"/routers?sync=out&limit=2&after={page['next']}")
    assert [r["name"] for r in page["items"]] == ["never"] and page["items"][0]["sync"] is None
    status, one = await call(admin, key, "GET", f"/routers/{ids['in-step']}")
    assert one["in_sync"] is True and one["sync"]["report"] == {} and one["services"] == 0


async def test_sync_now_notifies_provisiond_on_lastmile_routers(admin: Admin, db_url: str) -> None:
    async with admin.pool.acquire() as conn:
        router_id = await router_row(conn, "r1")
        off = await router_row(conn, "r-off", enabled=False)
        key = await api_key(conn)
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = await asyncpg.connect(db_url)
    try:
        await listener.add_listener("lastmile_routers", lambda *args: heard.put_nowait(json.loads(args[3])))
        async with await logged_in(admin) as c:
            status, body = await c.get(f"/admin/routers/{router_id}")
            assert "provisiond reconciles the router within about a second" in body
            status, body, url = await c.post(f"/admin/routers/{router_id}/sync", {})
            assert status == 200 and url.endswith("?done=sync") and "Sync asked" in body
            assert await asyncio.wait_for(heard.get(), 5) == {"table": "routers", "op": "UPDATE", "id": router_id}
            status, body, _ = await c.post(f"/admin/routers/{off}/sync", {})
            assert status == 409 and "disabled" in body
        status, answer = await call(admin, key, "POST", f"/routers/{router_id}/sync")
        assert status == 202 and answer["id"] == router_id and "provisiond" in answer["detail"]
        assert await asyncio.wait_for(heard.get(), 5) == {"table": "routers", "op": "UPDATE", "id": router_id}
        status, problem = await call(admin, key, "POST", f"/routers/{off}/sync")
        assert status == 409 and "disabled" in problem["detail"]
        assert (await call(admin, key, "POST", "/routers/999999/sync"))[0] == 404
        await asyncio.sleep(0.05)
        assert heard.empty()  # the refused ones sent nothing
    finally:
        await listener.close()
    log = await actions(admin, "router", router_id)
    assert [r["action"] for r in log] == ["sync", "sync"] and log[0]["actor"] == "root"


async def test_a_router_in_use_is_not_deleted_and_the_refusal_names_what_uses_it(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        router_id = await router_row(conn, "r1")
        await conn.execute("INSERT INTO nas (name, address, secret, router_id) VALUES ('bras-a', '10.0.0.1', 's', $1)",
                           router_id)
        await conn.execute("INSERT INTO flow_exporters (name, address, router_id) VALUES ('fx-1', '10.0.0.2', $1)",
                           router_id)
        for login in ("carol", "dave"):
            await service(conn, login, router_id=router_id)
        key = await api_key(conn)
    async with await logged_in(admin) as c:
        await c.get(f"/admin/routers/{router_id}")
        status, body, _ = await c.post(f"/admin/routers/{router_id}/delete", {})
        assert status == 409
        assert ("This router is used by 1 NAS (bras-a), 1 flow exporter (fx-1) and 2 services (carol, dave): "
                "move them to another router or delete them first.") in body
    status, problem = await call(admin, key, "DELETE", f"/routers/{router_id}")
    assert status == 409 and "1 NAS (bras-a)" in problem["detail"]
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM routers") == 1
    assert await actions(admin, "router", router_id) == []


async def test_the_routers_api_keeps_the_password_write_only(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
        await conn.execute("INSERT INTO custom_fields (object_type, key, label, kind, choices) "
                           "VALUES ('router', 'site', 'Site', 'choice', '{north,south}')")
    status, r = await call(admin, key, "POST", "/routers", {"name": "api-r", "host": "192.0.2.10", "username": "lm",
                                                            "password": "Api-Pass-1", "custom": {"site": "north"}})
    assert status == 201, r
    assert "password" not in r and r["sync"] is None and r["api_port"] == 8728 and r["custom"] == {"site": "north"}
    async with admin.pool.acquire() as conn:
        sealed = await conn.fetchval("SELECT password FROM routers WHERE id = $1", r["id"])
    assert admin.keyring.open(sealed, ROUTER_PURPOSE) == "Api-Pass-1"
    status, changed = await call(admin, key, "PATCH", f"/routers/{r['id']}", {"enabled": False, "api_port": 8729})
    assert status == 200 and changed["enabled"] is False and changed["custom"] == {"site": "north"}
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT password FROM routers WHERE id = $1", r["id"]) == sealed
    status, _ = await call(admin, key, "PATCH", f"/routers/{r['id']}", {"password": "Api-Pass-2"})
    assert status == 200
    async with admin.pool.acquire() as conn:
        sealed = await conn.fetchval("SELECT password FROM routers WHERE id = $1", r["id"])
    assert admin.keyring.open(sealed, ROUTER_PURPOSE) == "Api-Pass-2"
    status, problem = await call(admin, key, "PATCH", f"/routers/{r['id']}", {"custom": {"site": "east"}})
    assert status == 422 and problem["errors"] == {"custom.site": "must be one of: north, south"}
    status, problem = await call(admin, key, "POST", "/routers", {"name": "api-r", "host": "h", "username": "u",
                                                                  "password": "p"})
    assert status == 422 and problem["errors"] == {"name": "another router has this name"}
    status, problem = await call(admin, key, "POST", "/routers", {"name": "x", "host": "h", "username": "u"})
    assert status == 422 and "password" in problem["detail"]
    status, gone = await call(admin, key, "DELETE", f"/routers/{r['id']}")
    assert status == 200 and gone == {"id": r["id"]}
    assert [x["action"] for x in await actions(admin, "router", r["id"])] == ["create", "update", "update", "delete"]


# -- IP pools -------------------------------------------------------------------------------------

async def test_a_pool_is_created_renamed_and_deleted_with_its_leases_counted_and_listed(admin: Admin) -> None:
    async with await logged_in(admin) as c:
        await c.get("/admin/ip-pools/new")
        status, body, _ = await c.post("/admin/ip-pools/new", {"name": "big", "network": "10.0.0.0/8",
                                                               "managed_by": "lastmile"})
        assert status == 422 and "at most a /16" in field_error(body, "network")
        status, body, _ = await c.post("/admin/ip-pools/new", {"name": "v6", "network": "2001:db8::/64",
                                                               "managed_by": "lastmile"})
        assert status == 422 and "IPv4" in field_error(body, "network")
        status, body, url = await c.post("/admin/ip-pools/new", {"name": "cgnat-a", "network": "100.64.0.0/29",
                                                                 "managed_by": "lastmile"})
        assert status == 200, body
        pool_id = created_id(url)
        assert "Pool created with 6 addresses" in body
        status, body, _ = await c.post("/admin/ip-pools/new", {"name": "other", "network": "100.64.0.4/30",
                                                               "managed_by": "nas"})
        assert status == 422 and field_error(body, "network") == "overlaps pool cgnat-a (100.64.0.0/29)"
        status, body, _ = await c.post("/admin/ip-pools/new", {"name": "v6", "network": "2001:db8::/48",
                                                               "managed_by": "nas"})
        assert status == 200
        async with admin.pool.acquire() as conn:
            erin = await service(conn, "erin", pool_id=pool_id)
            await conn.execute("UPDATE ip_leases SET state = 'bound', service_id = $1, acct_unique_id = 'sess-1', "
                               "expires_at = now() + interval '1 hour' WHERE address = '100.64.0.2'", erin)
            await conn.execute("UPDATE ip_leases SET state = 'reserved', service_id = $1, "
                               "expires_at = now() + interval '1 minute' WHERE address = '100.64.0.3'", erin)
        status, body = await c.get("/admin/ip-pools")
        row = re.search(r'>cgnat-a</a>.*?</tr>', body, re.S)
        assert row is not None
        assert re.findall(r'<td class="num">([^<]*)</td>', row.group(0)) == ["6", "4", "1", "1", "33.3 %", "1"]
        assert "allocated by the NAS" in body
        status, body = await c.get(f"/admin/ip-pools/{pool_id}?limit=4")
        assert re.findall(r'<td class="mono">(100\.64\.0\.\d+)</td>', body) == [
            "100.64.0.1", "100.64.0.2", "100.64.0.3", "100.64.0.4"]
        assert f'<a href="/admin/services/{erin}">erin</a>' in body and "sess-1" in body
        nxt = re.search(r'href="([^"]*after=[^"]*)" rel="next"', body)
        assert nxt is not None
        status, body = await c.get(nxt.group(1).replace("&amp;", "&"))
        assert re.findall(r'<td class="mono">(100\.64\.0\.\d+)</td>', body) == ["100.64.0.5", "100.64.0.6"]
        status, body = await c.get(f"/admin/ip-pools/{pool_id}?state=bound")
        assert re.findall(r'<td class="mono">(100\.64\.0\.\d+)</td>', body) == ["100.64.0.2"]

        status, body, _ = await c.post(f"/admin/ip-pools/{pool_id}/delete", {})
        assert status == 409
        assert "1 service take their address from it (erin)" in body and "2 addresses of it are leased" in body
        status, body, url = await c.post(f"/admin/ip-pools/{pool_id}/edit", {"name": "cgnat-b", "network": "1.0.0.0/8"})
        assert status == 200 and url.endswith("?done=saved")
        async with admin.pool.acquire() as conn:
            assert str(await conn.fetchval("SELECT network FROM ip_pools WHERE id = $1", pool_id)) == "100.64.0.0/29"
            await conn.execute("UPDATE services SET pool_id = NULL")
            await conn.execute("UPDATE ip_leases SET state = 'free', expires_at = NULL")
        status, body, _ = await c.post(f"/admin/ip-pools/{pool_id}/delete", {})
        assert status == 200 and "Pool cgnat-b deleted" in body
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ip_leases WHERE pool_id = $1", pool_id) == 0
    log = await actions(admin, "ip_pool", pool_id)
    assert [r["action"] for r in log] == ["create", "update", "delete"]
    assert log[1]["before"] == {"name": "cgnat-a"} and log[1]["after"] == {"name": "cgnat-b"}


async def test_the_ip_pools_api(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
    status, p = await call(admin, key, "POST", "/ip-pools", {"name": "api-pool", "network": "100.65.0.0/30"})
    assert status == 201, p
    assert p["size"] == 2 and p["free"] == 2 and p["bound"] == 0 and p["managed_by"] == "lastmile"
    status, problem = await call(admin, key, "POST", "/ip-pools", {"name": "x", "network": "100.65.0.1/32"})
    assert status == 422 and problem["errors"]["network"].startswith("overlaps pool api-pool")
    status, problem = await call(admin, key, "POST", "/ip-pools", {"name": "x", "network": "100.66.0.1/24"})
    assert status == 422 and "100.66.0.0/24" in problem["errors"]["network"]
    status, leases = await call(admin, key, "GET", f"/ip-pools/{p['id']}/leases?limit=1")
    assert status == 200 and [x["address"] for x in leases["items"]] == ["100.65.0.1"] and leases["next"]
    status, leases = await call(admin, key, "GET", f"/ip-pools/{p['id']}/leases?limit=1&after={leases['next']}")
    assert [x["address"] for x in leases["items"]] == ["100.65.0.2"] and leases["items"][0]["state"] == "free"
    status, problem = await call(admin, key, "GET", f"/ip-pools/{p['id']}/leases?after={encode_cursor(['x', 0])}")
    assert status == 400, problem
    status, renamed = await call(admin, key, "PATCH", f"/ip-pools/{p['id']}", {"name": "renamed"})
    assert status == 200 and renamed["name"] == "renamed" and renamed["network"] == "100.65.0.0/30"
    status, page = await call(admin, key, "GET", "/ip-pools")
    assert [x["name"] for x in page["items"]] == ["renamed"]
    status, _ = await call(admin, key, "DELETE", f"/ip-pools/{p['id']}")
    assert status == 200
    assert (await call(admin, key, "GET", f"/ip-pools/{p['id']}/leases"))[0] == 404
    assert [r["action"] for r in await actions(admin, "ip_pool", p["id"])] == ["create", "update", "delete"]


# -- flow exporters -------------------------------------------------------------------------------

async def test_flow_exporters_through_the_forms_and_the_api(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        router_id = await router_row(conn, "r1")
        key = await api_key(conn)
    async with await logged_in(admin) as c:
        await c.get("/admin/flow-exporters/new")
        status, body, _ = await c.post("/admin/flow-exporters/new", {"name": "fx", "address": "10.0.0.0/24",
                                                                     "sampling_rate": "0"})
        assert status == 422 and field_error(body, "sampling_rate") != ""
        status, body, _ = await c.post("/admin/flow-exporters/new", {"name": "fx", "address": "10.0.0.0/24",
                                                                     "sampling_rate": "1"})
        assert status == 422 and field_error(body, "address") == "must be one IP address, like 192.0.2.1"
        status, body, _ = await c.post("/admin/flow-exporters/new", {
            "name": "fx", "address": "10.0.0.9", "sampling_rate": "100", "router_id": str(router_id),
            "enabled": "1"})
        assert status == 200 and "Flow exporter fx created" in body and "1:100" in body, body
        async with admin.pool.acquire() as conn:
            fx = await conn.fetchval("SELECT id FROM flow_exporters WHERE name = 'fx'")
        status, body, _ = await c.post("/admin/flow-exporters/new", {"name": "fx2", "address": "10.0.0.9",
                                                                     "sampling_rate": "1"})
        assert status == 422 and field_error(body, "address") == "another exporter has this address"
        status, body, _ = await c.post(f"/admin/flow-exporters/{fx}/edit", {
            "name": "fx", "address": "10.0.0.10", "sampling_rate": "100", "router_id": ""})
        assert status == 200 and "Changes saved" in body and "disabled" in body
        status, body, _ = await c.post(f"/admin/flow-exporters/{fx}/delete", {})
        assert status == 200 and "Flow exporter fx deleted" in body
    log = await actions(admin, "flow_exporter", fx)
    assert [r["action"] for r in log] == ["create", "update", "delete"]
    assert log[1]["before"] == {"address": "10.0.0.9", "router_id": router_id, "enabled": True}
    assert log[1]["after"] == {"address": "10.0.0.10", "router_id": None, "enabled": False}

    status, e = await call(admin, key, "POST", "/flow-exporters", {"name": "api-fx", "address": "2001:db8::1"})
    assert status == 201 and e["address"] == "2001:db8::1" and e["sampling_rate"] == 1 and e["enabled"] is True
    status, e2 = await call(admin, key, "PATCH", f"/flow-exporters/{e['id']}", {"router_id": router_id})
    assert status == 200 and e2["router"] == "r1"
    status, problem = await call(admin, key, "PATCH", f"/flow-exporters/{e['id']}", {"address": "nope"})
    assert status == 422 and "address" in problem["errors"]
    status, page = await call(admin, key, "GET", "/flow-exporters?sort=address&dir=desc")
    assert status == 200 and [x["name"] for x in page["items"]] == ["api-fx"]
    assert (await call(admin, key, "DELETE", f"/flow-exporters/{e['id']}"))[0] == 200
    assert (await call(admin, key, "GET", f"/flow-exporters/{e['id']}"))[0] == 404


# -- permissions ----------------------------------------------------------------------------------

async def test_roles_without_networking_are_refused_and_viewers_only_read(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        router_id = await router_row(conn, "r1")
        nas_id = await conn.fetchval("INSERT INTO nas (name, address, secret) VALUES ('n', '10.1.0.1', 'sec') "
                                     "RETURNING id")
        finance = await api_key(conn, "finance")
        technician = await api_key(conn, "technician")
    async with await logged_in(admin, "money", "finance") as c:
        for path in ("/admin/nas", f"/admin/nas/{nas_id}", "/admin/routers", "/admin/routers?sync=out",
                     "/admin/ip-pools", "/admin/flow-exporters", "/admin/nas/new"):
            status, body = await c.get(path)
            assert status == 403 and "networking." in body, path
        status, body = await c.get("/admin/")
        assert 'href="/admin/nas"' not in body
    async with await logged_in(admin, "tech", "technician") as c:  # networking.view only
        status, body = await c.get(f"/admin/routers/{router_id}")
        assert status == 200 and "Sync now" not in body and "/edit" not in body
        status, body = await c.get("/admin/nas")
        assert status == 200 and "New NAS" not in body
        assert (await c.get("/admin/nas/new"))[0] == 403
        assert (await c.post(f"/admin/routers/{router_id}/sync", {}))[0] == 403
        assert (await c.post(f"/admin/nas/{nas_id}/delete", {}))[0] == 403
    for path in ("/nas", f"/nas/{nas_id}", "/routers", "/ip-pools", "/flow-exporters"):
        assert (await call(admin, finance, "GET", path))[0] == 403, path
    assert (await call(admin, technician, "GET", "/nas"))[0] == 200
    assert (await call(admin, technician, "POST", "/nas", {"name": "x", "address": "10.2.0.1", "secret": "s"}))[0] \
        == 403
    assert (await call(admin, technician, "POST", f"/routers/{router_id}/sync"))[0] == 403
    assert (await call(admin, technician, "DELETE", f"/nas/{nas_id}"))[0] == 403
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM nas") == 1
        assert await conn.fetchval("SELECT count(*) FROM operations_log") == 0

"""CPE devices in the admin and the API, over the ACS's tables: the list and its search (the
parameter value index included), the device page with its tree (secrets masked), links, tags,
tasks (validated per kind as the ACS validates them), cancel and retry, connection requests
(the ACS's answer faked by updating the row), the access log, the customer page's devices and the
service's CPE serial; permissions and partner scoping (another partner's device is 404)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from admin.auth.store import Connection
from admin.devices.devices import CPE_PASSWORD_PURPOSE
from tests.integration.admin.conftest import Admin, Client, api_key, call, logged_in, make_admin

IGD = "InternetGatewayDevice."
TREE_098 = [
    (IGD + "DeviceInfo.", None, "", None),
    (IGD + "DeviceInfo.SoftwareVersion", "V3.1.2", "xsd:string", False),
    (IGD + "DeviceInfo.UpTime", "3600", "xsd:unsignedInt", False),
    (IGD + "ManagementServer.PeriodicInformInterval", "300", "xsd:unsignedInt", True),
    (IGD + "LANDevice.1.WLANConfiguration.1.SSID", "Home-Wi-Fi", "xsd:string", True),
    (IGD + "LANDevice.1.WLANConfiguration.1.PreSharedKey.1.KeyPassphrase", "wifi-secret-77", "xsd:string", True),
    (IGD + "LANDevice.1.WLANConfiguration.10.SSID", "Guest", "xsd:string", True),
    (IGD + "LANDevice.1.WLANConfiguration.2.SSID", "Home-Wi-Fi", "xsd:string", True),
    (IGD + "WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.Username", "alpha-1", "xsd:string", True),
    (IGD + "WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.Password", "ppp-secret-99", "xsd:string", True),
]


@dataclass
class World:
    partner_a: int
    partner_b: int
    customer_a: int
    customer_b: int
    service_a: int
    service_b: int
    device_a: int        # linked to customer_a / service_a, TR-098, informed now
    device_b: int        # linked to customer_b, informed 2 hours ago
    device_free: int     # linked to nobody, never informed


async def add_device(conn: Connection, serial: str, *, customer_id: int | None = None, service_id: int | None = None,
                     software: str = "V3.1.2", tags: list[str] | None = None, informed: str | None = "0 seconds",
                     data_model: str = "tr098", pppoe: str = "") -> int:
    return int(await conn.fetchval(
        "INSERT INTO acs_devices (cwmp_id, oui, product_class, serial, manufacturer, data_model, software_version, "
        "tags, customer_id, service_id, last_inform_at, address, pppoe_username) "
        "VALUES ('00D09E-HG8245-' || $1, '00D09E', 'HG8245', $1, 'Huawei', $2, $3, $4, $5, $6, "
        "now() - $7::text::interval, '198.51.100.9', $8) RETURNING id",
        serial, data_model, software, tags or [], customer_id, service_id, informed, pppoe))


async def add_tree(conn: Connection, device_id: int, rows: Sequence[tuple[str, str | None, str, bool | None]]) -> None:
    await conn.executemany("INSERT INTO acs_parameters (device_id, path, value, type, writable, read_at) "
                           "VALUES ($1, $2, $3, $4, $5, now() - interval '5 minutes')",
                           [(device_id, *r) for r in rows])


async def world(conn: Connection) -> World:
    """Two partners with a customer and a service each; a device of each, and one of nobody's."""
    tariff = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ('T', 1, 1) "
                                 "RETURNING id")
    ids: list[int] = []
    for name in ("Alpha ISP", "Bravo ISP"):
        partner = await conn.fetchval("INSERT INTO partners (name) VALUES ($1) RETURNING id", name)
        tag = name.split()[0].lower()
        customer = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, $3) "
                                       "RETURNING id", partner, f"C-{tag}", f"{name.split()[0]} Home")
        service = await conn.fetchval("INSERT INTO services (customer_id, tariff_id, login, password) "
                                      "VALUES ($1, $2, $3, 'pw') RETURNING id", customer, tariff, f"{tag}-1")
        ids += [partner, customer, service]
    a = await add_device(conn, "SNA1", customer_id=ids[1], service_id=ids[2], tags=["fiber", "vip"], pppoe="alpha-1")
    b = await add_device(conn, "SNB1", customer_id=ids[4], software="V2.0", informed="2 hours", data_model="tr181")
    free = await add_device(conn, "SNFREE", informed=None, software="")
    await add_tree(conn, a, TREE_098)
    return World(ids[0], ids[3], ids[1], ids[4], ids[2], ids[5], a, b, free)


async def partner_client(admin: Admin, login: str, partner_id: int, role: str = "super") -> Client:
    async with admin.pool.acquire() as conn:
        await make_admin(conn, login, role, partner_id=partner_id)
    c = admin.client()
    status, body, _ = await c.login(login)
    assert status == 200, body
    await c.get("/admin/profile")
    return c


async def htmx_post(c: Client, path: str, data: Any) -> tuple[int, str, dict[str, str]]:
    """A POST as htmx sends it: the CSRF token in a header, the body a form (or multipart)."""
    async with c.session.post(c.url + path, data=data, allow_redirects=False,
                              headers={"HX-Request": "true", "X-CSRF-Token": c.csrf}) as r:
        return r.status, await r.text(), dict(r.headers)


def cwmp_ids(html: str) -> list[str]:
    return re.findall(r'<a href="/admin/cpe/devices/\d+">([^<]+)</a>', html)


async def oplog(admin: Admin, object_type: str) -> list[asyncpg.Record]:
    async with admin.pool.acquire() as conn:
        return list(await conn.fetch("SELECT * FROM operations_log WHERE object_type = $1 ORDER BY id", object_type))


# -- the list and its search --------------------------------------------------------------------

async def test_the_device_list_searches_by_every_filter_and_exports_csv(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/cpe/devices")
        assert status == 200
        assert cwmp_ids(body) == ["00D09E-HG8245-SNA1", "00D09E-HG8245-SNB1", "00D09E-HG8245-SNFREE"]  # newest first
        for query, expected in [
            ("q=SNB", ["SNB1"]), ("q=alpha-1", ["SNA1"]), ("q=HG8245-SNF", ["SNFREE"]), ("q=%25", []),
            ("customer=C-bravo", ["SNB1"]), ("customer=alph", ["SNA1"]), (f"customer_id={w.customer_a}", ["SNA1"]),
            ("software_version=V2.0", ["SNB1"]), ("tag=vip", ["SNA1"]), ("tag=none", []),
            ("param=SSID&value=Home-Wi-Fi", ["SNA1"]), ("param=SSID&value=Guest", ["SNA1"]),
            ("param=BSSID&value=Guest", []), ("value=V3.1.2", ["SNA1"]), ("param=UpTime", ["SNA1"]),
            ("status=online", ["SNA1"]), ("status=today", ["SNB1"]), ("status=offline", ["SNFREE"]),
            ("sort=serial&dir=asc", ["SNA1", "SNB1", "SNFREE"]),
        ]:
            status, body = await c.get("/admin/cpe/devices?" + query)
            assert status == 200, (query, body)
            assert [i.rsplit("-", 1)[1] for i in cwmp_ids(body)] == expected, query
        status, body = await c.get("/admin/cpe/devices?limit=2")
        nxt = re.search(r'href="([^"]*after=[^"]*)" rel="next"', body)
        assert nxt is not None and len(cwmp_ids(body)) == 2
        status, body = await c.get(nxt.group(1).replace("&amp;", "&"))
        assert status == 200 and [i[-6:] for i in cwmp_ids(body)] == ["SNFREE"]
        status, body = await c.get("/admin/cpe/devices?after=bm9uc2Vuc2U")
        assert status == 400
        status, body = await c.get("/admin/cpe/devices?format=csv&sort=serial&dir=asc")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["serial"] for r in rows] == ["SNA1", "SNB1", "SNFREE"]
    assert rows[0]["tags"] == "fiber vip" and rows[0]["customer_number"] == "C-alpha" and rows[0]["status"] == "online"


async def test_online_is_twice_the_inform_interval_or_ten_minutes(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
        # device_a informs every 120 s: 9 minutes ago is not online (today); device_b has no interval (10 min)
        await conn.execute("UPDATE acs_parameters SET value = '120' WHERE path LIKE '%PeriodicInformInterval'")
        await conn.execute("UPDATE acs_devices SET last_inform_at = now() - interval '9 minutes' "
                           "WHERE id = ANY($1::bigint[])", [w.device_a, w.device_b])
    status, page = await call(admin, key, "GET", "/cpe/devices?status=online")
    assert status == 200 and [d["serial"] for d in page["items"]] == ["SNB1"]
    status, page = await call(admin, key, "GET", "/cpe/devices?status=today")
    assert [d["serial"] for d in page["items"]] == ["SNA1"] and page["items"][0]["inform_interval"] == 120


# -- the device page ------------------------------------------------------------------------------

async def test_the_device_page_shows_the_tree_in_natural_order_with_secrets_masked(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
        await conn.execute("INSERT INTO acs_faults (device_id, source, rpc, code, message) "
                           "VALUES ($1, 'session', 'SetParameterValues', 9007, 'Invalid parameter value')", w.device_a)
        await conn.execute("INSERT INTO acs_sessions (started_at, device_id, address, events, rpcs, duration_ms, "
                           "outcome) VALUES (now(), $1, '198.51.100.9', '{2 PERIODIC}', '{Inform}', 12, 'ok')",
                           w.device_a)
    async with await logged_in(admin) as c:
        status, body = await c.get(f"/admin/cpe/devices/{w.device_a}")
        assert status == 200
        assert "Alpha Home" in body and "alpha-1" in body and "fiber" in body
        assert "wifi-secret-77" not in body and "ppp-secret-99" not in body and body.count("••••••") == 2
        assert "Home-Wi-Fi" in body and "Invalid parameter value" in body and "2 PERIODIC" in body
        wlan = [body.index(f'title="{IGD}LANDevice.1.WLANConfiguration.{i}.SSID"') for i in (1, 2, 10)]
        assert wlan == sorted(wlan)  # instances in their order: 1, 2, 10
        status, body = await c.get(f"/admin/cpe/devices/{w.device_a}?find=UpTime")
        assert "UpTime" in body and "SoftwareVersion" not in body
        status, _ = await c.get("/admin/cpe/devices/999999999")
        assert status == 404
    status, d = await call(admin, key, "GET", f"/cpe/devices/{w.device_a}")
    assert status == 200 and d["customer_number"] == "C-alpha" and d["status"] == "online"
    values = {p["path"]: p["value"] for p in d["parameters"]}
    assert values[IGD + "LANDevice.1.WLANConfiguration.1.PreSharedKey.1.KeyPassphrase"] == "••••••"
    assert values[IGD + "DeviceInfo."] is None and len(d["parameters"]) == len(TREE_098)
    assert "ppp-secret-99" not in json.dumps(d)


async def test_a_device_is_linked_unlinked_and_tagged_by_hand_and_marked_stale(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
        await conn.execute("UPDATE acs_devices SET stale = false")
    async with await logged_in(admin) as c:
        await c.get(f"/admin/cpe/devices/{w.device_free}")
        status, body, url = await c.post(f"/admin/cpe/devices/{w.device_free}/link", {"target": "ALPHA-1"})
        assert status == 200 and url.endswith("?done=linked"), body
        status, body, _ = await c.post(f"/admin/cpe/devices/{w.device_free}/link", {"target": "nobody"})
        assert status == 422 and "no service has this login" in body
        status, body, url = await c.post(f"/admin/cpe/devices/{w.device_free}/tags", {"tags": "lab, beta lab"})
        assert url.endswith("?done=tags")
        status, body, _ = await c.post(f"/admin/cpe/devices/{w.device_free}/tags", {"tags": "no/slash"})
        assert status == 422 and "is not a tag" in body
    async with admin.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM acs_devices WHERE id = $1", w.device_free)
    assert row is not None
    assert (row["customer_id"], row["service_id"], row["tags"], row["stale"]) == (
        w.customer_a, w.service_a, ["lab", "beta"], True)
    # the API: a customer alone drops a service of another customer; a service brings its customer
    status, d = await call(admin, key, "PATCH", f"/cpe/devices/{w.device_free}", {"customer_id": w.customer_b})
    assert status == 200 and (d["customer_id"], d["service_id"]) == (w.customer_b, None)
    status, d = await call(admin, key, "PATCH", f"/cpe/devices/{w.device_free}", {"service_id": w.service_a})
    assert status == 200 and (d["customer_id"], d["service_id"]) == (w.customer_a, w.service_a)
    status, p = await call(admin, key, "PATCH", f"/cpe/devices/{w.device_free}",
                           {"service_id": w.service_a, "customer_id": w.customer_b})
    assert status == 422 and p["errors"] == {"customer_id": "is not the service's customer"}
    status, p = await call(admin, key, "PATCH", f"/cpe/devices/{w.device_free}", {"customer_id": 999999})
    assert status == 422 and p["errors"] == {"customer_id": "no such customer"}
    status, p = await call(admin, key, "PATCH", f"/cpe/devices/{w.device_free}", {"tags": ["a b"]})
    assert status == 422
    status, d = await call(admin, key, "PATCH", f"/cpe/devices/{w.device_free}", {"customer_id": None})
    assert status == 200 and (d["customer_id"], d["service_id"]) == (None, None)
    log = await oplog(admin, "cpe_device")
    assert [r["summary"] for r in log] == [
        "changed CPE 00D09E-HG8245-SNFREE: linked to customer C-alpha, service alpha-1",
        "changed CPE 00D09E-HG8245-SNFREE: tags lab, beta",
        "changed CPE 00D09E-HG8245-SNFREE: linked to customer C-bravo",
        "changed CPE 00D09E-HG8245-SNFREE: linked to customer C-alpha, service alpha-1",
        "changed CPE 00D09E-HG8245-SNFREE: unlinked from customer C-alpha"]
    assert [r["partner_id"] for r in log] == [w.partner_a, w.partner_a, w.partner_b, w.partner_a, w.partner_a]
    assert log[0]["before"] == {"customer_id": None, "service_id": None}


async def test_a_device_gets_a_password_of_its_own_sealed_and_never_shown(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
        await conn.execute("UPDATE acs_devices SET stale = false")
    async with await logged_in(admin) as c:
        status, body, _ = await c.post(f"/admin/cpe/devices/{w.device_free}/password", {"password": "short"})
        assert status == 422 and "8 to 256 characters" in body
        status, body, url = await c.post(f"/admin/cpe/devices/{w.device_free}/password",
                                         {"password": "Tr0ub4dor&3-long"})
        assert status == 200 and url.endswith("?done=password") and "Tr0ub4dor" not in body
        assert "Its own password, user name" in body and "00D09E-HG8245-SNFREE" in body
    async with admin.pool.acquire() as conn:
        sealed = await conn.fetchval("SELECT cpe_password FROM acs_devices WHERE id = $1", w.device_free)
        assert await conn.fetchval("SELECT stale FROM acs_devices WHERE id = $1", w.device_free) is False
    assert "Tr0ub4dor" not in sealed and admin.keyring.open(sealed, CPE_PASSWORD_PURPOSE) == "Tr0ub4dor&3-long"
    status, d = await call(admin, key, "GET", f"/cpe/devices/{w.device_free}")
    assert status == 200 and d["own_password"] is True and "cpe_password" not in d
    status, _ = await call(admin, key, "PATCH", f"/cpe/devices/{w.device_free}", {"cpe_password": "has space in"})
    assert status == 422
    status, d = await call(admin, key, "PATCH", f"/cpe/devices/{w.device_free}", {"cpe_password": None})
    assert status == 200 and d["own_password"] is False
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT cpe_password FROM acs_devices WHERE id = $1", w.device_free) is None
    log = await oplog(admin, "cpe_device")
    assert [r["summary"] for r in log] == [
        "changed CPE 00D09E-HG8245-SNFREE: its own CWMP password set",
        "changed CPE 00D09E-HG8245-SNFREE: its own CWMP password removed"]
    assert all("Tr0ub4dor" not in json.dumps([r["before"], r["after"]]) for r in log)


# -- tasks ------------------------------------------------------------------------------------------

async def test_tasks_are_queued_from_the_page_checked_per_kind_cancelled_and_retried(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    path = f"/admin/cpe/devices/{w.device_a}/tasks"
    async with await logged_in(admin) as c:
        await c.get(f"/admin/cpe/devices/{w.device_a}")
        status, _, url = await c.post(path, {"kind": "reboot", "connect": "1"})
        assert status == 200 and "done=queued" in url and "wakeup=" in url
        status, _, url = await c.post(path, {"kind": "set", "path": "@wifi.ssid", "value": "New", "type": "xsd:string"})
        assert status == 200 and "wakeup=" not in url
        status, _, _ = await c.post(path, {"kind": "refresh", "path": IGD + "LANDevice."})
        assert status == 200
        status, body, _ = await c.post(path, {"kind": "set", "path": "@wifi.nothing", "value": "x"})
        assert status == 422 and "unknown alias &#39;@wifi.nothing&#39;" in body
        status, body, _ = await c.post(path, {"kind": "set", "path": IGD + "LANDevice.", "value": "x"})
        assert status == 422 and "is an object, not a parameter" in body
        status, body, _ = await c.post(path, {"kind": "download", "file_id": "77"})
        assert status == 422 and "no such file 77" in body
        status, body, _ = await c.post(path, {"kind": "upload"})
        assert status == 422
        async with admin.pool.acquire() as conn:
            tasks = await conn.fetch("SELECT id, kind, args, status, created_by FROM acs_tasks ORDER BY id")
            assert await conn.fetchval("SELECT count(*) FROM acs_wakeups WHERE status = 'pending'") == 1
        assert [(t["kind"], t["args"]) for t in tasks] == [
            ("reboot", {}), ("set", {"values": [["@wifi.ssid", "New", "xsd:string"]]}),
            ("refresh", {"path": IGD + "LANDevice."})]
        assert {t["created_by"] for t in tasks} == {"root"}
        reboot, _, refresh = (t["id"] for t in tasks)
        status, _, url = await c.post(f"/admin/cpe/tasks/{reboot}/cancel", {})
        assert url.endswith("?done=cancel")
        status, body, _ = await c.post(f"/admin/cpe/tasks/{reboot}/cancel", {})
        assert status == 409 and "only a queued task can be cancelled" in body
        status, body, _ = await c.post(f"/admin/cpe/tasks/{refresh}/retry", {})
        assert status == 409
        async with admin.pool.acquire() as conn:
            await conn.execute("UPDATE acs_tasks SET status = 'fault', attempts = 5, fault_code = 9002, "
                               "fault_string = 'Internal error' WHERE id = $1", refresh)
        status, body = await c.get(f"/admin/cpe/devices/{w.device_a}")
        assert "9002 Internal error" in body
        status, _, url = await c.post(f"/admin/cpe/tasks/{refresh}/retry", {})
        assert url.endswith("?done=retry")
    async with admin.pool.acquire() as conn:
        rows = {r["id"]: r for r in await conn.fetch("SELECT * FROM acs_tasks")}
    assert rows[reboot]["status"] == "cancelled" and rows[reboot]["finished_at"] is not None
    assert rows[refresh]["status"] == "queued" and rows[refresh]["attempts"] == 0
    assert rows[refresh]["fault_code"] is None
    log = await oplog(admin, "cpe_task")
    assert [r["action"] for r in log] == ["queue", "queue", "queue", "cancel", "retry"]
    assert log[0]["summary"] == "queued reboot on CPE 00D09E-HG8245-SNA1 with a connection request"
    assert {r["customer_id"] for r in log} == {w.customer_a}


async def test_the_task_api_validates_args_and_asks_a_connection_request(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
    tasks = f"/cpe/devices/{w.device_a}/tasks"
    bad = [({"kind": "get", "args": {"names": []}}, "get: names must be a non-empty list of paths"),
           ({"kind": "set", "args": {"values": [["Device.X", "1", "int"]]}}, "is not [path, value]"),
           ({"kind": "delete_object", "args": {"path": "Device.WiFi.SSID."}}, "is not an instance"),
           ({"kind": "add_object", "args": {"path": "Device.WiFi.SSID"}}, "is not an object"),
           ({"kind": "reboot", "args": {"now": True}}, "reboot: unknown argument 'now'"),
           ({"kind": "refresh", "args": {"path": "Other.Root."}}, "is neither an alias nor under"),
           ({"kind": "set_attributes", "args": {"attributes": [["Device.X", 9]]}}, "notification 0-6"),
           ({"kind": "download", "args": {"url": "ftp://x", "file_type": "1 Firmware Upgrade Image"}}, "http or https"),
           ({"kind": "download", "args": {"file_id": 5}}, "no such file 5")]
    for body, words in bad:
        status, problem = await call(admin, key, "POST", tasks, body)
        assert status == 422 and words in problem["errors"]["args"], (body, problem)
    status, problem = await call(admin, key, "POST", tasks, {"kind": "dance"})
    assert status == 422 and "kind" in problem["errors"]
    secret = IGD + "WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.Password"
    status, t = await call(admin, key, "POST", tasks + "?connection_request=true",
                           {"kind": "set", "args": {"values": [[secret, "new-ppp-pass", "xsd:string"],
                                                               ["@pppoe.username", "alpha-1"]]}})
    assert status == 202, t
    assert t["status"] == "queued" and t["wakeup_id"] is not None and t["kind"] == "set"
    assert t["args"]["values"] == [[secret, "••••••", "xsd:string"], ["@pppoe.username", "alpha-1"]]
    async with admin.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT args FROM acs_tasks WHERE id = $1", t["id"])
        wakeup = await conn.fetchrow("SELECT * FROM acs_wakeups WHERE id = $1", t["wakeup_id"])
    assert stored["values"][0][1] == "new-ppp-pass"  # what the ACS sends; never shown
    assert wakeup is not None and wakeup["device_id"] == w.device_a and wakeup["status"] == "pending"
    assert "new-ppp-pass" not in json.dumps([r["after"] for r in await oplog(admin, "cpe_task")])
    status, got = await call(admin, key, "GET", f"/cpe/tasks/{t['id']}")
    assert status == 200 and got["id"] == t["id"] and got["wakeup_id"] is None
    status, got = await call(admin, key, "POST", tasks, {"kind": "get", "args": {"names": ["@device_info"]}})
    assert status == 202 and got["wakeup_id"] is None
    status, cancelled = await call(admin, key, "DELETE", f"/cpe/tasks/{got['id']}")
    assert status == 200 and cancelled["status"] == "cancelled"
    status, problem = await call(admin, key, "DELETE", f"/cpe/tasks/{got['id']}")
    assert status == 409
    status, problem = await call(admin, key, "POST", f"/cpe/tasks/{got['id']}/retry")
    assert status == 409 and "not failed" in problem["title"]
    status, _ = await call(admin, key, "GET", "/cpe/tasks/999999")
    assert status == 404
    # a connection request alone, and what became of it
    status, cr = await call(admin, key, "POST", f"/cpe/devices/{w.device_a}/connection-request")
    assert status == 202 and (cr["device_id"], cr["status"], cr["http_status"]) == (w.device_a, "pending", None)
    async with admin.pool.acquire() as conn:
        await conn.execute("UPDATE acs_wakeups SET status = 'sent', http_status = 200, done_at = now() "
                           "WHERE id = $1", cr["id"])
    status, got = await call(admin, key, "GET", f"/cpe/connection-requests/{cr['id']}")
    assert status == 200 and (got["status"], got["http_status"]) == ("sent", 200)
    status, _ = await call(admin, key, "GET", "/cpe/connection-requests/999999")
    assert status == 404


async def test_a_connection_request_is_a_row_the_page_polls_until_the_acs_answers(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    async with await logged_in(admin) as c:
        await c.get(f"/admin/cpe/devices/{w.device_a}")
        status, body, _ = await htmx_post(c, f"/admin/cpe/devices/{w.device_a}/wakeup", {})
        assert status == 200 and "pending" in body
        wakeup_id = int(re.search(r'hx-get="/admin/cpe/wakeups/(\d+)"', body).group(1))  # type: ignore[union-attr]
        status, body = await c.get(f"/admin/cpe/wakeups/{wakeup_id}")
        assert 'hx-trigger="load delay:1s"' in body  # still polling
        async with admin.pool.acquire() as conn:  # what an acs instance writes (acs/store.py finish_wakeup)
            await conn.execute("UPDATE acs_wakeups SET status = 'sent', http_status = 204, done_at = now() "
                               "WHERE id = $1", wakeup_id)
        status, body = await c.get(f"/admin/cpe/wakeups/{wakeup_id}")
        assert "sent" in body and "HTTP 204" in body and "hx-get" not in body
        async with admin.pool.acquire() as conn:
            await conn.execute("UPDATE acs_wakeups SET status = 'failed', http_status = 401, error = '' WHERE id = $1",
                               wakeup_id)
        status, body = await c.get(f"/admin/cpe/devices/{w.device_a}")
        assert "refused the credentials" in body
        async with admin.pool.acquire() as conn:  # asked long ago and never taken: polling stops
            await conn.execute("UPDATE acs_wakeups SET status = 'pending', requested_at = now() - interval '1 minute'")
        status, body = await c.get(f"/admin/cpe/wakeups/{wakeup_id}")
        assert "is acs running?" in body and "hx-get" not in body
        status, _, url = await c.post(f"/admin/cpe/devices/{w.device_a}/wakeup", {})
        assert url.endswith("?done=wakeup")
    log = await oplog(admin, "cpe_device")
    assert [r["action"] for r in log] == ["connection request"] * 2 and log[0]["customer_id"] == w.customer_a


# -- the access log, the customer page ------------------------------------------------------------

async def test_the_access_log_filters_and_pages(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
        await conn.executemany(
            "INSERT INTO acs_sessions (started_at, device_id, address, events, rpcs, faults, duration_ms, outcome) "
            "VALUES (now() - $1::text::interval, $2, '198.51.100.9', $3, $4, $5, $6, $7)",
            [("1 minute", w.device_a, ["2 PERIODIC"], ["Inform"], [], 8, "ok"),
             ("2 minutes", w.device_b, ["1 BOOT", "4 VALUE CHANGE"], ["Inform", "SetParameterValues"],
              ["9007 SetParameterValues"], 420, "fault"),
             ("3 minutes", w.device_a, ["6 CONNECTION REQUEST"], ["Inform", "Reboot"], [], 55, "ok")])
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/cpe/sessions")
        assert status == 200 and body.count("/admin/cpe/devices/") == 3 and "9007 SetParameterValues" in body
        status, body = await c.get("/admin/cpe/sessions?outcome=fault")
        assert body.count("SNB1") == 1 and "SNA1" not in body
        status, body = await c.get("/admin/cpe/sessions?format=csv")
        assert body.splitlines()[2].split(",")[5] == "Inform SetParameterValues"
    status, page = await call(admin, key, "GET", "/cpe/sessions?event=1%20BOOT")
    assert status == 200 and [s["cwmp_id"] for s in page["items"]] == ["00D09E-HG8245-SNB1"]
    status, page = await call(admin, key, "GET", f"/cpe/sessions?device_id={w.device_a}&limit=1")
    assert page["items"][0]["events"] == ["2 PERIODIC"] and page["next"]
    status, page = await call(admin, key, "GET", f"/cpe/sessions?device_id={w.device_a}&limit=1&after={page['next']}")
    assert page["items"][0]["events"] == ["6 CONNECTION REQUEST"] and page["next"] is None
    status, page = await call(admin, key, "GET", "/cpe/sessions?dir=asc&limit=1")
    assert page["items"][0]["duration_ms"] == 55


async def test_the_customer_page_lists_its_devices_and_a_service_takes_a_cpe_serial(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
    async with await logged_in(admin) as c:
        status, body = await c.get(f"/admin/customers/{w.customer_a}")
        assert status == 200 and f'href="/admin/cpe/devices/{w.device_a}"' in body
        assert "SNB1" not in body.split('id="customer-devices"')[1]
        status, body = await c.get(f"/admin/services/{w.service_a}/edit")
        assert 'name="cpe_serial"' in body
        form = {"tariff_id": str(await admin.pool.fetchval("SELECT min(id) FROM tariffs")), "login": "alpha-1",
                "password": "pw", "status": "active", "simultaneous_use": "1", "cpe_serial": "SN-NEW-42"}
        status, body, url = await c.post(f"/admin/services/{w.service_a}/edit", form)
        assert status == 200 and url.endswith("?done=saved"), body
        assert "SN-NEW-42" in body
        status, body, _ = await c.post(f"/admin/services/{w.service_a}/edit", {**form, "cpe_serial": ""})
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT cpe_serial FROM services WHERE id = $1", w.service_a) is None
    status, s = await call(admin, key, "PATCH", f"/services/{w.service_a}", {"cpe_serial": "SN-API-7"})
    assert status == 200 and s["cpe_serial"] == "SN-API-7"
    status, problem = await call(admin, key, "PATCH", f"/services/{w.service_a}", {"cpe_serial": "has space"})
    assert status == 422 and "cpe_serial" in problem["errors"]


# -- permissions and partners ---------------------------------------------------------------------

async def test_without_networking_view_every_cpe_page_and_operation_is_forbidden(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn, "finance")
    async with await logged_in(admin, "fin", "finance") as c:
        for path in ("/admin/cpe/devices", f"/admin/cpe/devices/{w.device_a}", "/admin/cpe/presets",
                     "/admin/cpe/files", "/admin/cpe/sessions"):
            status, _ = await c.get(path, allow_redirects=False)
            assert status == 403, path
        status, body = await c.get(f"/admin/customers/{w.customer_a}")
        assert status == 200 and "customer-devices" not in body  # no devices table without networking.view
    for method, path in (("GET", "/cpe/devices"), ("GET", f"/cpe/devices/{w.device_a}"), ("GET", "/cpe/presets"),
                         ("GET", "/cpe/files"), ("GET", "/cpe/sessions"),
                         ("POST", f"/cpe/devices/{w.device_a}/tasks")):
        status, _ = await call(admin, key, method, path, {"kind": "reboot"} if method == "POST" else None)
        assert status == 403, path
    async with admin.pool.acquire() as conn:
        viewer = await api_key(conn, "technician")  # networking.view, not networking.edit
    status, _ = await call(admin, viewer, "GET", f"/cpe/devices/{w.device_a}")
    assert status == 200
    status, _ = await call(admin, viewer, "POST", f"/cpe/devices/{w.device_a}/tasks", {"kind": "reboot"})
    assert status == 403


async def test_a_partners_administrator_sees_only_its_customers_devices(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn, partner_id=w.partner_a)
        b_task = await conn.fetchval("INSERT INTO acs_tasks (device_id, kind) VALUES ($1, 'reboot') RETURNING id",
                                     w.device_b)
        b_wakeup = await conn.fetchval("INSERT INTO acs_wakeups (device_id) VALUES ($1) RETURNING id", w.device_b)
        await conn.execute("INSERT INTO acs_sessions (started_at, device_id, events, rpcs, duration_ms, outcome) "
                           "SELECT now(), id, '{2 PERIODIC}', '{Inform}', 5, 'ok' FROM acs_devices")
    async with await partner_client(admin, "alpha", w.partner_a) as c:
        status, body = await c.get("/admin/cpe/devices")
        assert cwmp_ids(body) == ["00D09E-HG8245-SNA1"]
        status, body = await c.get("/admin/cpe/sessions")
        assert "SNB1" not in body and "SNFREE" not in body and "SNA1" in body
        for other in (w.device_b, w.device_free):
            status, _ = await c.get(f"/admin/cpe/devices/{other}")
            assert status == 404
            status, _, _ = await c.post(f"/admin/cpe/devices/{other}/tasks", {"kind": "reboot"})
            assert status == 404
            status, _, _ = await c.post(f"/admin/cpe/devices/{other}/tags", {"tags": "x"})
            assert status == 404
            status, _, _ = await c.post(f"/admin/cpe/devices/{other}/wakeup", {})
            assert status == 404
        status, _, _ = await c.post(f"/admin/cpe/tasks/{b_task}/cancel", {})
        assert status == 404
        status, _ = await c.get(f"/admin/cpe/wakeups/{b_wakeup}")
        assert status == 404
        # its own device cannot be linked to another partner's service or customer
        status, body, _ = await c.post(f"/admin/cpe/devices/{w.device_a}/link", {"target": "bravo-1"})
        assert status == 422
        status, body, _ = await c.post(f"/admin/cpe/devices/{w.device_a}/link", {"target": "C-bravo"})
        assert status == 422
    status, page = await call(admin, key, "GET", "/cpe/devices")
    assert [d["serial"] for d in page["items"]] == ["SNA1"]
    requests: list[tuple[str, str, Any]] = [("GET", f"/cpe/devices/{w.device_b}", None),
                               ("PATCH", f"/cpe/devices/{w.device_b}", {"tags": ["x"]}),
                               ("GET", f"/cpe/devices/{w.device_free}", None),
                               ("POST", f"/cpe/devices/{w.device_b}/tasks", {"kind": "reboot"}),
                               ("GET", f"/cpe/tasks/{b_task}", None), ("DELETE", f"/cpe/tasks/{b_task}", None),
                               ("POST", f"/cpe/tasks/{b_task}/retry", None)]
    for method, path, body in requests:
        status, _ = await call(admin, key, method, path, body)
        assert status == 404, (method, path)
    status, problem = await call(admin, key, "PATCH", f"/cpe/devices/{w.device_a}", {"service_id": w.service_b})
    assert status == 422 and problem["errors"] == {"service_id": "no such service"}
    status, page = await call(admin, key, "GET", "/cpe/sessions")
    assert [s["device_id"] for s in page["items"]] == [w.device_a]
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM acs_tasks") == 1
        assert await conn.fetchval("SELECT tags FROM acs_devices WHERE id = $1", w.device_b) == []


async def test_the_openapi_document_has_the_cpe_operations(admin: Admin) -> None:
    async with aiohttp.ClientSession() as s, s.get(admin.url + "/api/v1/openapi.json") as r:
        doc = await r.json()
    op = doc["paths"]["/cpe/devices/{id}/tasks"]["post"]
    assert op["x-permission"] == "networking.edit" and "202" in op["responses"]
    assert any(p["name"] == "connection_request" for p in op["parameters"])
    assert {"get", "post"} <= set(doc["paths"]["/cpe/presets"]) and {"get", "put", "delete"} <= set(
        doc["paths"]["/cpe/presets/{id}"])
    assert "CpeDeviceDetail" in doc["components"]["schemas"]

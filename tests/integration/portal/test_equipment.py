"""The portal's equipment page (/portal/equipment) over the real app and database: the customer's
own CPEs only, their Wi-Fi networks as last read (never the key); a restart (with its confirm step)
and a Wi-Fi name or key change queued as the admin queues a task (acs_tasks with a connection
request), at the paths of the device's data model (TR-098, TR-181, each radio); the key masked in
the page, the admin's task and the operations log; the hourly limit; staff looking as the customer,
CSRF and another customer's device refused. Last, the real ACS runs the queued SetParameterValues
against the CPE double (tests/fakes/cpe.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from admin.auth.store import Connection
from admin.portal import equipment
from admin.portal.equipment import Network, key_problem, networks, ssid_problem, wifi_change
from tests.fakes.cpe import TR098, TR181, Cpe
from tests.integration.acs.conftest import PASSWORD as ACS_PASSWORD
from tests.integration.acs.conftest import USER as ACS_USER
from tests.integration.acs.conftest import Acs, acs_factory, identity  # noqa: F401
from tests.integration.admin.conftest import Admin, api_key, call, make_admin
from tests.integration.portal.conftest import admin, portal_customer, portal_login  # noqa: F401
from tests.integration.portal.test_services import service

KEY = "s3cret wifi key!"
HEX = "0123456789abcdef" * 4
TR181_WIFI = {
    "Device.WiFi.Radio.1.OperatingFrequencyBand": "2.4GHz", "Device.WiFi.Radio.2.OperatingFrequencyBand": "5GHz",
    "Device.WiFi.SSID.1.SSID": "Anna-Home", "Device.WiFi.SSID.1.Enable": "true",
    "Device.WiFi.SSID.1.LowerLayers": "Device.WiFi.Radio.1.",
    "Device.WiFi.SSID.2.SSID": "Anna-Home-5G", "Device.WiFi.SSID.2.Enable": "true",
    "Device.WiFi.SSID.2.LowerLayers": "Device.WiFi.Radio.2.",
    # the access points the other way round: AP 1 serves SSID 2
    "Device.WiFi.AccessPoint.1.SSIDReference": "Device.WiFi.SSID.2.",
    "Device.WiFi.AccessPoint.2.SSIDReference": "Device.WiFi.SSID.1.",
    "Device.WiFi.AccessPoint.1.Security.KeyPassphrase": "old-key-five",
    "Device.WiFi.AccessPoint.2.Security.KeyPassphrase": "old-key-two",
}
W098 = "InternetGatewayDevice.LANDevice.1.WLANConfiguration."
TR098_WIFI = {
    f"{W098}1.SSID": "Anna-098", f"{W098}1.Enable": "1", f"{W098}1.OperatingFrequencyBand": "2.4GHz",
    f"{W098}1.PreSharedKey.1.KeyPassphrase": "old-key-098",
    f"{W098}2.SSID": "Anna-098-5", f"{W098}2.Enable": "0", f"{W098}2.OperatingFrequencyBand": "5GHz",
}


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def device(conn: Connection, *, customer_id: int | None = None, service_id: int | None = None,
                 serial: str = "SN-1", data_model: str = "tr181", params: dict[str, str] | None = None,
                 seen: str | None = "now()") -> int:
    """A CPE as the ACS keeps it (a row of acs_devices and its tree), linked as given."""
    device_id = int(await conn.fetchval(
        "INSERT INTO acs_devices (cwmp_id, oui, product_class, serial, manufacturer, data_model, software_version, "
        f"customer_id, service_id, last_inform_at) VALUES ($1, '00D09E', 'HG8245', $2, 'Huawei', $3, 'V3R017', $4, $5, "
        f"{seen or 'NULL'}) RETURNING id", f"00D09E-HG8245-{serial}", serial, data_model, customer_id, service_id))
    for path, value in (params or {}).items():
        await conn.execute("INSERT INTO acs_parameters (device_id, path, value, type, writable, read_at) "
                           "VALUES ($1, $2, $3, 'xsd:string', true, now())", device_id, path, value)
    return device_id


async def tasks_of(app: Admin, device_id: int) -> list[dict[str, Any]]:
    async with app.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, kind, args, status, max_attempts, created_by FROM acs_tasks "
                                "WHERE device_id = $1 ORDER BY id", device_id)
    return [dict(r) for r in rows]


async def wakeups_of(app: Admin, device_id: int) -> list[str]:
    async with app.pool.acquire() as conn:
        return [r["requested_by"] for r in await conn.fetch(
            "SELECT requested_by FROM acs_wakeups WHERE device_id = $1 ORDER BY id", device_id)]


# --- pure: networks, the rules of a name and a key ------------------------------------------------

def test_networks_per_data_model() -> None:
    tr181 = networks("tr181", TR181_WIFI)
    assert [(n.index, n.label, n.ssid, n.enabled) for n in tr181] == [
        (1, "2.4 GHz", "Anna-Home", True), (2, "5 GHz", "Anna-Home-5G", True)]
    assert (tr181[0].ssid_path, tr181[0].passphrase_path, tr181[0].psk_path) == (
        "Device.WiFi.SSID.1.SSID", "Device.WiFi.AccessPoint.2.Security.KeyPassphrase",
        "Device.WiFi.AccessPoint.2.Security.PreSharedKey")
    assert tr181[1].passphrase_path == "Device.WiFi.AccessPoint.1.Security.KeyPassphrase"
    tr098 = networks("tr098", TR098_WIFI)
    assert [(n.index, n.label, n.ssid, n.enabled) for n in tr098] == [
        (1, "2.4 GHz", "Anna-098", True), (2, "5 GHz", "Anna-098-5", False)]
    assert (tr098[1].ssid_path, tr098[1].passphrase_path, tr098[1].psk_path) == (
        f"{W098}2.SSID", f"{W098}2.PreSharedKey.1.KeyPassphrase", f"{W098}2.PreSharedKey.1.PreSharedKey")
    # nothing read yet: the first network, at the aliases' paths (acs/datamodel.py @wifi.ssid, @wifi.key)
    assert networks("tr098", {}) == [Network(1, "Wi-Fi network", None, None, f"{W098}1.SSID",
                                             f"{W098}1.PreSharedKey.1.KeyPassphrase",
                                             f"{W098}1.PreSharedKey.1.PreSharedKey")]
    (only,) = networks("tr181", {})
    assert (only.ssid_path, only.passphrase_path) == ("Device.WiFi.SSID.1.SSID",
                                                      "Device.WiFi.AccessPoint.1.Security.KeyPassphrase")
    # two of one band (a guest network): told apart
    guest = networks("tr181", {**TR181_WIFI, "Device.WiFi.SSID.3.SSID": "Guest",
                               "Device.WiFi.SSID.3.LowerLayers": "Device.WiFi.Radio.1."})
    assert [n.label for n in guest] == ["2.4 GHz (network 1)", "5 GHz", "2.4 GHz (network 3)"]
    assert guest[2].passphrase_path == "Device.WiFi.AccessPoint.3.Security.KeyPassphrase"


@pytest.mark.parametrize(("ssid", "problem"), [
    ("Home", None), ("x" * 32, None), ("Café à la maison 2", None), ("🏠" * 8, None), (" spaced out ", None),
    ("", "Type a name"), ("   ", "Type a name"), ("x" * 33, "at most 32 bytes"), ("é" * 17, "at most 32 bytes"),
    ("🏠" * 9, "at most 32 bytes"), ("tab\there", "letters, digits"), ("new\nline", "letters, digits"),
    ("nul\x00", "letters, digits")])
def test_ssid_rules(ssid: str, problem: str | None) -> None:
    found = ssid_problem(ssid)
    assert found is None if problem is None else (found is not None and problem in found), found


@pytest.mark.parametrize(("key", "problem"), [
    ("12345678", None), ("x" * 63, None), ("with spaces and ~!@#", None), (HEX, None), (HEX.upper(), None),
    ("1234567", "8 to 63"), ("x" * 64, "8 to 63"), ("x" * 65, "8 to 63"), (HEX[:-1] + "g", "8 to 63"),
    ("clé secrète", "without accents"), ("tab\tinside", "without accents")])
def test_key_rules(key: str, problem: str | None) -> None:
    found = key_problem(key)
    assert found is None if problem is None else (found is not None and problem in found), found


def test_a_change_sets_only_what_changed() -> None:
    net = networks("tr181", TR181_WIFI)[0]
    assert wifi_change(net, "Anna-Home", "") == ([], {"ssid": "Nothing to change: type a new name or a new key."})
    assert wifi_change(net, "Anna-Home", KEY) == (
        [["Device.WiFi.AccessPoint.2.Security.KeyPassphrase", KEY, "xsd:string"]], {})
    assert wifi_change(net, "New", HEX) == ([["Device.WiFi.SSID.1.SSID", "New", "xsd:string"],
                                             ["Device.WiFi.AccessPoint.2.Security.PreSharedKey", HEX, "xsd:string"]],
                                            {})
    _, problems = wifi_change(net, "x" * 33, "short")
    assert set(problems) == {"ssid", "key"}


# --- the page -------------------------------------------------------------------------------------

async def test_the_page_lists_only_the_customers_own_devices(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    bruno = await portal_customer(admin, login="bruno")
    async with admin.pool.acquire() as conn:
        sid = await service(conn, anna, "anna-fibre")
        await device(conn, customer_id=anna, service_id=sid, serial="ANNA-1", params=TR181_WIFI)
        await device(conn, service_id=sid, serial="ANNA-2", data_model="tr098", params=TR098_WIFI,
                     seen="now() - interval '3 days'")  # linked by its service only
        await device(conn, customer_id=bruno, serial="BRUNO-1", params={"Device.WiFi.SSID.1.SSID": "Bruno-Net"})
        await device(conn, serial="NOBODY-1")
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get("/portal/equipment")
        assert status == 200, body[:500]
        words = text(body)
        assert "ANNA-1" in words and "ANNA-2" in words and "BRUNO" not in words and "NOBODY" not in words
        assert "Bruno-Net" not in words
        assert "Huawei HG8245" in words and "V3R017" in words and "anna-fibre" in words
        assert "Name: Anna-Home" in words and "Name: Anna-Home-5G" in words and "2.4 GHz" in words
        assert "Name: Anna-098-5" in words and "off" in words
        assert "Online: last heard from" in words and "Offline: last seen" in words
        for secret in ("old-key-five", "old-key-two", "old-key-098"):
            assert secret not in body
        assert 'href="/portal/equipment"' in body and 'aria-current="page"' in body  # the menu's section
    async with await portal_login(admin, "bruno") as c:
        _, body = await c.get("/portal/equipment")
        assert "Bruno-Net" in body and "ANNA" not in body


async def test_no_device_yet(admin: Admin) -> None:  # noqa: F811
    await portal_customer(admin, login="anna")
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get("/portal/equipment")
        assert status == 200 and "We do not manage a router of yours yet" in body


@pytest.mark.parametrize(("model", "params", "network", "ssid_path", "key_path", "psk_path"), [
    ("tr181", TR181_WIFI, 2, "Device.WiFi.SSID.2.SSID", "Device.WiFi.AccessPoint.1.Security.KeyPassphrase",
     "Device.WiFi.AccessPoint.1.Security.PreSharedKey"),
    ("tr098", TR098_WIFI, 1, f"{W098}1.SSID", f"{W098}1.PreSharedKey.1.KeyPassphrase",
     f"{W098}1.PreSharedKey.1.PreSharedKey"),
])
async def test_a_wifi_change_is_queued_at_the_data_models_paths(
        admin: Admin, model: str, params: dict[str, str], network: int, ssid_path: str,  # noqa: F811
        key_path: str, psk_path: str) -> None:
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        did = await device(conn, customer_id=anna, data_model=model, params=params)
        number = await conn.fetchval("SELECT number FROM customers WHERE id = $1", anna)
    async with await portal_login(admin, "anna") as c:
        await c.get("/portal/equipment")
        status, body, url = await c.post(f"/portal/equipment/{did}/wifi",
                                         {"network": str(network), "ssid": "Anna Café", "key": KEY})
        assert status == 200 and url.endswith("/portal/equipment?done=wifi"), (status, url)
        assert "Your Wi-Fi change is on its way" in body and KEY not in body
        assert "new name “Anna Café” and new key" in text(body) and "Waiting for your router" in body
        status, _, _ = await c.post(f"/portal/equipment/{did}/wifi", {"network": str(network), "ssid": "Anna Café",
                                                                     "key": HEX})
        assert status == 200
    first, second = await tasks_of(admin, did)
    assert (first["kind"], first["status"], first["max_attempts"], first["created_by"]) == (
        "set", "queued", equipment.MAX_ATTEMPTS, f"customer:{number}")
    assert first["args"] == {"values": [[ssid_path, "Anna Café", "xsd:string"], [key_path, KEY, "xsd:string"]]}
    # the name stays as typed (the tree still holds the old one until the CPE takes it): sent again
    assert second["args"] == {"values": [[ssid_path, "Anna Café", "xsd:string"], [psk_path, HEX, "xsd:string"]]}
    assert await wakeups_of(admin, did) == [f"customer:{number}"] * 2  # a connection request each: now


async def test_bad_names_and_keys_are_refused_and_nothing_is_queued(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        did = await device(conn, customer_id=anna, params=TR181_WIFI)
    async with await portal_login(admin, "anna") as c:
        await c.get("/portal/equipment")
        for form, message in (({"network": "1", "ssid": "x" * 33, "key": ""}, "at most 32 bytes"),
                              ({"network": "1", "ssid": "Anna-Home", "key": "short"}, "8 to 63 characters"),
                              ({"network": "1", "ssid": "Anna-Home", "key": ""}, "Nothing to change"),
                              ({"network": "1", "ssid": "bad\x07bell", "key": ""}, "letters, digits"),
                              ({"network": "9", "ssid": "Other", "key": ""}, "no such Wi-Fi network")):
            status, body, _ = await c.post(f"/portal/equipment/{did}/wifi", form)
            assert status == 422 and message in body, (form, status, body[:300])
            assert "short" not in re.findall(r'name="key"[^>]*>', body)[0]  # a key typed is never sent back
    assert await tasks_of(admin, did) == []


async def test_the_key_is_masked_in_the_page_the_admin_and_the_operations_log(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        did = await device(conn, customer_id=anna, params=TR181_WIFI)
        key = await api_key(conn)
    async with await portal_login(admin, "anna") as c:
        await c.get("/portal/equipment")
        status, _, _ = await c.post(f"/portal/equipment/{did}/wifi", {"network": "1", "ssid": "Anna-Home", "key": KEY})
        assert status == 200
        _, body = await c.get("/portal/equipment")
        assert "Wi-Fi 2.4 GHz: new key" in text(body) and KEY not in body
    (task,) = await tasks_of(admin, did)
    assert task["args"]["values"][0][1] == KEY  # the row keeps it: the ACS sends it to the CPE
    status, shown = await call(admin, key, "GET", f"/cpe/tasks/{task['id']}")
    assert status == 200 and shown["args"]["values"][0][1] == "••••••" and KEY not in json.dumps(shown)
    async with admin.pool.acquire() as conn:
        line = await conn.fetchrow("SELECT * FROM operations_log WHERE object_type = 'cpe_task' AND object_id = $1",
                                   task["id"])
        number = await conn.fetchval("SELECT number FROM customers WHERE id = $1", anna)
        await make_admin(conn, "noc")
    assert line is not None and KEY not in json.dumps(dict(line), default=str)
    assert (line["actor"], line["admin_id"], line["api_key_id"], line["customer_id"]) == (
        f"customer:{number}", None, None, anna)
    assert line["after"]["args"]["values"][0][1] == "••••••" and line["after"]["wakeup_id"] is not None
    assert "new Wi-Fi key (2.4 GHz)" in line["summary"] and "in the portal" in line["summary"]
    c = admin.client()
    async with c:
        await c.login("noc")
        status, body = await c.get(f"/admin/cpe/devices/{did}")
        assert status == 200 and "KeyPassphrase" in body and KEY not in body


async def test_a_restart_has_a_confirm_step_then_is_queued(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        did = await device(conn, customer_id=anna)
        number = await conn.fetchval("SELECT number FROM customers WHERE id = $1", anna)
    async with await portal_login(admin, "anna") as c:
        _, body = await c.get("/portal/equipment")
        assert f'href="/portal/equipment/{did}/reboot"' in body
        assert f'action="/portal/equipment/{did}/reboot"' not in body
        status, body = await c.get(f"/portal/equipment/{did}/reboot")
        assert status == 200 and "Restart the router?" in body and f'action="/portal/equipment/{did}/reboot"' in body
        assert await tasks_of(admin, did) == []  # asking is not restarting
        status, body, url = await c.post(f"/portal/equipment/{did}/reboot", {})
        assert status == 200 and url.endswith("?done=reboot"), url
        assert "Restart the router" in text(body) and "Waiting for your router" in body
    (task,) = await tasks_of(admin, did)
    assert (task["kind"], task["args"], task["created_by"]) == ("reboot", {}, f"customer:{number}")
    assert await wakeups_of(admin, did) == [f"customer:{number}"]
    async with admin.pool.acquire() as conn:
        summary = await conn.fetchval("SELECT summary FROM operations_log WHERE object_type = 'cpe_task'")
        # the page tells each state in plain words
        await conn.execute("UPDATE acs_tasks SET status = 'waiting' WHERE id = $1", task["id"])
    assert summary.startswith("queued a restart on CPE 00D09E-HG8245-SN-1 in the portal")
    async with await portal_login(admin, "anna") as c:
        _, body = await c.get("/portal/equipment")
        assert "Your router is restarting" in body
        async with admin.pool.acquire() as conn:
            await conn.execute("UPDATE acs_tasks SET status = 'fault', fault_code = 9001 WHERE id = $1", task["id"])
        _, body = await c.get("/portal/equipment")
        assert "Failed: your router refused it" in body
        async with admin.pool.acquire() as conn:
            await conn.execute("UPDATE acs_tasks SET status = 'done', finished_at = now() WHERE id = $1", task["id"])
        _, body = await c.get("/portal/equipment")
        assert ">Done<" in body


async def test_at_most_so_many_tasks_an_hour(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        did = await device(conn, customer_id=anna, params=TR181_WIFI)
        other = await device(conn, customer_id=anna, serial="SN-2")
        number = await conn.fetchval("SELECT number FROM customers WHERE id = $1", anna)
        for at in ["now() - interval '2 hours'"] + ["now() - interval '30 minutes'"] * (equipment.TASKS_PER_HOUR - 1):
            await conn.execute(f"INSERT INTO acs_tasks (device_id, kind, created_by, created_at) "
                               f"VALUES ($1, 'reboot', $2, {at})", did, f"customer:{number}")
        await conn.execute("INSERT INTO acs_tasks (device_id, kind, created_by) VALUES ($1, 'reboot', 'root')", did)
    async with await portal_login(admin, "anna") as c:
        await c.get("/portal/equipment")
        status, _, _ = await c.post(f"/portal/equipment/{did}/wifi", {"network": "1", "ssid": "Tenth", "key": ""})
        assert status == 200  # the tenth in the hour (the one of 2 hours ago and staff's do not count)
        for path, form in ((f"/portal/equipment/{other}/reboot", {}),
                           (f"/portal/equipment/{did}/wifi", {"network": "1", "ssid": "Eleventh", "key": ""})):
            status, body, _ = await c.post(path, form)
            assert status == 429 and "the most we take" in body and "You can ask again after" in body, body[:300]
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM acs_tasks WHERE created_by = $1", f"customer:{number}") == 11


async def test_staff_looking_as_the_customer_change_nothing(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        did = await device(conn, customer_id=anna, params=TR181_WIFI)
        staff = await make_admin(conn, "helpdesk")
    async with await portal_login(admin, "anna") as c:
        async with admin.pool.acquire() as conn:
            await conn.execute("UPDATE portal_sessions SET impersonator_id = $1 WHERE customer_id = $2", staff, anna)
        status, body = await c.get("/portal/equipment")
        assert status == 200 and "you may read, not write" in body and 'name="ssid"' not in body
        assert "Anna-Home" in body and f"/portal/equipment/{did}/reboot" not in body
        status, body = await c.get(f"/portal/equipment/{did}/reboot")
        assert status == 200 and "you may read, not write" in body and "<form method=\"post\" action=\"/portal/eq" \
            not in body
        for path, form in ((f"/portal/equipment/{did}/wifi", {"network": "1", "ssid": "Staff", "key": KEY}),
                           (f"/portal/equipment/{did}/reboot", {})):
            status, _, _ = await c.post(path, form)
            assert status == 403
    assert await tasks_of(admin, did) == [] and await wakeups_of(admin, did) == []


async def test_csrf_and_another_customers_device(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    bruno = await portal_customer(admin, login="bruno")
    async with admin.pool.acquire() as conn:
        mine = await device(conn, customer_id=anna, params=TR181_WIFI)
        theirs = await device(conn, customer_id=bruno, serial="SN-B", params=TR181_WIFI)
        unlinked = await device(conn, serial="SN-X")
    async with await portal_login(admin, "anna") as c:
        await c.get("/portal/equipment")
        form = {"network": "1", "ssid": "Mine now", "key": KEY}
        for path in (f"/portal/equipment/{mine}/wifi", f"/portal/equipment/{mine}/reboot"):
            status, _, _ = await c.post(path, form, csrf=False)
            assert status == 403
            status, _, _ = await c.post(path, {**form, "_csrf": "x" * 43})
            assert status == 403
        for did in (theirs, unlinked, 999_999):
            status, _ = await c.get(f"/portal/equipment/{did}/reboot")
            assert status == 404
            for what in ("wifi", "reboot"):
                status, _, _ = await c.post(f"/portal/equipment/{did}/{what}", form)
                assert status == 404, (did, what)
    for did in (mine, theirs, unlinked):
        assert await tasks_of(admin, did) == []


@pytest.mark.parametrize("path", ["/portal/equipment", "/portal/equipment/1/reboot"])
async def test_the_equipment_pages_need_a_portal_login(admin: Admin, path: str) -> None:  # noqa: F811
    async with admin.client() as c:
        status, _ = await c.get(path, allow_redirects=False)
        assert status == 302


# --- the real ACS runs what the portal queued ------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("model", ["tr181", "tr098"])
async def test_the_acs_sets_the_new_wifi_on_the_cpe(admin: Admin, acs_factory: Callable[..., Awaitable[Acs]],  # noqa: F811
                                                    model: str) -> None:
    acs = await acs_factory()
    anna = await portal_customer(admin, login="anna")
    async with Cpe(acs.url, TR098 if model == "tr098" else TR181, serial="SN-ANNA", username=ACS_USER,
                   password=ACS_PASSWORD) as cpe:
        first = await cpe.session("0 BOOTSTRAP", "1 BOOT")
        assert first.outcome == "ok", first.error
        async with admin.pool.acquire() as conn:
            did = await conn.fetchval("UPDATE acs_devices SET customer_id = $2 WHERE cwmp_id = $1 RETURNING id",
                                      identity(cpe), anna)
        async with await portal_login(admin, "anna") as c:
            await c.get("/portal/equipment")
            status, _, _ = await c.post(f"/portal/equipment/{did}/wifi",
                                        {"network": "1", "ssid": "Anna Net", "key": KEY})
            assert status == 200
            record = await cpe.session("2 PERIODIC")
            assert record.outcome == "ok", record.error
            ssid, key = (networks(model, {})[0].ssid_path, networks(model, {})[0].passphrase_path)
            call_ = record.call("SetParameterValues")
            assert call_.args["params"] == [(ssid, "Anna Net", "xsd:string"), (key, KEY, "xsd:string")]
            assert (cpe.value(ssid), cpe.value(key)) == ("Anna Net", KEY)
            _, body = await c.get("/portal/equipment")
            assert "Name: Anna Net" in text(body) and ">Done<" in body and KEY not in body
    (task,) = await tasks_of(admin, did)
    assert task["status"] == "done"

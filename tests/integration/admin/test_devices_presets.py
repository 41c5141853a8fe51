"""CPE presets and files: the editor and the API check a preset as the ACS does (match keys,
action shapes, aliases, templates compiled in the sandbox, files that exist); the default preset
is not deleted; a dry run is a row an acs instance answers (faked here by updating it), polled
until then or for 10 s; an upload is streamed into 1 MiB chunks with its size and SHA-256, and a
file named by a queued task or a preset is not deleted."""

from __future__ import annotations

import hashlib
import io
import os
import re

import aiohttp

from tests.integration.admin.conftest import Admin, api_key, call, logged_in
from tests.integration.admin.test_devices import htmx_post, oplog, world

FORM = {"name": "wifi", "enabled": "1", "weight": "10", "match_tags": "fiber", "match_data_model": "tr098",
        "match_events": "0 BOOTSTRAP, 1 BOOT",
        "actions": '[{"set": "@wifi.ssid", "value": "{{ customer.name }} Wi-Fi"}, {"refresh": "@device_info", '
                   '"max_age": 3600}]'}


def field_error(html: str, name: str) -> str:
    m = re.search(rf'<p class="error" id="e-{re.escape(name)}">([^<]*)</p>', html)
    return m.group(1) if m else ""


async def test_a_preset_is_made_in_the_editor_checked_as_the_acs_checks_it_and_deleted(admin: Admin) -> None:
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/cpe/presets/new")
        assert status == 200 and "@wifi.ssid" in body  # the aliases are listed
        status, body, url = await c.post("/admin/cpe/presets/new", FORM)
        assert status == 200 and url.endswith("?done=created"), body
        preset_id = int(re.search(r"/cpe/presets/(\d+)\?", url).group(1))  # type: ignore[union-attr]
        for changes, field, words in [
            ({"actions": '[{"set": "@wifi.ssid", "value": "{{ customer.name "}]'}, "actions", "does not compile"),
            ({"actions": '[{"set": "@wifi.nope", "value": "x"}]'}, "actions", "unknown alias"),
            ({"actions": '[{"reboot": true, "refresh": "Device."}]'}, "actions", "an action has one of"),
            ({"actions": '[{"add_object": "Device.WiFi.SSID.", "count": 99}]'}, "actions", "from 1 to 16"),
            ({"actions": '[{"download": 42}]'}, "actions", "no such file 42"),
            ({"actions": '{"set": 1}'}, "actions", "must be a JSON list"),
            ({"actions": "[nope"}, "actions", "not JSON"),
            ({"match_tags": "a/b"}, "match_tags", "is not a tag"),
            ({"match_data_model": "tr069"}, "match", "data_model must be one of tr098, tr181"),
            ({"name": ""}, "name", "is required"),
            ({"name": "default"}, "name", "another preset has this name"),
        ]:
            status, body, _ = await c.post(f"/admin/cpe/presets/{preset_id}", {**FORM, **changes})
            assert status == 422, changes
            assert words in field_error(body, field).replace("&#39;", "'"), (changes, field_error(body, field))
        status, body, url = await c.post(f"/admin/cpe/presets/{preset_id}", {**FORM, "enabled": "", "weight": "-5"})
        assert url.endswith("?done=saved")
        status, body = await c.get("/admin/cpe/presets")
        assert body.index(">default<") < body.index(">wifi<")  # weight -100 before -5
        default_id = await admin.pool.fetchval("SELECT id FROM acs_presets WHERE name = 'default'")
        status, body, _ = await c.post(f"/admin/cpe/presets/{default_id}/delete", {})
        assert status == 409 and "disable it instead" in body
        status, body, url = await c.post(f"/admin/cpe/presets/{preset_id}/delete", {})
        assert status == 200 and "Preset wifi deleted" in body
    row_log = await oplog(admin, "cpe_preset")
    assert [r["action"] for r in row_log] == ["create", "update", "delete"]
    assert row_log[0]["after"]["match"] == {"tags": ["fiber"], "data_model": "tr098",
                                            "events": ["0 BOOTSTRAP", "1 BOOT"]}
    assert row_log[1]["before"] == {"enabled": True, "weight": 10} and row_log[1]["after"] == {"enabled": False,
                                                                                                "weight": -5}


async def test_the_presets_api(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
    body = {"name": "pppoe", "weight": 5, "match": {"oui": "00D09E"},
            "actions": [{"set": "@pppoe.username", "value": "{{ service.login }}"},
                        {"set": "@pppoe.password", "value": "{{ service.password }}"}]}
    status, p = await call(admin, key, "POST", "/cpe/presets", body)
    assert status == 201, p
    assert p["match"] == {"oui": "00D09E"} and p["enabled"] is True and len(p["actions"]) == 2
    status, problem = await call(admin, key, "POST", "/cpe/presets", {
        "name": "bad", "match": {"colour": "red", "tags": []}, "actions": [{"reboot": 1}, "x"]})
    assert status == 422
    assert problem["errors"] == {
        "match": "match: unknown key 'colour' (one of tags, oui, product_class, software_version, data_model, "
                 "events); match: tags must be a non-empty list of names",
        "actions": "action 1: reboot: must be true; action 2: an action must be an object"}
    status, replaced = await call(admin, key, "PUT", f"/cpe/presets/{p['id']}", {**body, "enabled": False})
    assert status == 200 and replaced["enabled"] is False
    status, listed = await call(admin, key, "GET", "/cpe/presets")
    assert [x["name"] for x in listed] == ["default", "pppoe"]
    status, got = await call(admin, key, "GET", f"/cpe/presets/{p['id']}")
    assert got == replaced
    default = listed[0]["id"]
    status, problem = await call(admin, key, "DELETE", f"/cpe/presets/{default}")
    assert status == 409
    status, gone = await call(admin, key, "DELETE", f"/cpe/presets/{p['id']}")
    assert status == 200 and gone == {"id": p["id"]}
    status, _ = await call(admin, key, "GET", f"/cpe/presets/{p['id']}")
    assert status == 404


async def test_a_dry_run_is_answered_by_the_acs_row_or_says_none_answered(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    async with await logged_in(admin) as c:
        await c.get("/admin/cpe/presets/new")
        status, body, _ = await htmx_post(c, "/admin/cpe/dry-runs", {**FORM, "device": "nobody"})
        assert status == 200 and "no device has this cwmp id or serial" in body
        status, body, _ = await htmx_post(c, "/admin/cpe/dry-runs", {**FORM, "actions": "[{}]", "device": "SNA1"})
        assert "an action has one of" in body
        status, body, _ = await htmx_post(c, "/admin/cpe/dry-runs", {**FORM, "device": "SNA1"})
        assert status == 200 and "pending" in body
        run_id = int(re.search(r'hx-get="/admin/cpe/dry-runs/(\d+)"', body).group(1))  # type: ignore[union-attr]
        async with admin.pool.acquire() as conn:
            run = await conn.fetchrow("SELECT * FROM acs_dry_runs WHERE id = $1", run_id)
            assert run is not None and run["device_id"] == w.device_a and run["status"] == "pending"
            assert run["preset"] == {"match": {"tags": ["fiber"], "data_model": "tr098",
                                               "events": ["0 BOOTSTRAP", "1 BOOT"]},
                                     "actions": [{"set": "@wifi.ssid", "value": "{{ customer.name }} Wi-Fi"},
                                                 {"refresh": "@device_info", "max_age": 3600}]}
            # what an acs instance writes (acs/plan.py dry_run_json)
            secret = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.1.KeyPassphrase"
            await conn.execute(
                "UPDATE acs_dry_runs SET status = 'done', done_at = now(), result = $2 WHERE id = $1", run_id,
                {"presets_key": "ab", "matched": [{"id": 0, "name": "draft"}],
                 "values": {"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID": ["Alpha Home Wi-Fi",
                                                                                           "xsd:string"],
                            secret: ["wifi-secret", "xsd:string"]},
                 "objects": {}, "refreshes": {"InternetGatewayDevice.DeviceInfo.": 3600}, "downloads": [],
                 "reboot": False, "connection_request_credentials": False,
                 "rpcs": [{"method": "SetParameterValues", "parameter_key": "ab"}],
                 "faults": [{"rpc": "preset", "code": None, "message": "no service linked", "detail": {}}],
                 "due_at": None})
        status, body = await c.get(f"/admin/cpe/dry-runs/{run_id}")
        assert status == 200 and "hx-get" not in body
        assert "draft" in body and "Alpha Home Wi-Fi" in body and "wifi-secret" not in body
        assert "SetParameterValues" in body and "no service linked" in body
        async with admin.pool.acquire() as conn:
            await conn.execute("UPDATE acs_dry_runs SET status = 'pending', result = NULL, "
                               "requested_at = now() - interval '11 seconds'")
        status, body = await c.get(f"/admin/cpe/dry-runs/{run_id}")
        assert "No ACS answered within 10 s" in body and "hx-get" not in body
    async with await logged_in(admin, "viewer", "technician") as v:  # networking.view: no dry runs
        await v.get("/admin/cpe/presets")
        status, _, _ = await htmx_post(v, "/admin/cpe/dry-runs", {**FORM, "device": "SNA1"})
        assert status == 403


async def test_an_upload_is_streamed_into_chunks_and_a_file_in_use_is_not_deleted(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
    blob = os.urandom(5 * 1024 * 1024 + 12345)  # past the admin's 4 MiB request limit: streamed, not read
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/cpe/files/new")
        assert status == 200 and 'hx-encoding="multipart/form-data"' in body
        form = aiohttp.FormData()
        for k, v in (("file_type", "1 Firmware Upgrade Image"), ("name", ""), ("version", "V3.2.0"),
                     ("oui", "00D09E"), ("product_class", "HG8245")):
            form.add_field(k, v)
        form.add_field("file", io.BytesIO(blob), filename="fw v3.2.0.bin", content_type="application/octet-stream")
        status, body, headers = await htmx_post(c, "/admin/cpe/files/new", form)
        assert status == 204 and headers["HX-Redirect"] == "/admin/cpe/files?done=uploaded&name=fw_v3.2.0.bin", body
        async with admin.pool.acquire() as conn:
            f = await conn.fetchrow("SELECT * FROM acs_files")
            chunks = await conn.fetch("SELECT n, data FROM acs_file_chunks ORDER BY n")
        assert f is not None and f["complete"] and f["size"] == len(blob) and f["version"] == "V3.2.0"
        assert f["sha256"] == hashlib.sha256(blob).hexdigest() and f["created_by"] == "root"
        assert [r["n"] for r in chunks] == list(range(6))
        assert [len(r["data"]) for r in chunks] == [1048576] * 5 + [12345]
        assert hashlib.sha256(b"".join(r["data"] for r in chunks)).hexdigest() == f["sha256"]
        again = aiohttp.FormData()
        again.add_field("file_type", "1 Firmware Upgrade Image")
        again.add_field("name", "fw_v3.2.0.bin")
        again.add_field("file", io.BytesIO(b"x"), filename="x.bin")
        status, body, _ = await htmx_post(c, "/admin/cpe/files/new", again)
        assert status == 200 and "another file has this name" in body
        bad = aiohttp.FormData()
        bad.add_field("file_type", "9 Nonsense")
        bad.add_field("file", io.BytesIO(b""), filename="../../etc/passwd")
        status, body, _ = await htmx_post(c, "/admin/cpe/files/new", bad)
        assert "choose the file&#39;s type" in body
        status, body, _ = await htmx_post(c, "/admin/cpe/files/new", {"file_type": "2 Web Content"})
        assert "send the form as multipart/form-data" in body
        async with c.session.post(c.url + "/admin/cpe/files/new", data=b"--x\r\nnonsense", headers={
                "X-CSRF-Token": c.csrf, "Content-Type": "multipart/form-data; boundary=x"}) as r:
            assert r.status == 422, await r.text()
        async with c.session.post(c.url + "/admin/cpe/files/new", data=b"x", headers={
                "X-CSRF-Token": c.csrf, "Content-Type": "multipart/form-data"}) as r:  # no boundary
            assert r.status == 422, await r.text()
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM acs_files") == 1  # the refused ones left nothing
        status, body = await c.get("/admin/cpe/files")
        assert "fw_v3.2.0.bin" in body and f["sha256"][:12] in body
        # a queued download names it: no delete
        await c.get(f"/admin/cpe/devices/{w.device_a}")
        status, _, url = await c.post(f"/admin/cpe/devices/{w.device_a}/tasks", {"kind": "download",
                                                                                "file_id": str(f["id"])})
        assert "done=queued" in url
        status, body, _ = await c.post(f"/admin/cpe/files/{f['id']}/delete", {})
        assert status == 409 and "1 queued or waiting download task (CPE 00D09E-HG8245-SNA1)" in body
        task_id = await admin.pool.fetchval("SELECT max(id) FROM acs_tasks")
        await c.post(f"/admin/cpe/tasks/{task_id}/cancel", {})
    status, p = await call(admin, key, "POST", "/cpe/presets", {"name": "fw", "actions": [{"download": f["id"]}]})
    assert status == 201
    status, page = await call(admin, key, "GET", "/cpe/files?q=fw_")
    assert status == 200 and [x["sha256"] for x in page["items"]] == [f["sha256"]]
    async with await logged_in(admin, "root2") as c:
        await c.get("/admin/cpe/files")
        status, body, _ = await c.post(f"/admin/cpe/files/{f['id']}/delete", {})
        assert status == 409 and "the preset fw" in body
        await call(admin, key, "DELETE", f"/cpe/presets/{p['id']}")
        status, body, _ = await c.post(f"/admin/cpe/files/{f['id']}/delete", {})
        assert status == 200 and "File fw_v3.2.0.bin deleted" in body
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM acs_file_chunks") == 0
    assert [r["action"] for r in await oplog(admin, "cpe_file")] == ["create", "delete"]


async def test_files_are_downloaded_whole_as_attachments_and_uploads_only_in_scope(admin: Admin) -> None:
    """The ACS's files and the ones devices uploaded (an upload task's result) are read back a
    chunk at a time, as attachments; a partner's administrator gets only its own devices' uploads."""
    blob = os.urandom(2 * 1024 * 1024 + 7)
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
        partner_key = await api_key(conn, partner_id=w.partner_b)
        ids = {}
        for name, device, data in (("fw.bin", None, blob), ("config-a.xml", w.device_a, b"<config/>")):
            ids[name] = await conn.fetchval(
                "INSERT INTO acs_files (name, file_type, device_id, size, sha256, complete) "
                "VALUES ($1, '1 Vendor Configuration File', $2, $3, $4, true) RETURNING id",
                name, device, len(data), hashlib.sha256(data).hexdigest())
            for n in range(0, len(data), 1 << 20):
                await conn.execute("INSERT INTO acs_file_chunks (file_id, n, data) VALUES ($1, $2, $3)",
                                   ids[name], n >> 20, data[n:n + (1 << 20)])
        unfinished = await conn.fetchval("INSERT INTO acs_files (name, file_type) VALUES ('half.bin', "
                                         "'1 Firmware Upgrade Image') RETURNING id")
    async with await logged_in(admin) as c:
        _, body = await c.get("/admin/cpe/files")
        assert f'href="/admin/cpe/files/{ids["fw.bin"]}/content"' in body
        async with c.session.get(f"{c.url}/admin/cpe/files/{ids['fw.bin']}/content") as r:
            assert r.status == 200 and await r.read() == blob
            assert r.headers["Content-Type"] == "application/octet-stream"
            assert r.headers["Content-Disposition"] == 'attachment; filename="fw.bin"'
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        async with c.session.get(f"{c.url}/admin/cpe/files/{unfinished}/content") as r:
            assert r.status == 404
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s, \
            s.get(f"{admin.url}/api/v1/cpe/files/{ids['config-a.xml']}/content") as r:
        assert r.status == 200 and await r.read() == b"<config/>"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {partner_key}"}) as s:
        async with s.get(f"{admin.url}/api/v1/cpe/files/{ids['config-a.xml']}/content") as r:
            assert r.status == 404  # another partner's device's upload
        async with s.get(f"{admin.url}/api/v1/cpe/files/{ids['fw.bin']}/content") as r:
            assert r.status == 200 and len(await r.read()) == len(blob)

"""Tariffs through the forms and the API: create, edit, delete, the checks next to each field
(the database's constraints included), custom fields, the list, the operations log, permissions."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import asyncpg

from admin.auth.store import Connection
from admin.listing import encode_cursor
from tests.integration.admin.conftest import Admin, api_key, call, logged_in

FORM = {"name": "Fibre 100", "download_kbps": "100000", "upload_kbps": "20000", "priority": "5",
        "contention": "10", "price": "29,9900", "currency": "eur"}


def field_error(html: str, name: str) -> str:
    """The error shown next to the input ``name`` ("" if none)."""
    m = re.search(rf'<p class="error" id="e-{re.escape(name)}">([^<]*)</p>', html)
    return m.group(1) if m else ""


async def service_on(conn: Connection, tariff_id: int, login: str) -> int:
    partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('P') ON CONFLICT (name) DO UPDATE "
                                  "SET name = EXCLUDED.name RETURNING id")
    customer = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, $2) "
                                   "RETURNING id", partner, f"N-{login}")
    return int(await conn.fetchval("INSERT INTO services (customer_id, tariff_id, login, password) "
                                   "VALUES ($1, $2, $3, 'pw') RETURNING id", customer, tariff_id, login))


async def oplog(conn: Connection, object_type: str, object_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM operations_log WHERE object_type = $1 AND object_id = $2 "
                                 "ORDER BY id", object_type, object_id))


async def test_a_tariff_is_created_edited_and_deleted_through_the_forms(admin: Admin) -> None:
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/tariffs/new")
        assert status == 200 and 'name="download_kbps"' in body
        status, body, url = await c.post("/admin/tariffs/new", FORM)
        assert status == 200 and re.search(r"/admin/tariffs/\d+\?done=created$", url), (status, url, body)
        tariff_id = int(url.split("/")[-1].split("?")[0])
        assert "Fibre 100" in body and "100 Mbit/s" in body and "29.99 EUR" in body and "1:10" in body
        async with admin.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM tariffs WHERE id = $1", tariff_id)
            assert row is not None
            assert row["price"] == Decimal("29.9900") and row["currency"] == "EUR" and row["priority"] == 5

        status, body = await c.get(f"/admin/tariffs/{tariff_id}/edit")
        assert status == 200 and 'value="Fibre 100"' in body and 'value="100000"' in body
        edited = {**FORM, "name": "Fibre 150", "download_kbps": "150000", "burst_download_kbps": "200000",
                  "burst_upload_kbps": "30000", "burst_time_s": "16", "limit_at_download_kbps": "50000",
                  "session_timeout_s": "86400"}
        status, body, url = await c.post(f"/admin/tariffs/{tariff_id}/edit", edited)
        assert status == 200 and url.endswith("?done=saved"), body
        assert "Fibre 150" in body and "200 Mbit/s / 30 Mbit/s for 16 s" in body and "1d 00:00:00" in body

        status, body, url = await c.post(f"/admin/tariffs/{tariff_id}/delete", {})
        assert status == 200 and "done=deleted" in url and "Tariff Fibre 150 deleted" in body
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM tariffs WHERE id = $1", tariff_id) == 0
            log = await oplog(conn, "tariff", tariff_id)
    assert [r["action"] for r in log] == ["create", "update", "delete"]
    assert all(r["actor"] == "root" and r["admin_id"] is not None and r["address"] is not None for r in log)
    assert log[0]["after"]["name"] == "Fibre 100" and log[0]["after"]["price"] == "29.9900"
    assert log[1]["before"]["download_kbps"] == 100000 and log[1]["after"]["download_kbps"] == 150000
    assert log[1]["before"]["burst_time_s"] is None and log[1]["after"]["burst_time_s"] == 16
    assert "price" not in log[1]["after"]  # only what changed
    assert log[2]["before"]["name"] == "Fibre 150"


async def test_wrong_fields_are_shown_next_to_them_with_the_databases_rules_in_words(admin: Admin) -> None:
    async with await logged_in(admin) as c:
        await c.get("/admin/tariffs/new")
        status, body, _ = await c.post("/admin/tariffs/new", {**FORM, "name": "", "download_kbps": "fast",
                                                              "priority": "9", "price": "1.23456"})
        assert status == 422
        assert field_error(body, "name") == "is required"
        assert field_error(body, "download_kbps").startswith("Expected `int`")
        assert "8" in field_error(body, "priority")
        assert field_error(body, "upload_kbps") == ""
        assert 'value="fast"' in body  # what was typed stays
        status, body, _ = await c.post("/admin/tariffs/new", {**FORM, "price": "1.23456"})
        assert status == 422 and field_error(body, "price") == "must have at most 4 decimal places"

        # CHECK constraints of the table, as words next to the field they are about
        status, body, _ = await c.post("/admin/tariffs/new", {**FORM, "burst_download_kbps": "200000"})
        assert status == 422, body
        assert "go together" in field_error(body, "burst_upload_kbps")
        assert "go together" in field_error(body, "burst_time_s")
        assert field_error(body, "burst_download_kbps") == ""
        status, body, _ = await c.post("/admin/tariffs/new", {**FORM, "burst_download_kbps": "50000",
                                                              "burst_upload_kbps": "30000", "burst_time_s": "8"})
        assert status == 422 and field_error(body, "burst_download_kbps") == "must be at least the download speed"
        status, body, _ = await c.post("/admin/tariffs/new", {**FORM, "limit_at_upload_kbps": "90000"})
        assert status == 422 and field_error(body, "limit_at_upload_kbps") == "must be from 0 to the upload speed"

        status, _, _ = await c.post("/admin/tariffs/new", FORM)
        assert status == 200
        status, body, _ = await c.post("/admin/tariffs/new", FORM)
        assert status == 422 and field_error(body, "name") == "another tariff has this name"
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tariffs") == 1
        assert await conn.fetchval("SELECT count(*) FROM operations_log WHERE object_type = 'tariff'") == 1


async def test_custom_fields_are_asked_checked_and_shown_a_link_as_a_link(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO custom_fields (object_type, key, label, kind, choices, required, position) VALUES "
            "('tariff', 'sheet', 'Data sheet', 'url', '{}', false, 1), "
            "('tariff', 'segment', 'Segment', 'choice', '{home,business}', true, 2), "
            "('tariff', 'since', 'Sold since', 'date', '{}', false, 3), "
            "('tariff', 'fee', 'Setup fee', 'number', '{}', false, 4), "
            "('router', 'rack', 'Rack', 'text', '{}', false, 1)")
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/tariffs/new")
        assert 'name="custom.sheet" type="url"' in body and 'name="custom.segment"' in body
        assert "custom.rack" not in body and 'type="date"' in body
        status, body, _ = await c.post("/admin/tariffs/new", {
            **FORM, "custom.sheet": "javascript:alert(1)", "custom.since": "2025-13-01", "custom.fee": "ten"})
        assert status == 422
        assert field_error(body, "custom.sheet") == "must be a web address (http:// or https://)"
        assert field_error(body, "custom.segment") == "is required"
        assert field_error(body, "custom.since") == "must be a date, YYYY-MM-DD"
        assert field_error(body, "custom.fee") == "must be a number, like 12.5"
        assert 'value="javascript:alert(1)"' in body
        status, body, _ = await c.post("/admin/tariffs/new", {
            **FORM, "custom.sheet": "https://example.net/fibre.pdf", "custom.segment": "business",
            "custom.since": "2025-03-01", "custom.fee": "49.50"})
        assert status == 200, body
        assert '<a href="https://example.net/fibre.pdf" rel="noopener noreferrer"' in body
        assert "business" in body and "2025-03-01" in body
    async with admin.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT custom FROM tariffs")
    assert stored == {"sheet": "https://example.net/fibre.pdf", "segment": "business", "since": "2025-03-01",
                      "fee": "49.50"}


async def test_the_list_sorts_filters_pages_counts_services_and_exports_csv(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        ids = {}
        for name, down, price in (("Alpha", 10000, "30"), ("Bravo", 50000, "10.5"), ("Charlie", 20000, "20"),
                                  ("Delta", 40000, "5")):
            ids[name] = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps, price) "
                                            "VALUES ($1, $2, 1000, $3::numeric) RETURNING id", name, down, price)
        await service_on(conn, ids["Bravo"], "b1")
        await service_on(conn, ids["Bravo"], "b2")
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/tariffs?sort=price&limit=3")
        assert status == 200
        names = re.findall(r'<a href="/admin/tariffs/\d+">(\w+)</a>', body)
        assert names == ["Delta", "Bravo", "Charlie"]
        assert re.search(rf'<a href="/admin/tariffs/{ids["Bravo"]}">Bravo</a>.*?<td class="num">2</td>', body, re.S)
        nxt = re.search(r'href="([^"]*after=[^"]*)" rel="next"', body)
        assert nxt is not None
        status, body = await c.get(nxt.group(1).replace("&amp;", "&"))
        assert re.findall(r'<a href="/admin/tariffs/\d+">(\w+)</a>', body) == ["Alpha"]
        assert 'rel="next"' not in body
        status, body = await c.get("/admin/tariffs?sort=download&dir=desc")
        assert re.findall(r'<a href="/admin/tariffs/\d+">(\w+)</a>', body) == ["Bravo", "Delta", "Charlie", "Alpha"]
        status, body = await c.get("/admin/tariffs?q=rav")
        assert re.findall(r'<a href="/admin/tariffs/\d+">(\w+)</a>', body) == ["Bravo"]
        status, body = await c.get("/admin/tariffs?q=%25")
        assert "No tariff has" in body
        async with c.session.get(admin.url + "/admin/tariffs?format=csv&sort=price") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert [r["name"] for r in rows] == ["Delta", "Bravo", "Charlie", "Alpha"]
    assert rows[1]["services"] == "2" and rows[1]["price"] == "10.5000"


async def test_a_tariff_in_use_is_not_deleted_and_the_page_says_by_what(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        tariff_id = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps) "
                                        "VALUES ('Used', 1000, 1000) RETURNING id")
        await service_on(conn, tariff_id, "alice")
        await service_on(conn, tariff_id, "bob")
        key = await api_key(conn)
    async with await logged_in(admin) as c:
        await c.get(f"/admin/tariffs/{tariff_id}")
        status, body, _ = await c.post(f"/admin/tariffs/{tariff_id}/delete", {})
        assert status == 409
        assert "This tariff is used by 2 services (alice, bob): move them to another tariff" in body
    status, problem = await call(admin, key, "DELETE", f"/tariffs/{tariff_id}")
    assert status == 409 and "used by 2 services" in problem["detail"]
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tariffs") == 1
        assert await oplog(conn, "tariff", tariff_id) == []


async def test_the_api_creates_reads_changes_lists_and_deletes_tariffs(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
        await conn.execute("INSERT INTO custom_fields (object_type, key, label, kind) "
                           "VALUES ('tariff', 'sheet', 'Data sheet', 'url')")
    status, t = await call(admin, key, "POST", "/tariffs", {
        "name": "API 50", "download_kbps": 50000, "upload_kbps": 10000, "price": "12.3456",
        "burst_download_kbps": 80000, "burst_upload_kbps": 15000, "burst_time_s": 8,
        "custom": {"sheet": "https://example.net/a"}})
    assert status == 201, t
    assert t["price"] == "12.3456" and t["currency"] == "EUR" and t["priority"] == 8 and t["services"] == 0
    assert t["custom"] == {"sheet": "https://example.net/a"}
    tid = t["id"]
    status, got = await call(admin, key, "GET", f"/tariffs/{tid}")
    assert status == 200 and got == t
    status, problem = await call(admin, key, "PATCH", f"/tariffs/{tid}", {"price": 15.1})
    assert status == 422 and "price" in problem["detail"]  # money is a decimal string, never a float
    status, changed = await call(admin, key, "PATCH", f"/tariffs/{tid}", {"price": "15", "burst_download_kbps": None,
                                                                          "burst_upload_kbps": None,
                                                                          "burst_time_s": None})
    assert status == 200, changed
    assert changed["price"] == "15.0000" and changed["burst_download_kbps"] is None and changed["name"] == "API 50"

    status, problem = await call(admin, key, "PATCH", f"/tariffs/{tid}", {"burst_time_s": 5})
    assert status == 422 and "go together" in problem["errors"]["burst_download_kbps"], problem
    status, problem = await call(admin, key, "POST", "/tariffs", {"name": "x", "download_kbps": 0,
                                                                  "upload_kbps": 1})
    assert status == 422 and "download_kbps" in problem["errors"]
    status, problem = await call(admin, key, "POST", "/tariffs", {"name": "API 50", "download_kbps": 1,
                                                                  "upload_kbps": 1})
    assert status == 422 and problem["errors"] == {"name": "another tariff has this name"}
    status, problem = await call(admin, key, "POST", "/tariffs", {
        "name": "y", "download_kbps": 1, "upload_kbps": 1, "custom": {"sheet": "ftp://x", "nope": "1"}})
    assert status == 422 and set(problem["errors"]) == {"custom.sheet", "custom.nope"}
    status, problem = await call(admin, key, "POST", "/tariffs", {"name": "y", "download_kbps": 1,
                                                                  "upload_kbps": 1, "price": "-1"})
    assert status == 422 and "price" in problem["errors"]

    for n in range(3):
        status, _ = await call(admin, key, "POST", "/tariffs", {"name": f"Bulk {n}", "download_kbps": 1000 + n,
                                                                "upload_kbps": 1000})
        assert status == 201
    status, page = await call(admin, key, "GET", "/tariffs?limit=3&sort=download&dir=desc")
    assert status == 200 and [i["name"] for i in page["items"]] == ["API 50", "Bulk 2", "Bulk 1"]
    status, page2 = await call(admin, key, "GET", f"/tariffs?limit=3&sort=download&dir=desc&after={page['next']}")
    assert [i["name"] for i in page2["items"]] == ["Bulk 0"] and page2["next"] is None
    status, _ = await call(admin, key, "GET", "/tariffs/999999")
    assert status == 404
    for sort, value in (("price", "lots"), ("download", "fast"), ("name", 7)):  # a cursor made up by hand
        status, problem = await call(admin, key, "GET", f"/tariffs?sort={sort}&after={encode_cursor([value, 1])}")
        assert status == 400 and "cursor" in problem["detail"], (sort, problem)
    status, problem = await call(admin, key, "POST", "/tariffs", {"name": "nul\u0000", "download_kbps": 1,
                                                                  "upload_kbps": 1})
    assert status == 422, problem
    status, gone = await call(admin, key, "DELETE", f"/tariffs/{tid}")
    assert status == 200 and gone == {"id": tid}
    async with admin.pool.acquire() as conn:
        log = await oplog(conn, "tariff", tid)
    assert [r["action"] for r in log] == ["create", "update", "delete"]
    assert log[0]["actor"].startswith("key:test-super") and log[0]["api_key_id"] is not None
    assert log[1]["before"]["price"] == "12.3456" and log[1]["after"]["price"] == "15.0000"


async def test_a_role_without_the_permission_is_refused(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        tariff_id = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps) "
                                        "VALUES ('T', 1000, 1000) RETURNING id")
        tech = await api_key(conn, "technician")
        finance = await api_key(conn, "finance")
    async with await logged_in(admin, "tech", "technician") as c:
        for path in ("/admin/tariffs", f"/admin/tariffs/{tariff_id}", "/admin/tariffs/new"):
            status, body = await c.get(path)
            assert status == 403 and "tariffs." in body, path
        assert "/admin/tariffs" not in (await c.get("/admin/"))[1]  # not in the menu either
    async with await logged_in(admin, "money", "finance") as c:
        status, body = await c.get(f"/admin/tariffs/{tariff_id}")
        assert status == 200 and "/edit" not in body and "Delete" not in body  # finance only reads
        status, _ = await c.get(f"/admin/tariffs/{tariff_id}/edit")
        assert status == 403
        status, _, _ = await c.post(f"/admin/tariffs/{tariff_id}/delete", {})
        assert status == 403
    assert (await call(admin, tech, "GET", "/tariffs"))[0] == 403
    assert (await call(admin, finance, "GET", "/tariffs"))[0] == 200
    assert (await call(admin, finance, "PATCH", f"/tariffs/{tariff_id}", {"name": "Z"}))[0] == 403
    assert (await call(admin, finance, "DELETE", f"/tariffs/{tariff_id}"))[0] == 403
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT name FROM tariffs WHERE id = $1", tariff_id) == "T"


async def test_a_billing_change_of_a_tariff_with_active_services_asks_to_confirm_and_opens_a_ticket(
        admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        tariff_id = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps, price) "
                                        "VALUES ('Busy', 100000, 20000, 29.99) RETURNING id")
        await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ('Taken', 1, 1)")
        await service_on(conn, tariff_id, "alice")
        await service_on(conn, tariff_id, "bob")
        await conn.execute("UPDATE services SET status = 'archived' WHERE login = 'bob'")
        key = await api_key(conn)
    form = {"name": "Busy", "download_kbps": "100000", "upload_kbps": "20000", "priority": "8",
            "contention": "1", "price": "34.99", "currency": "EUR"}
    async with await logged_in(admin) as c:
        await c.get(f"/admin/tariffs/{tariff_id}/edit")
        status, body, url = await c.post(f"/admin/tariffs/{tariff_id}/edit", form)
        assert status == 200 and url.endswith("/edit"), (status, url)
        assert "1 active service is on this plan; they change with it" in body
        assert '<input type="hidden" name="confirm" value="1">' in body and 'value="34.99"' in body
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT price FROM tariffs WHERE id = $1", tariff_id) == Decimal("29.99")
            assert await conn.fetchval("SELECT count(*) FROM tickets") == 0
            assert await oplog(conn, "tariff", tariff_id) == []
        # a change that fails (a name taken) opens no ticket: it is in the save's transaction
        status, body, _ = await c.post(f"/admin/tariffs/{tariff_id}/edit", {**form, "name": "Taken", "confirm": "1"})
        assert status == 422 and field_error(body, "name") == "another tariff has this name"
        status, body, url = await c.post(f"/admin/tariffs/{tariff_id}/edit", {**form, "confirm": "1"})
        assert status == 200 and url.endswith("?done=saved"), body
        # a change of no billing field is not asked about
        status, body, url = await c.post(f"/admin/tariffs/{tariff_id}/edit", {**form, "name": "Busy 2"})
        assert status == 200 and url.endswith("?done=saved"), body
    status, changed = await call(admin, key, "PATCH", f"/tariffs/{tariff_id}", {"price": "39.99"})
    assert status == 200 and changed["price"] == "39.9900"  # the API is not asked to confirm
    async with admin.pool.acquire() as conn:
        rows = await conn.fetch("SELECT t.subject, t.source, t.customer_id, m.body FROM tickets t "
                                "JOIN ticket_messages m ON m.ticket_id = t.id ORDER BY t.id")
    assert [r["subject"] for r in rows] == ["Tariff plan Busy changed", "Tariff plan Busy 2 changed",
                                            "Tariff plan Busy 2 changed"]
    assert all(r["source"] == "rule" and r["customer_id"] is None for r in rows)
    assert "price: 29.99 → 34.99" in rows[0]["body"] and "1 active service is on this plan." in rows[0]["body"]
    assert "name: Busy → Busy 2" in rows[1]["body"] and "price: 34.99 → 39.99" in rows[2]["body"]

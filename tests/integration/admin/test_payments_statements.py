"""Bank statements through the admin on 127.0.0.1: the pages (upload, the mapping screen, a
statement, the review queue, a line, the mappings), the API (mapping CRUD, upload as multipart
and as the body, lines, the review queue, candidates, pair, ignore), the operations log, and who
sees what (a partner's administrator sees no statement)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from admin.billing import ledger
from admin.payments import reference
from tests.integration.admin.conftest import Admin, Client, api_key, call, make_admin

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "statements"
TODAY = dt.datetime.now(dt.UTC).date()
HEADER = "Booking date;Payer;IBAN;Purpose;Amount\n"


async def world(admin: Admin) -> dict[str, Any]:
    """Two customers with an open invoice of 31.00 each (partner "Main"), a second partner's
    customer, an administrator of each, and API keys."""
    async with admin.pool.acquire() as conn:
        main = await conn.fetchval("INSERT INTO partners (name) VALUES ('Main') RETURNING id")
        other = await conn.fetchval("INSERT INTO partners (name) VALUES ('Other') RETURNING id")
        ids = []
        for n, (name, partner) in enumerate((("Anna Berger", main), ("Karl Huber", main), ("Olga Nova", other)),
                                            start=1):
            cid = await conn.fetchval("INSERT INTO customers (partner_id, number, name, email) VALUES ($1, $2, $3, $4) "
                                      "RETURNING id", partner, f"C{n:05d}", name, f"c{n}@example.net")
            async with conn.transaction():
                await ledger.issue(conn, [ledger.NewDocument(
                    "invoice", cid, partner, "EUR", TODAY, "manual", (ledger.NewLine("Internet", Decimal("31.00")),),
                    due_on=TODAY + dt.timedelta(days=14))])
            ids.append(cid)
        rows = await conn.fetch("SELECT customer_id, number FROM documents")
        invoices = {r["customer_id"]: r["number"] for r in rows}
        await make_admin(conn, "root", "super")
        await make_admin(conn, "alpha", "super", partner_id=main)
        await make_admin(conn, "cash", "cashier")
        keys = {"root": await api_key(conn, "super"), "alpha": await api_key(conn, "super", partner_id=main),
                "cashier": await api_key(conn, "cashier")}
    return {"ids": ids, "invoices": invoices, "keys": keys, "main": main, "other": other}


async def sample_rows(conn: asyncpg.Connection, customer_id: int) -> None:
    """A mapping, a statement and two lines of it (one waiting with ``customer_id`` suggested, one ignored),
    for the pages' query counts (test_query_counts.py)."""
    mapping = await conn.fetchval("INSERT INTO bank_mappings (name, columns) VALUES ('QC bank', $1::jsonb) "
                                  "RETURNING id", {"date": 0, "amount": 1})
    sid = await conn.fetchval("INSERT INTO bank_statements (file_name, format, mapping_id, file_sha256, line_count) "
                              "VALUES ('qc.csv', 'csv', $1, 'qc', 2) RETURNING id", mapping)
    await conn.execute(
        "INSERT INTO bank_statement_lines (statement_id, line_hash, position, booked_on, amount, currency, payer_name, "
        "status, customer_id, score, explanation) VALUES ($1, 'qc-1', 1, current_date, 5, 'EUR', 'QC', 'new', $2, 45, "
        "'[{\"signal\": \"name\", \"points\": 45, \"detail\": \"qc\"}]'), "
        "($1, 'qc-2', 2, current_date, -5, 'EUR', 'QC', 'ignored', NULL, 0, '[]')", sid, customer_id)


def csv_file(w: dict[str, Any]) -> bytes:
    a, b, _ = w["ids"]
    day = TODAY.strftime("%d.%m.%Y")
    ref = reference.printed(reference.for_customer(a))
    return (HEADER + f"{day};Anna Berger;AT61 1904 3002 3457 3201;{ref};31,00\n"
            f"{day};K. Huber;;Rechnung {w['invoices'][b]};31,00\n"
            f"{day};Nobody Known;;a present;9,99\n"
            f"{day};Telco GmbH;;cable;-5,00\n").encode()


MAPPING = {"name": "Test bank", "delimiter": ";", "skip_lines": 0, "has_header": True, "date_format": "%d.%m.%Y",
           "decimal_comma": True, "columns": {"date": 0, "payer_name": [1], "payer_account": 2, "description": [3],
                                              "amount": 4}}


async def upload(admin: Admin, key: str, data: bytes, *, mapping_id: int | None = None, multipart: bool = True,
                 name: str = "s.csv") -> tuple[int, Any]:
    url = admin.url + "/api/v1/finance/bank-statements"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s:
        if multipart:
            form = aiohttp.FormData()
            form.add_field("file", io.BytesIO(data), filename=name, content_type="text/csv")
            if mapping_id is not None:
                form.add_field("mapping_id", str(mapping_id))
            async with s.post(url, data=form) as r:
                return r.status, json.loads(await r.text())
        query = f"?mapping_id={mapping_id}" if mapping_id else ""
        async with s.post(url + query, data=io.BytesIO(data), headers={"Content-Type": "application/xml"}) as r:
            return r.status, json.loads(await r.text())


async def test_the_api_imports_matches_and_lets_a_person_pair_and_ignore(admin: Admin) -> None:
    w = await world(admin)
    key = w["keys"]["root"]
    status, mapping = await call(admin, key, "POST", "/finance/bank-mappings", MAPPING)
    assert status == 201, mapping
    assert mapping["columns"]["payer_name"] == [1] and mapping["statements"] == 0
    status, body = await call(admin, key, "POST", "/finance/bank-mappings", {**MAPPING, "columns": {"date": 0}})
    assert status == 422 and "amount" in json.dumps(body["errors"])
    status, body = await upload(admin, key, csv_file(w), mapping_id=mapping["id"])
    assert status == 201, body
    assert body["counts"] == {"matched": 2, "new": 1, "ignored": 1} and body["payments"] == 2
    sid = body["statement"]["id"]
    assert body["statement"]["waiting"] == 1 and body["statement"]["format"] == "csv"
    status, again = await upload(admin, key, csv_file(w), mapping_id=mapping["id"])
    assert status == 409 and f"statement {sid}" in again["detail"]
    status, broken = await upload(admin, key, b"<Document><broken>", multipart=False, name="x.xml")
    assert status == 422 and "not well-formed XML at line 1" in broken["errors"]["file"]
    status, hostile = await upload(admin, key, (VECTORS / "billion_laughs.xml").read_bytes(), multipart=False)
    assert status == 422 and "DTD" in hostile["errors"]["file"]
    status, camt = await upload(admin, key, (VECTORS / "camt053_v08.xml").read_bytes(), multipart=False)
    assert status == 201 and camt["statement"]["format"] == "camt053", camt

    status, page = await call(admin, key, "GET", f"/finance/bank-statements/{sid}/lines")
    assert status == 200 and [line["status"] for line in page["items"]] == ["matched", "matched", "new", "ignored"]
    first = page["items"][0]
    assert first["customer_id"] == w["ids"][0] and first["score"] == 100 and first["payment_id"]
    assert first["explanation"][0]["signal"] == "reference"
    status, queue = await call(admin, key, "GET", "/finance/bank-statement-lines")
    assert status == 200 and [line["payer_name"] for line in queue["items"]] == ["Nobody Known", "ACME Networks s.r.o."]
    line = queue["items"][0]
    status, found = await call(admin, key, "GET", f"/finance/bank-statement-lines/{line['id']}/candidates?q=huber")
    assert status == 200 and [c["customer_id"] for c in found] == [w["ids"][1]]
    status, found = await call(admin, key, "GET", f"/finance/bank-statement-lines/{line['id']}/candidates"
                                                  f"?q={w['invoices'][w['ids'][0]]}")
    assert status == 200 and found[0]["customer_id"] == w["ids"][0] and found[0]["document_id"]
    status, paired = await call(admin, key, "POST", f"/finance/bank-statement-lines/{line['id']}/pair",
                                {"customer_id": w["ids"][1]})
    assert status == 200 and paired["status"] == "paired" and paired["payment_id"], paired
    status, again = await call(admin, key, "POST", f"/finance/bank-statement-lines/{line['id']}/pair",
                               {"customer_id": w["ids"][0]})
    assert status == 409
    other = queue["items"][1]
    status, ignored = await call(admin, key, "POST", f"/finance/bank-statement-lines/{other['id']}/ignore",
                                 {"reason": "our own transfer"})
    assert status == 200 and ignored["status"] == "ignored"
    assert ignored["explanation"][-1]["detail"].endswith("our own transfer")
    status, queue = await call(admin, key, "GET", "/finance/bank-statement-lines")
    assert queue["items"] == []
    status, listed = await call(admin, key, "GET", "/finance/bank-statements")
    assert status == 200 and [s["id"] for s in listed["items"]] == [camt["statement"]["id"], sid]
    status, one = await call(admin, key, "GET", f"/finance/bank-statements/{sid}")
    assert one["counts"] == {"matched": 2, "paired": 1, "ignored": 1} and one["waiting"] == 0
    status, gone = await call(admin, key, "DELETE", f"/finance/bank-mappings/{mapping['id']}")
    assert status == 409 and "stays" in gone["detail"]
    async with admin.pool.acquire() as conn:
        actions = [(r["action"], r["object_type"]) for r in await conn.fetch(
            "SELECT action, object_type FROM operations_log WHERE object_type LIKE 'bank%' ORDER BY id")]
        assert actions == [("create", "bank_mapping"), ("import", "bank_statement"), ("import", "bank_statement"),
                           ("pair", "bank_statement_line"), ("ignore", "bank_statement_line")]
        balances = await conn.fetch("SELECT customer_id, sum(CASE direction WHEN 'credit' THEN amount ELSE -amount "
                                    "END) AS b FROM transactions GROUP BY customer_id ORDER BY customer_id")
        assert [str(r["b"]) for r in balances] == ["0.0000", "9.9900", "-31.0000"]  # Karl: 9.99 ahead


async def test_mappings_are_made_changed_and_deleted_by_finance_edit(admin: Admin) -> None:
    w = await world(admin)
    status, made = await call(admin, w["keys"]["cashier"], "POST", "/finance/bank-mappings", MAPPING)
    assert status == 403
    status, made = await call(admin, w["keys"]["root"], "POST", "/finance/bank-mappings", MAPPING)
    assert status == 201
    status, dup = await call(admin, w["keys"]["root"], "POST", "/finance/bank-mappings", MAPPING)
    assert status == 422 and dup["errors"] == {"name": "another mapping has this name"}
    changed = {**MAPPING, "name": "Test bank (new export)", "delimiter": ","}
    status, body = await call(admin, w["keys"]["root"], "PUT", f"/finance/bank-mappings/{made['id']}", changed)
    assert status == 200 and body["delimiter"] == "," and body["name"] == "Test bank (new export)"
    status, _ = await call(admin, w["keys"]["cashier"], "GET", f"/finance/bank-mappings/{made['id']}")
    assert status == 403  # the cash desk takes payments; statements are the finance office's
    status, got = await call(admin, w["keys"]["root"], "GET", f"/finance/bank-mappings/{made['id']}")
    assert status == 200 and got["name"] == "Test bank (new export)"
    status, _ = await call(admin, w["keys"]["root"], "DELETE", f"/finance/bank-mappings/{made['id']}")
    assert status == 200
    status, _ = await call(admin, w["keys"]["root"], "GET", f"/finance/bank-mappings/{made['id']}")
    assert status == 404


async def test_a_partners_administrator_sees_no_statement(admin: Admin) -> None:
    w = await world(admin)
    status, mapping = await call(admin, w["keys"]["root"], "POST", "/finance/bank-mappings", MAPPING)
    status, body = await upload(admin, w["keys"]["root"], csv_file(w), mapping_id=mapping["id"])
    sid = body["statement"]["id"]
    status, lines = await call(admin, w["keys"]["root"], "GET", f"/finance/bank-statements/{sid}/lines")
    line = lines["items"][2]["id"]
    alpha = w["keys"]["alpha"]
    for path in (f"/finance/bank-statements/{sid}", f"/finance/bank-statements/{sid}/lines",
                 f"/finance/bank-statement-lines/{line}", f"/finance/bank-statement-lines/{line}/candidates?q=anna",
                 f"/finance/bank-mappings/{mapping['id']}"):
        status, _ = await call(admin, alpha, "GET", path)
        assert status == 404, path
    for path in ("/finance/bank-statements", "/finance/bank-statement-lines"):
        status, page = await call(admin, alpha, "GET", path)
        assert status == 200 and page["items"] == [], path
    status, listed = await call(admin, alpha, "GET", "/finance/bank-mappings")
    assert status == 200 and listed == []
    status, _ = await call(admin, alpha, "POST", f"/finance/bank-statement-lines/{line}/pair",
                           {"customer_id": w["ids"][0]})
    assert status == 404
    status, _ = await call(admin, alpha, "POST", f"/finance/bank-statement-lines/{line}/ignore", {"reason": "x"})
    assert status == 404
    status, _ = await upload(admin, alpha, b"x", multipart=False)
    assert status == 403
    async with admin.client() as c:
        await c.login("alpha")
        status, text = await c.get(f"/admin/finance/bank-statements/{sid}")
        assert status == 404
        status, text = await c.get(f"/admin/finance/bank-statement-lines/{line}")
        assert status == 404
        status, text = await c.get("/admin/finance/bank-statements")
        assert status == 200 and "only an administrator of every partner" in text and "Nobody Known" not in text
        status, text = await c.get("/admin/finance/bank-statement-lines")
        assert status == 200 and "Nobody Known" not in text


async def _csrf(c: Client, path: str) -> str:
    await c.get(path)
    return c.csrf


async def test_the_pages_upload_map_and_pair(admin: Admin) -> None:
    w = await world(admin)
    async with admin.client() as c:
        await c.login("root")
        status, text = await c.get("/admin/finance/bank-statements")
        assert status == 200 and 'enctype="multipart/form-data"' in text
        form = aiohttp.FormData()
        form.add_field("_csrf", c.csrf)
        form.add_field("mapping", "")
        form.add_field("file", csv_file(w), filename="april.csv", content_type="text/csv")
        async with c.session.post(admin.url + "/admin/finance/bank-statements", data=form) as r:
            text = await r.text()
            assert r.status == 200, text
        assert "not CAMT.053 nor MT940" in text and "Booking date" in text and "Anna Berger" in text
        content = re.search(r'name="content" value="([^"]+)"', text)
        assert content is not None and base64.b64decode(content.group(1)) == csv_file(w)
        assert re.search(r'<select name="col_4"[^>]*>.*?<option value="amount" selected', text, re.S)
        status, text, url = await c.post("/admin/finance/bank-statements/mapping", {
            "content": content.group(1), "file_name": "april.csv", "delimiter": ";", "encoding": "utf-8",
            "skip_lines": "0", "has_header": "1", "date_format": "%d.%m.%Y", "decimal_comma": "1",
            "col_0": "date", "col_1": "payer_name", "col_2": "payer_account", "col_3": "description",
            "col_4": "amount", "name": "", "action": "save"})
        assert status == 422 and "is required" in text
        status, text, url = await c.post("/admin/finance/bank-statements/mapping", {
            "content": content.group(1), "file_name": "april.csv", "delimiter": ";", "encoding": "utf-8",
            "skip_lines": "0", "has_header": "1", "date_format": "%d.%m.%Y", "decimal_comma": "1",
            "col_0": "date", "col_1": "payer_name", "col_2": "payer_account", "col_3": "description",
            "col_4": "amount", "name": "My bank", "action": "save"})
        assert status == 200 and "/admin/finance/bank-statements/" in url and "done=imported" in url, text
        assert "2 matched and recorded as payments, 1 waiting for you" in text
        status, text = await c.get("/admin/finance/bank-statement-lines")
        assert status == 200 and "Nobody Known" in text
        line = int(re.findall(r'/admin/finance/bank-statement-lines/(\d+)"', text)[0])
        status, text = await c.get(f"/admin/finance/bank-statement-lines/{line}?q=huber")
        assert status == 200 and "Karl Huber" in text and "nothing in the line names a customer" in text
        status, text, url = await c.post(f"/admin/finance/bank-statement-lines/{line}/pair",
                                         {"customer_id": str(w["ids"][1])})
        assert status == 200 and "done=paired" in url and "Paired" in text
        status, text = await c.get("/admin/finance/bank-mappings")
        assert status == 200 and "My bank" in text and "booking date 1" in text
        mapping_id = int(re.findall(r'/admin/finance/bank-mappings/(\d+)"', text)[0])
        status, text = await c.get(f"/admin/finance/bank-mappings/{mapping_id}")
        assert status == 200 and 'value="My bank"' in text
        status, text, url = await c.post(f"/admin/finance/bank-mappings/{mapping_id}", {
            "delimiter": ";", "encoding": "cp1252", "skip_lines": "1", "has_header": "1", "date_format": "%d.%m.%Y",
            "col_0": "date", "col_1": "payer_name", "col_4": "amount", "name": "My bank", "action": "save"})
        assert status == 200 and url.endswith("done=saved"), text
        async with admin.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM bank_mappings WHERE id = $1", mapping_id)
            assert row is not None and (row["encoding"], row["skip_lines"], row["decimal_comma"]) == ("cp1252", 1,
                                                                                                     False)
            assert row["columns"] == {"date": 0, "payer_name": [1], "amount": 4}
        # the same file again, now with the saved mapping: it was imported already
        form = aiohttp.FormData()
        form.add_field("_csrf", c.csrf)
        form.add_field("mapping", str(mapping_id))
        form.add_field("file", csv_file(w), filename="april.csv", content_type="text/csv")
        async with c.session.post(admin.url + "/admin/finance/bank-statements", data=form) as r:
            text = await r.text()
            assert r.status == 200 and "imported already" in text and "done=again" in str(r.url)


@pytest.mark.parametrize("path", ["/admin/finance/bank-statements", "/admin/finance/bank-statement-lines",
                                  "/admin/finance/bank-mappings"])
async def test_the_cashier_sees_no_statement_and_no_link_to_them(admin: Admin, path: str) -> None:
    await world(admin)
    async with admin.client() as c:
        await c.login("cash")
        status, _ = await c.get(path)
        assert status == 403
        status, text = await c.get("/admin/finance/payments")
        assert status == 200 and 'href="/admin/finance/bank-statements"' not in text


async def test_the_api_takes_a_file_larger_than_the_apps_request_limit(admin: Admin) -> None:
    """The upload is read as a stream up to the statements' own limit (32 MiB), not the app's 4 MiB."""
    w = await world(admin)
    padded = (VECTORS / "camt053_v08.xml").read_bytes().replace(b"<BkToCstmrStmt>",
                                                                b"<!--" + b"x" * (5 * 1024 * 1024) + b"-->"
                                                                b"<BkToCstmrStmt>")
    status, body = await upload(admin, w["keys"]["root"], padded, multipart=False)
    assert status == 201, body
    status, body = await upload(admin, w["keys"]["root"], padded.replace(b"S-1", b"S-2"), name="big.xml")
    assert status == 201 and body["counts"] == {}, body  # as multipart; its one line is known already

"""Finance → Direct debit through its pages and its API on 127.0.0.1: the creditor's settings and
a mandate refused with a clear message when wrong; a batch made, its pain.008 downloaded (valid
against the official XSD), settled into payments, a return file uploaded that fails one
collection; the same through the API; each change in the operations log; the roles' permissions;
and a partner's administrator or key seeing only its customers' mandates and collections (others
404), the batches counted over them, and none of the creditor's files."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import asyncpg
import pytest

from admin.billing import run
from admin.payments import direct_debit as dd
from tests.db.test_billing import customer
from tests.integration.admin.conftest import Admin, Client, api_key, call, make_admin
from tests.unit.payments.test_direct_debit import assert_valid_pain008, pain002, tx_status

D = Decimal
APRIL = dt.date(2026, 4, 1)
TODAY = dt.datetime.now(dt.UTC).date()
IBAN = "DE89370400440532013000"
BASE = "/admin/finance/direct-debit"


@dataclass
class World:
    a: list[int]              # partner A's customers (invoiced, with mandates)
    b: list[int]              # partner B's
    a_partner: int
    date: str                 # the first collection date a batch made today may ask for


async def world(admin: Admin, conn: asyncpg.Connection, *, mandates: bool = True) -> World:
    a_id = await conn.fetchval("INSERT INTO partners (name) VALUES ('Alpha ISP') RETURNING id")
    b_id = await conn.fetchval("INSERT INTO partners (name) VALUES ('Bravo ISP') RETURNING id")
    a = [await customer(conn, i, start=APRIL, partner=a_id) for i in (1, 2)]
    b = [await customer(conn, i, start=APRIL, partner=b_id) for i in (3,)]
    await run.run(admin.pool, APRIL)
    await conn.execute("UPDATE sepa_settings SET creditor_id = 'DE98ZZZ09999999999', creditor_name = 'Lastmile Netz', "
                       "iban = 'DE02120300000000202051', bic = 'BYLADEM1001'")
    if mandates:
        for cid in a + b:
            await conn.execute("INSERT INTO sepa_mandates (customer_id, reference, iban, bic, holder, signed_on) "
                               "VALUES ($1, $2, $3, 'COBADEFFXXX', $4, '2026-03-01')", cid, f"M-{cid}", IBAN,
                               f"Holder {cid}")
    return World(a, b, a_id, dd.earliest_collection(TODAY, 2).isoformat())


async def sample_rows(conn: asyncpg.Connection, customer_id: int) -> None:
    """A mandate of the customer and a batch collecting its first invoice (for tests that ask every
    page with a row, as test_query_counts.py does)."""
    mandate = await conn.fetchval("INSERT INTO sepa_mandates (customer_id, reference, iban, holder, signed_on) "
                                  "VALUES ($1, 'QC-1', $2, 'Holder', '2026-03-01') RETURNING id", customer_id, IBAN)
    batch = await conn.fetchval("INSERT INTO dd_batches (message_id, collection_date, currency, count, total, xml) "
                                "VALUES ('QC-1', current_date, 'EUR', 1, 6, '<Document/>') RETURNING id")
    await conn.execute("INSERT INTO dd_collections (batch_id, mandate_id, customer_id, document_id, amount, sequence, "
                       "end_to_end_id) SELECT $1, $2, $3, min(id), 6, 'FRST', 'QC-1' FROM documents "
                       "WHERE customer_id = $3 AND kind = 'invoice'", batch, mandate, customer_id)


async def logged(admin: Admin, login: str, role: str = "super", *, partner_id: int | None = None) -> Client:
    async with admin.pool.acquire() as conn:
        await make_admin(conn, login, role, partner_id=partner_id)
    c = admin.client()
    status, body, _ = await c.login(login)
    assert status == 200, body
    return c


async def upload(c: Client, path: str, data: bytes, name: str = "report.xml") -> tuple[int, str]:
    form = aiohttp.FormData()
    form.add_field("_csrf", c.csrf)
    form.add_field("file", data, filename=name, content_type="application/xml")
    async with c.session.post(c.url + path, data=form) as r:
        return r.status, await r.text()


async def oplog(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    return [(r["action"], r["object_type"]) for r in await conn.fetch(
        "SELECT action, object_type FROM operations_log WHERE object_type LIKE 'dd_%' OR object_type LIKE 'sepa_%' "
        "ORDER BY id")]


# -- the pages --------------------------------------------------------------------------------------

async def test_settings_and_a_mandate_are_refused_when_wrong_and_saved_when_right(admin: Admin,
                                                                                  conn: asyncpg.Connection) -> None:
    w = await world(admin, conn, mandates=False)
    async with await logged(admin, "root") as c:
        status, body = await c.get(f"{BASE}/settings")
        assert status == 200 and "DE98ZZZ09999999999" in body
        status, body, _ = await c.post(f"{BASE}/settings", {"creditor_id": "DE97ZZZ09999999999",
                                                            "creditor_name": "Lastmile", "iban": IBAN,
                                                            "scheme": "CORE", "lead_days": "3"})
        assert status == 422 and "the check digits (97) do not match the national identifier" in body
        status, body, url = await c.post(f"{BASE}/settings", {"creditor_id": "de98 zzz 09999999999",
                                                              "creditor_name": "Lastmile Netz GmbH",
                                                              "iban": "DE89 3704 0044 0532 0130 00", "bic": "",
                                                              "scheme": "B2B", "lead_days": "3"})
        assert status == 200 and url.endswith("done=saved"), body
        row = await conn.fetchrow("SELECT * FROM sepa_settings")
        assert row is not None
        assert (row["iban"], row["bic"], row["scheme"], row["lead_days"]) == (IBAN, "COBADEFFXXX", "B2B", 3)

        status, body = await c.get(f"{BASE}/mandates?customer_id={w.a[0]}")
        assert status == 200 and "New mandate" in body and "C00001" in body
        status, body, _ = await c.post(f"{BASE}/mandates", {"customer": "C00001", "holder": "Ann Holder",
                                                            "iban": "DE89 3704 0044 0532 0130 01",
                                                            "signed_on": "2026-03-01"})
        assert status == 422 and "the check digits (89) do not match the rest" in body
        status, body, _ = await c.post(f"{BASE}/mandates", {"customer": "C99999", "holder": "x", "iban": IBAN,
                                                            "signed_on": "2026-03-01"})
        assert status == 422 and "no such customer" in body
        status, body, url = await c.post(f"{BASE}/mandates", {"customer": "C00001", "holder": "Ann Holder",
                                                              "iban": "de89 3704 0044 0532 0130 00",
                                                              "signed_on": "2026-03-01"})
        assert status == 200 and "/mandates/" in url and "done=added" in url, body
        assert "LM-C00001-1" in body and "COBADEFFXXX" in body and "Commerzbank" not in body
        status, body, _ = await c.post(f"{BASE}/mandates", {"customer": "C00001", "holder": "Ann", "iban": IBAN,
                                                            "signed_on": "2026-03-01"})
        assert status == 422 and "has the active mandate LM-C00001-1" in body
        mandate_id = int(url.split("/mandates/")[1].split("?")[0])
        status, body, url = await c.post(f"{BASE}/mandates/{mandate_id}/revoke")
        assert status == 200 and "done=revoked" in url and "revoked" in body
        status, body, _ = await c.post(f"{BASE}/mandates/{mandate_id}/revoke")
        assert status == 409 and "revoked already" in body
    assert await oplog(conn) == [("update", "sepa_settings"), ("create", "sepa_mandate"), ("revoke", "sepa_mandate")]


async def test_a_batch_made_downloaded_settled_and_a_reject_imported_through_the_pages(
        admin: Admin, conn: asyncpg.Connection) -> None:
    w = await world(admin, conn)
    async with await logged(admin, "root") as c:
        status, body = await c.get(f"{BASE}?collection_date={w.date}")
        assert status == 200 and "<strong>3</strong> invoices" in body and "Make the batch" in body
        holiday = next(d for d in (TODAY + dt.timedelta(days=n) for n in range(7, 366))
                       if d.weekday() < 5 and not dd.is_target_day(d)).isoformat()  # a TARGET2 holiday ahead
        status, body = await c.get(f"{BASE}?collection_date={holiday}")
        assert status == 200 and f"{holiday} is a TARGET2 holiday" in body
        status, body, _ = await c.post(f"{BASE}/batches", {"collection_date": holiday})
        assert status == 422 and f"{holiday} is a TARGET2 holiday" in body
        status, body, url = await c.post(f"{BASE}/batches", {"collection_date": w.date})
        assert status == 200 and "done=made" in url, body
        batch_id = int(url.split("/batches/")[1].split("?")[0])
        assert body.count("<span class=\"status s-pending\">pending</span>") == 3
        status, body, _ = await c.post(f"{BASE}/batches", {"collection_date": w.date})
        assert status == 409 and "nothing to collect" in body
        async with c.session.get(f"{c.url}{BASE}/batches/{batch_id}/pain.008.xml") as r:
            assert r.status == 200 and r.content_type == "application/xml"
            assert r.headers["Content-Disposition"].startswith('attachment; filename="pain.008-LMDD')
            xml = await r.read()
        assert_valid_pain008(xml)
        # the collection date is ahead: nothing to settle yet
        status, body, _ = await c.post(f"{BASE}/settle", {"batch_id": str(batch_id)})
        assert status == 200 and "0 collections settled" in body
        await conn.execute("UPDATE dd_batches SET collection_date = $1", TODAY)  # as if the date had come
        status, body, url = await c.post(f"{BASE}/settle", {"batch_id": str(batch_id)})
        assert status == 200 and "3 collections settled" in body
        assert await conn.fetchval("SELECT count(*) FROM payments WHERE source = 'direct_debit'") == 3
        e2e = await conn.fetchval("SELECT end_to_end_id FROM dd_collections WHERE customer_id = $1", w.a[0])
        report = pain002("<OrgnlPmtInfAndSts><OrgnlPmtInfId>x</OrgnlPmtInfId>" + tx_status(e2e, "RJCT", "MD01")
                         + "</OrgnlPmtInfAndSts>")
        status, body = await c.get(f"{BASE}/returns")
        assert status == 200 and 'enctype="multipart/form-data"' in body
        status, body = await upload(c, f"{BASE}/returns", b'<!DOCTYPE x [<!ENTITY e "e">]><Document>&e;</Document>')
        assert status == 422 and "Nothing was imported" in body and "DOCTYPE" in body
        status, body = await upload(c, f"{BASE}/returns", report, "status.xml")
        assert status == 200 and "0 rejected, 1 returned (payments taken back)" in body, body
        assert "MD01 — no mandate (or the mandate was revoked)" in body
        status, body = await c.get(f"{BASE}/batches/{batch_id}?status=failed")
        assert status == 200 and e2e in body and "payment taken back" in body
    assert await conn.fetchval("SELECT count(*) FROM payment_reversals") == 1
    assert [a for a, _ in await oplog(conn)] == ["create", "payment", "payment", "payment", "return", "import"]


@pytest.mark.parametrize("role", ["finance", "manager"])
async def test_every_page_answers_for_a_role_that_sees_finance(admin: Admin, conn: asyncpg.Connection,
                                                                role: str) -> None:
    w = await world(admin, conn)
    batch = await conn.fetchval("INSERT INTO dd_batches (message_id, collection_date, currency, count, total, xml) "
                                "VALUES ('M-1', $1, 'EUR', 1, 31, '<x/>') RETURNING id", TODAY)
    mandate = await conn.fetchval("SELECT id FROM sepa_mandates WHERE customer_id = $1", w.a[0])
    await conn.execute("INSERT INTO dd_collections (batch_id, mandate_id, customer_id, document_id, amount, sequence, "
                       "end_to_end_id) SELECT $1, $2, $3, id, 31, 'FRST', 'E-1' FROM documents WHERE customer_id = $3",
                       batch, mandate, w.a[0])
    async with await logged(admin, "money", role) as c:
        for path in ("", f"?collection_date={w.date}", "/mandates", f"/mandates?customer_id={w.a[0]}&status=active",
                     f"/mandates/{mandate}", f"/batches/{batch}", f"/batches/{batch}?status=pending", "/returns",
                     "/settings"):
            status, body = await c.get(BASE + path)
            assert status == 200, (path, status, body[:300])
        can_edit = role == "finance"
        status, _, _ = await c.post(f"{BASE}/batches", {"collection_date": w.date})
        assert (status == 403) != can_edit
        status, _, _ = await c.post(f"{BASE}/settings", {"creditor_id": "DE98ZZZ09999999999"})
        assert status == (422 if can_edit else 403)
        status, _, _ = await c.post(f"{BASE}/mandates", {"customer": "C00001"})
        assert status == (403 if role == "manager" else 422)


@pytest.mark.parametrize("role", ["engineer", "cashier"])
async def test_a_role_without_finance_is_refused(admin: Admin, conn: asyncpg.Connection, role: str) -> None:
    async with await logged(admin, "someone", role) as c:
        for path in ("", "/mandates", "/returns", "/settings"):
            status, _ = await c.get(BASE + path)
            assert status == 403, path
    key = await api_key(conn, role)
    assert (await call(admin, key, "GET", "/finance/direct-debit/mandates"))[0] == 403


# -- the API ----------------------------------------------------------------------------------------

async def test_the_whole_flow_through_the_api(admin: Admin, conn: asyncpg.Connection) -> None:
    w = await world(admin, conn, mandates=False)
    key = await api_key(conn)
    status, body = await call(admin, key, "PATCH", "/finance/direct-debit/settings", {"iban": "DE8937040044053201300"})
    assert status == 422 and "another length" in body["errors"]["iban"]
    status, body = await call(admin, key, "PATCH", "/finance/direct-debit/settings", {"iban": IBAN, "lead_days": 1})
    assert status == 200 and (body["bic"], body["lead_days"], body["complete"]) == ("COBADEFFXXX", 1, True)
    date = body["earliest_collection"]
    assert date == dd.earliest_collection(TODAY, 1).isoformat()

    status, body = await call(admin, key, "POST", "/finance/direct-debit/mandates",
                              {"customer_id": w.a[0], "iban": "XX89370400440532013000", "holder": "Ann",
                               "signed_on": "2026-03-01"})
    assert status == 422 and "'XX' is not the code of a country" in body["errors"]["iban"]
    ids = []
    for cid in w.a:
        status, body = await call(admin, key, "POST", "/finance/direct-debit/mandates",
                                  {"customer_id": cid, "iban": IBAN, "holder": f"Holder {cid}",
                                   "signed_on": "2026-03-01"})
        assert status == 201 and body["status"] == "active" and body["bic"] == "COBADEFFXXX", body
        ids.append(body["id"])
    status, body = await call(admin, key, "GET", f"/finance/direct-debit/mandates?customer_id={w.a[1]}")
    assert status == 200 and [m["id"] for m in body["items"]] == [ids[1]]

    status, body = await call(admin, key, "GET", f"/finance/direct-debit/due?collection_date={date}")
    assert status == 200 and (body["count"], body["total"], body["problem"]) == (2, "62.0000", "")
    status, body = await call(admin, key, "POST", "/finance/direct-debit/batches", {"collection_date": "2026-12-25"})
    assert status == 422 and "collection_date" in body["errors"]
    status, batch = await call(admin, key, "POST", "/finance/direct-debit/batches", {"collection_date": date})
    assert status == 201 and (batch["count"], batch["total"], batch["pending"]) == (2, "62.0000", 2), batch
    status, body = await call(admin, key, "POST", "/finance/direct-debit/batches", {"collection_date": date})
    assert status == 409 and "nothing to collect" in body["detail"]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s, \
            s.get(f"{admin.url}/api/v1/finance/direct-debit/batches/{batch['id']}/xml") as r:
        assert r.status == 200
        assert_valid_pain008(await r.read())
    status, page = await call(admin, key, "GET", f"/finance/direct-debit/collections?batch_id={batch['id']}&limit=1")
    assert status == 200 and len(page["items"]) == 1 and page["next"]
    status, rest = await call(admin, key, "GET",
                              f"/finance/direct-debit/collections?batch_id={batch['id']}&after={page['next']}")
    assert [c["status"] for c in page["items"] + rest["items"]] == ["pending", "pending"]

    await conn.execute("UPDATE dd_batches SET collection_date = $1", TODAY)
    status, body = await call(admin, key, "POST", "/finance/direct-debit/settle", {})
    assert status == 200 and (body["count"], body["total"]) == (2, "62.0000")
    status, body = await call(admin, key, "POST", "/finance/direct-debit/settle", {"batch_id": batch["id"]})
    assert status == 200 and body["count"] == 0

    e2e = page["items"][0]["end_to_end_id"]
    report = pain002("<OrgnlPmtInfAndSts><OrgnlPmtInfId>x</OrgnlPmtInfId>" + tx_status(e2e, "RJCT", "AM04")
                     + "</OrgnlPmtInfAndSts>").decode()
    status, body = await call(admin, key, "POST", "/finance/direct-debit/returns", {"xml": "<Document>"})
    assert status == 422 and "not an XML file" in body["errors"]["xml"]
    status, body = await call(admin, key, "POST", "/finance/direct-debit/returns", {"xml": report, "file_name": "s"})
    assert status == 200 and [(x["end_to_end_id"], x["result"]) for x in body["lines"]] == [(e2e, "reversed")]
    status, body = await call(admin, key, "GET", f"/finance/direct-debit/batches/{batch['id']}")
    assert (body["paid"], body["failed"], body["paid_total"]) == (1, 1, "31.0000")
    status, body = await call(admin, key, "POST", f"/finance/direct-debit/mandates/{ids[0]}/revoke")
    assert status == 200 and body["status"] == "revoked"
    status, body = await call(admin, key, "POST", f"/finance/direct-debit/mandates/{ids[0]}/revoke")
    assert status == 409


# -- tenancy ----------------------------------------------------------------------------------------

async def test_a_partners_administrator_sees_only_its_customers_and_none_of_the_files(
        admin: Admin, conn: asyncpg.Connection) -> None:
    w = await world(admin, conn)
    async with await logged(admin, "root") as root:
        _, _, url = await root.post(f"{BASE}/batches", {"collection_date": w.date})
    batch_id = int(url.split("/batches/")[1].split("?")[0])
    b_mandate = await conn.fetchval("SELECT id FROM sepa_mandates WHERE customer_id = $1", w.b[0])
    a_mandate = await conn.fetchval("SELECT id FROM sepa_mandates WHERE customer_id = $1", w.a[0])
    key = await api_key(conn, "super", partner_id=w.a_partner)
    async with await logged(admin, "alpha", partner_id=w.a_partner) as c:
        status, body = await c.get(f"{BASE}/mandates")
        assert status == 200 and f"M-{w.a[0]}" in body and f"M-{w.b[0]}" not in body
        assert (await c.get(f"{BASE}/mandates/{b_mandate}"))[0] == 404
        assert (await c.get(f"{BASE}/mandates/{a_mandate}"))[0] == 200
        status, _, _ = await c.post(f"{BASE}/mandates/{b_mandate}/revoke")
        assert status == 404
        status, body, _ = await c.post(f"{BASE}/mandates", {"customer": "C00003", "holder": "x", "iban": IBAN,
                                                            "signed_on": "2026-03-01"})
        assert status == 422 and "no such customer" in body
        status, body = await c.get(f"{BASE}/batches/{batch_id}")
        assert status == 200 and "Holder" not in body and body.count("s-pending") == 2
        assert "C00003" not in body and "Download pain.008 file" not in body
        assert (await c.get(f"{BASE}/batches/{batch_id}/pain.008.xml"))[0] == 403
        for path, form in (("/batches", {"collection_date": w.date}), ("/settle", {}), ("/settings", {})):
            status, body, _ = await c.post(BASE + path, form)
            assert status == 403 and "every partner" in body, path
    status, body = await call(admin, key, "GET", "/finance/direct-debit/mandates")
    assert {m["customer_id"] for m in body["items"]} == set(w.a)
    assert (await call(admin, key, "GET", f"/finance/direct-debit/mandates/{b_mandate}"))[0] == 404
    status, body = await call(admin, key, "GET", "/finance/direct-debit/batches")
    assert [(b["id"], b["count"], b["total"]) for b in body["items"]] == [(batch_id, 2, "62.0000")]
    status, body = await call(admin, key, "GET", "/finance/direct-debit/collections")
    assert {x["customer_id"] for x in body["items"]} == set(w.a)
    for method, path, json_body in (("GET", f"/finance/direct-debit/batches/{batch_id}/xml", None),
                                    ("POST", "/finance/direct-debit/settle", {}),
                                    ("POST", "/finance/direct-debit/batches", {"collection_date": w.date}),
                                    ("POST", "/finance/direct-debit/returns", {"xml": "<x/>"}),
                                    ("PATCH", "/finance/direct-debit/settings", {"lead_days": 5}),
                                    ("GET", f"/finance/direct-debit/due?collection_date={w.date}", None)):
        status, body = await call(admin, key, method, path, json_body)
        assert status == 403, (path, body)
    status, body = await call(admin, key, "POST", "/finance/direct-debit/mandates",
                              {"customer_id": w.b[0], "iban": IBAN, "holder": "x", "signed_on": "2026-03-01"})
    assert status == 422 and body["errors"] == {"customer_id": "no such customer"}
    b_key = await api_key(conn, "super", partner_id=await conn.fetchval("SELECT id FROM partners WHERE name = "
                                                                        "'Bravo ISP'"))
    status, body = await call(admin, b_key, "GET", f"/finance/direct-debit/batches/{batch_id}")
    assert (body["count"], body["total"]) == (1, "31.0000")

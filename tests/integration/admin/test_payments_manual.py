"""Finance -> Payments through its pages and API, over demo customers billed by a real run
(tests/integration/admin/test_finance.py's ``bill``): the list and its CSV, a payment's page and
receipt, "Add payment" (customer search, what it pays, a double submit recorded once), mass entry
(all or none, each row's error by it), taking back, payment types; the API with its
Idempotency-Key; the Cashier role's reach; another partner's payments not found."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg

from admin.auth.permissions import ALL, BUILTIN
from admin.billing.render import templates
from admin.finance import payment_types as payment_types_module
from admin.finance import payments as payments_module
from admin.finance import pdf
from admin.finance import queries as finance_queries
from admin.finance.area import AREA
from admin.payments import reference
from admin.web import PERMISSIONS
from tests.conftest import one
from tests.integration.admin.conftest import Admin, Client, api_key, call
from tests.integration.admin.test_finance import TODAY, Billed, api_urls, balance, bill, doc_status, logged, oplog
from tests.integration.admin.test_finance import page_urls as finance_pages

D = Decimal


def form_key(body: str) -> str:
    m = re.search(r'name="key" value="([^"]+)"', body)
    assert m is not None, body[:500]
    return m.group(1)


async def post_json(admin: Admin, key: str, path: str, body: Any, idem: str | None = None) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    async with aiohttp.ClientSession(headers=headers) as s, s.post(admin.url + "/api/v1" + path, json=body) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None, r.headers


async def payments(conn: asyncpg.Connection, customer_id: int | None = None) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM payments WHERE $1::bigint IS NULL OR customer_id = $1 ORDER BY id",
                                 customer_id))


async def number_of(conn: asyncpg.Connection, customer_id: int) -> str:
    return str(await conn.fetchval("SELECT number FROM customers WHERE id = $1", customer_id))


async def paid(admin: Admin, conn: asyncpg.Connection, customers: int = 3) -> list[asyncpg.Record]:
    """Payments of the first ``customers`` customers, through the API (the billing demo's own
    payments are ledger entries alone); the payments rows."""
    key = await api_key(conn, "finance")
    for n, cid in enumerate([r["id"] for r in await conn.fetch("SELECT id FROM customers ORDER BY id LIMIT $1",
                                                                customers)]):
        status, body, _ = await post_json(admin, key, "/payments", {
            "customer_id": cid, "amount": f"{n + 3}.50", "type": ("cash", "card", "cheque")[n % 3],
            "receipt_number": f"T-{n}", "payer": f"Payer {n}"})
        assert status == 201, body
    return await payments(conn)


async def add_form(c: Client, customer_id: int) -> str:
    status, body = await c.get(f"/admin/finance/payments/new?customer_id={customer_id}")
    assert status == 200, body[:500]
    return body


# -- pages -----------------------------------------------------------------------------------------

def payment_pages(b: Billed, payment_id: int) -> list[str]:
    return ["/admin/finance/payments", "/admin/finance/payments?type=cash&source=desk&reversed=false",
            f"/admin/finance/payments?customer_id={b.customer}&since={TODAY}&min_amount=1",
            "/admin/finance/payments?format=csv", f"/admin/finance/payments/{payment_id}",
            "/admin/finance/payments/new", f"/admin/finance/payments/new?customer_id={b.customer}",
            "/admin/finance/payments/new?q=C000", "/admin/finance/payments/mass",
            "/admin/finance/payments/customers?q=C000"]


async def test_every_page_answers_and_the_list_exports(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    [first, *_] = await paid(admin, conn)
    async with await logged(admin, "money", "finance") as c:
        for url in [*payment_pages(b, first["id"]), "/admin/finance/payments/types"]:
            status, body = await c.get(url)
            assert status == 200, (url, status, body[:300])
        status, body = await c.get("/admin/finance/payments?since=yesterday")
        assert status == 422 and "since" in body
        async with c.session.get(f"{admin.url}/admin/finance/payments?format=csv&delimiter=%3B") as r:
            text = (await r.read()).decode()
        rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
        assert len(rows) == len(await payments(conn)) and rows[0]["amount"] and rows[0]["receipt"]
        async with c.session.get(f"{admin.url}/admin/finance/payments/{first['id']}/receipt") as r:
            assert r.status == 200 and r.content_type == "application/pdf" and (await r.read()).startswith(b"%PDF")
        status, _ = await c.get("/admin/finance/payments/999999")
        assert status == 404


# -- add a payment ----------------------------------------------------------------------------------

async def test_the_customer_search_finds_by_every_name(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    c_row = await one(conn, "SELECT c.number, c.email, c.phone, s.login FROM customers c JOIN services s "
                      "ON s.customer_id = c.id WHERE c.id = $1 LIMIT 1", b.customer)
    ref = reference.printed(reference.for_customer(b.customer))
    key = await api_key(conn, "cashier")
    for q in (ref, ref.replace(" ", "").lower(), c_row["number"], c_row["login"], c_row["email"]):
        status, hits = await call(admin, key, "GET", f"/payments/customers?q={quote(q)}")
        assert status == 200 and hits and hits[0]["id"] == b.customer, (q, hits)
        assert hits[0]["payment_reference"] == ref and "balance" in hits[0]
    status, hits = await call(admin, key, "GET", "/payments/customers?q=RF00" + "0" * 8)  # a wrong check digit
    assert status == 200 and all(h["match"] != "payment reference" for h in hits)
    async with await logged(admin, "till", "cashier") as c:
        status, body = await c.get(f"/admin/finance/payments/customers?q={c_row['number']}")
        assert status == 200 and f"/admin/finance/payments/new?customer_id={b.customer}" in body


async def test_a_payment_added_pays_what_it_names_once(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    before = await balance(conn, b.customer)
    async with await logged(admin, "till", "cashier") as c:
        body = await add_form(c, b.customer)
        assert f'value="doc:{b.unpaid}"' in body and reference.printed(reference.for_customer(b.customer)) in body
        key = form_key(body)
        base = {"customer_id": str(b.customer), "key": key, "type": "cash", "paid_on": TODAY.isoformat()}
        # Wrong fields are answered next to each, nothing written.
        status, body, _ = await c.post("/admin/finance/payments/new", {
            **base, "amount": "12.345", "paid_on": (TODAY + dt.timedelta(days=1)).isoformat(), "type": "barter",
            "target": "doc:xyz"})
        assert status == 422, body[:300]
        assert 'id="e-amount"' in body and "decimals" in body and "later than today" in body
        assert "no such payment type" in body and "choose what the payment pays" in body
        assert await payments(conn, b.customer) == []
        form = {**base, "amount": str(b.total), "target": f"doc:{b.unpaid}", "receipt_number": "R-0042",
                "payer": "Her mother", "comment": "at the desk"}
        status, body, url = await c.post("/admin/finance/payments/new", form)
        assert status == 200 and "?done=added" in url, body[:500]
        assert "Payment recorded" in body and "R-0042" in body and "Her mother" in body
        payment_id = int(url.rsplit("/", 1)[1].split("?")[0])
        # A double submit of the same form records nothing more and shows the first.
        status, body, url = await c.post("/admin/finance/payments/new", form)
        assert status == 200 and url.endswith(f"/payments/{payment_id}?done=again")
    assert await doc_status(conn, b.unpaid) == "paid"
    assert await balance(conn, b.customer) == before + b.total
    desk = [p for p in await payments(conn, b.customer) if p["source"] == "desk"]
    assert len(desk) == 1 and desk[0]["id"] == payment_id
    assert (desk[0]["receipt_number"], desk[0]["payer"], desk[0]["document_id"]) == ("R-0042", "Her mother", b.unpaid)
    [line] = [r for r in await oplog(conn, "payment") if r["object_type"] == "payment"]
    assert line["object_id"] == payment_id and line["actor"] == "till" and line["customer_id"] == b.customer


async def test_a_payment_for_a_service_and_period(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    charge = await one(conn, "SELECT service_id, period_start, period_end, amount FROM transactions "
                       "WHERE customer_id = $1 AND kind = 'charge' AND service_id IS NOT NULL "
                       "ORDER BY id LIMIT 1", b.customer)
    target = f"svc:{charge['service_id']}:{charge['period_start']}:{charge['period_end']}"
    async with await logged(admin, "desk", "finance") as c:
        body = await add_form(c, b.customer)
        assert f'value="{target}"' in body
        status, body, url = await c.post("/admin/finance/payments/new", {
            "customer_id": str(b.customer), "key": form_key(body), "type": "bank_transfer",
            "paid_on": TODAY.isoformat(), "amount": "1.00", "target": target})
        assert status == 200 and "?done=added" in url, body[:500]
    row = (await payments(conn, b.customer))[-1]
    assert (row["service_id"], row["period_start"], row["period_end"]) == (
        charge["service_id"], charge["period_start"], charge["period_end"])


# -- mass entry --------------------------------------------------------------------------------------

async def test_mass_entry_records_all_or_none(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    others = [r["id"] for r in await conn.fetch("SELECT id FROM customers WHERE id <> $1 ORDER BY id LIMIT 2",
                                                b.customer)]
    login = await conn.fetchval("SELECT login FROM services WHERE customer_id = $1 LIMIT 1", others[0])
    before = len(await payments(conn))
    async with await logged(admin, "till", "cashier") as c:
        status, body = await c.get("/admin/finance/payments/mass?rows=4")
        assert status == 200 and 'name="customer.3"' in body
        key = form_key(body)
        rows = {
            "customer.0": await number_of(conn, b.customer), "amount.0": "10.00", "receipt_number.0": "M-1",
            "customer.1": login, "amount.1": "5.50", "type.1": "cheque",
            "customer.2": reference.printed(reference.for_customer(others[1])), "amount.2": "abc",
            "customer.3": "nobody-at-all", "amount.3": "1.00"}
        form = {"key": key, "rows": "4", "type": "cash", "paid_on": TODAY.isoformat(), **rows}
        status, body, _ = await c.post("/admin/finance/payments/mass", form)
        assert status == 422, body[:300]
        assert "2 rows to correct" in body and "must be an amount" in body and "no customer with this number" in body
        assert len(await payments(conn)) == before
        form.update({"amount.2": "7.25", "customer.3": "", "amount.3": ""})
        status, body, url = await c.post("/admin/finance/payments/mass", form)
        assert status == 200 and "done=mass&count=3" in url, body[:500]
        assert "3 payments recorded" in body
        status, body, url = await c.post("/admin/finance/payments/mass", form)  # sent twice: nothing more
        assert "count=0" in url
    made = (await payments(conn))[before:]
    assert [(p["customer_id"], p["amount"]) for p in made] == [
        (b.customer, D("10.00")), (others[0], D("5.50")), (others[1], D("7.25"))]
    assert made[0]["receipt_number"] == "M-1"
    assert await conn.fetchval("SELECT code FROM payment_types WHERE id = $1", made[1]["type_id"]) == "cheque"
    assert len([r for r in await oplog(conn, "payment") if "mass entry" in r["summary"]]) == 3


async def test_a_refusal_inside_the_batch_keeps_nothing_of_it(admin: Admin, conn: asyncpg.Connection) -> None:
    """A row that passes the form's checks but that record() refuses (the form sent again with
    its first row changed: that row's key was recorded with another amount): 409, that row
    marked, and the new row beside it is not kept either."""
    b = await bill(admin, conn)
    async with await logged(admin, "till", "cashier") as c:
        status, body = await c.get("/admin/finance/payments/mass?rows=3")
        form = {"key": form_key(body), "rows": "3", "type": "cash", "paid_on": TODAY.isoformat(),
                "customer.0": await number_of(conn, b.customer), "amount.0": "10.00"}
        status, body, url = await c.post("/admin/finance/payments/mass", form)
        assert "count=1" in url, body[:300]
        before = len(await payments(conn))
        form.update({"amount.0": "11.00", "customer.1": await number_of(conn, b.customer), "amount.1": "2.00"})
        status, body, _ = await c.post("/admin/finance/payments/mass", form)
        assert status == 409, body[:300]
        row0 = body[body.index('id="row-0"'):body.index('id="row-1"')]
        assert "recorded already" in row0
    assert len(await payments(conn)) == before
    key = await api_key(conn, "finance")
    status, _ = await call(admin, key, "POST", f"/finance/documents/{b.unpaid}/void", {"reason": "wrong"})
    assert status == 200
    body_ = {"payments": [{"customer_id": b.customer, "amount": "3.00", "type": "cash"},
                          {"customer_id": b.customer, "amount": "4.00", "type": "cash", "document_id": b.unpaid}]}
    status, problem, _ = await post_json(admin, key, "/payments/batch", body_)
    assert status == 422 and "void" in problem["errors"]["payments.1.document_id"], problem
    body_["payments"][1] = {"customer_id": 999999, "amount": "1", "type": "cash"}
    status, problem, _ = await post_json(admin, key, "/payments/batch", body_)
    assert status == 422 and "payments.1.customer_id" in problem["errors"]
    assert len(await payments(conn)) == before


# -- taking back ----------------------------------------------------------------------------------------

async def test_taking_a_payment_back(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    key = await api_key(conn, "finance")
    status, paid, _ = await post_json(admin, key, "/payments", {
        "customer_id": b.customer, "amount": str(b.total), "type": "cash", "document_id": b.unpaid})
    assert status == 201, paid
    assert paid["allocations"] and paid["allocations"][0]["target_document_id"] == b.unpaid
    assert await doc_status(conn, b.unpaid) == "paid"
    async with await logged(admin, "till", "cashier") as c:
        status, body = await c.get(f"/admin/finance/payments/{paid['id']}")
        assert status == 200 and "Take back" not in body
        status, _, _ = await c.post(f"/admin/finance/payments/{paid['id']}/reversal", {"reason": "no"})
        assert status == 403
    async with await logged(admin, "boss", "finance") as c:
        status, body = await c.get(f"/admin/finance/payments/{paid['id']}")
        assert status == 200 and "Take back" in body
        status, body, _ = await c.post(f"/admin/finance/payments/{paid['id']}/reversal", {"reason": "  "})
        assert status == 422 and 'id="e-reason"' in body
        status, body, url = await c.post(f"/admin/finance/payments/{paid['id']}/reversal",
                                         {"reason": "cheque bounced"})
        assert status == 200 and url.endswith("?done=reversed"), body[:500]
        assert "cheque bounced" in body and "taken back" in body and "(released)" in body
        status, body, _ = await c.post(f"/admin/finance/payments/{paid['id']}/reversal", {"reason": "again"})
        assert status == 409 and "taken back already" in body
    assert await doc_status(conn, b.unpaid) in ("unpaid", "overdue")
    status, problem = await call(admin, key, "POST", f"/payments/{paid['id']}/reversal", {"reason": "again"})
    assert status == 409 and "already" in problem["detail"]
    status, got = await call(admin, key, "GET", f"/payments/{paid['id']}")
    assert got["reversal"]["reason"] == "cheque bounced" and got["reversal"]["by"] == "boss"
    status, page = await call(admin, key, "GET", "/payments?reversed=true")
    assert [p["id"] for p in page["items"]] == [paid["id"]]
    [line] = await oplog(conn, "reversal")
    assert line["object_id"] == paid["id"] and "cheque bounced" in line["summary"]


# -- the API -------------------------------------------------------------------------------------------

async def test_the_api_records_once_per_idempotency_key(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    key = await api_key(conn, "cashier")
    body = {"customer_id": b.customer, "amount": "9.90", "type": "card", "receipt_number": "POS-1"}
    status, first, headers = await post_json(admin, key, "/payments", body, "pos-1")
    assert status == 201, first
    assert first["source"] == "api" and first["receipt"] and D(first["amount"]) == D("9.90")
    status, again, headers = await post_json(admin, key, "/payments", body, "pos-1")
    assert status == 201 and again == first and headers["Idempotent-Replayed"] == "true"
    status, problem, _ = await post_json(admin, key, "/payments", {**body, "amount": "19.90"}, "pos-1")
    assert status == 422 and problem["title"] == "Idempotency-Key reused"
    # At once: one payment.
    answers = await asyncio.gather(*(post_json(admin, key, "/payments", body, "pos-2") for _ in range(8)))
    assert {a[0] for a in answers} <= {201, 409} and len({a[1]["id"] for a in answers if a[0] == 201}) == 1
    mine = [p for p in await payments(conn, b.customer) if p["source"] == "api"]
    assert len(mine) == 2 and mine[0]["idempotency_key"].endswith(":pos-1")
    # The list and one payment.
    status, page = await call(admin, key, "GET", f"/payments?customer_id={b.customer}&source=api&limit=1")
    assert status == 200 and len(page["items"]) == 1 and page["next"]
    status, rest = await call(admin, key, "GET", f"/payments?customer_id={b.customer}&source=api&after={page['next']}")
    assert [p["id"] for p in page["items"] + rest["items"]] == sorted((p["id"] for p in mine), reverse=True)
    for bad in ({**body, "amount": "0"}, {**body, "type": "barter"}, {**body, "customer_id": 999999},
                {**body, "paid_on": (TODAY + dt.timedelta(days=3)).isoformat()},
                {**body, "period_start": TODAY.isoformat()}, {**body, "document_id": b.paid, "service_id": 1}):
        status, problem, _ = await post_json(admin, key, "/payments", bad)
        assert status == 422, (bad, problem)
    assert len([p for p in await payments(conn, b.customer) if p["source"] == "api"]) == 2


async def test_the_api_batch(admin: Admin, conn: asyncpg.Connection) -> None:
    await bill(admin, conn)
    key = await api_key(conn, "finance")
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM customers ORDER BY id LIMIT 3")]
    body = {"payments": [{"customer_id": cid, "amount": f"{n + 1}.00", "type": "bank_transfer"}
                         for n, cid in enumerate(ids)]}
    before = len(await payments(conn))
    status, done, _ = await post_json(admin, key, "/payments/batch", body, "bank-2026-05-02")
    assert status == 201, done
    assert [(p["customer_id"], D(p["amount"])) for p in done["payments"]] == [
        (cid, D(n + 1)) for n, cid in enumerate(ids)]
    status, again, headers = await post_json(admin, key, "/payments/batch", body, "bank-2026-05-02")
    assert status == 201 and again == done and headers["Idempotent-Replayed"] == "true"
    assert len(await payments(conn)) == before + 3
    status, _, _ = await post_json(admin, key, "/payments/batch", {"payments": []})
    assert status == 422


# -- payment types ---------------------------------------------------------------------------------------

async def test_payment_types(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    key = await api_key(conn, "finance")
    status, made, _ = await post_json(admin, key, "/payments/types", {"code": "voucher", "name": "Voucher"})
    assert status == 201 and made == {"code": "voucher", "name": "Voucher", "builtin": False, "enabled": True,
                                      "payments": 0}
    status, problem, _ = await post_json(admin, key, "/payments/types", {"code": "voucher", "name": "Again"})
    assert status == 422 and "taken" in problem["errors"]["code"]
    status, problem, _ = await post_json(admin, key, "/payments/types", {"code": "Bad Code", "name": "x"})
    assert status == 422
    status, paid, _ = await post_json(admin, key, "/payments", {"customer_id": b.customer, "amount": "2.00",
                                                                "type": "voucher"})
    assert status == 201 and paid["type_name"] == "Voucher"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s:
        async with s.patch(admin.url + "/api/v1/payments/types/voucher", json={"name": "Gift voucher",
                                                                                "enabled": False}) as r:
            changed = await r.json()
            assert r.status == 200 and changed["name"] == "Gift voucher" and not changed["enabled"]
            assert changed["payments"] == 1
        async with s.patch(admin.url + "/api/v1/payments/types/cash", json={"name": "Money"}) as r:
            assert r.status == 409
        async with s.patch(admin.url + "/api/v1/payments/types/nope", json={"name": "x"}) as r:
            assert r.status == 404
    status, problem, _ = await post_json(admin, key, "/payments", {"customer_id": b.customer, "amount": "2.00",
                                                                   "type": "voucher"})
    assert status == 422 and "disabled" in problem["errors"]["type"]
    status, listed = await call(admin, key, "GET", "/payments/types")
    assert [t["code"] for t in listed if t["builtin"]] and listed[-1]["code"] == "voucher"
    assert {t["code"] for t in listed if t["builtin"]} >= {"cash", "bank_transfer", "card", "cheque", "other"}
    # The page: add, rename, enable again; the built-in ones show no form.
    async with await logged(admin, "boss", "finance") as c:
        status, body = await c.get("/admin/finance/payments/types")
        assert status == 200 and 'action="/admin/finance/payments/types/voucher"' in body
        assert 'action="/admin/finance/payments/types/cash"' not in body
        status, body, _ = await c.post("/admin/finance/payments/types", {"code": "crypto", "name": "  "})
        assert status == 422
        status, body, url = await c.post("/admin/finance/payments/types", {"code": "crypto", "name": "Crypto"})
        assert status == 200 and url.endswith("done=added") and "Crypto" in body
        status, body, _ = await c.post("/admin/finance/payments/types/voucher", {"name": "Voucher", "enabled": "1"})
        assert status == 200
    assert await conn.fetchval("SELECT enabled FROM payment_types WHERE code = 'voucher'") is True
    assert len(await oplog(conn, "update")) == 2 and len(await oplog(conn, "create")) >= 2


# -- who reaches what ---------------------------------------------------------------------------------------

async def test_a_cashier_reaches_only_the_desk(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    [first, *_] = await paid(admin, conn)
    async with await logged(admin, "till", "cashier") as c:
        for url in payment_pages(b, first["id"]):
            status, body = await c.get(url)
            assert status == 200, (url, status, body[:300])
        status, body = await c.get("/admin/")
        assert 'href="/admin/finance/payments"' in body and 'href="/admin/finance/invoices"' not in body
        receipt = f"/admin/finance/documents/{first['receipt_id']}"
        for url in [*finance_pages(b), "/admin/finance/payments/types", receipt, f"{receipt}/pdf"]:
            status, _ = await c.get(url, allow_redirects=False)
            assert status == 403, (url, status)
        for url, form in ((f"/admin/finance/payments/{first['id']}/reversal", {"reason": "x"}),
                          ("/admin/finance/payments/types", {"code": "x", "name": "x"}),
                          ("/admin/finance/payments/types/cash", {"name": "x"}),
                          (f"/admin/finance/documents/{b.unpaid}/pay", {"amount": "1", "method": "cash"}),
                          (f"/admin/finance/documents/{b.unpaid}/void", {"reason": "x"})):
            status, _, _ = await c.post(url, form)
            assert status == 403, url
    key = await api_key(conn, "cashier")
    for url in ("/payments", f"/payments/{first['id']}", "/payments/types", "/payments/customers?q=C0"):
        status, body = await call(admin, key, "GET", url)
        assert status == 200, (url, body)
    for url in api_urls(b):
        status, _ = await call(admin, key, "GET", url)
        assert status == 403, url
    for path, data in ((f"/payments/{first['id']}/reversal", {"reason": "x"}),
                       ("/payments/types", {"code": "x", "name": "x"}),
                       (f"/finance/documents/{b.unpaid}/payments", {"amount": "1", "method": "cash"}),
                       (f"/customers/{b.customer}/payments", {"amount": "1", "method": "cash"})):
        status, _ = await call(admin, key, "POST", path, data)
        assert status == 403, path


async def test_another_partners_payments_are_not_found(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    other = await conn.fetchval("INSERT INTO partners (name) VALUES ('Reseller') RETURNING id")
    theirs = await conn.fetchval("SELECT id FROM customers WHERE id <> $1 ORDER BY id LIMIT 1", b.customer)
    await conn.execute("UPDATE customers SET partner_id = $1 WHERE id = $2", other, theirs)
    await paid(admin, conn, 4)
    mine = [p for p in await payments(conn) if p["customer_id"] == theirs]
    not_mine = [p for p in await payments(conn) if p["customer_id"] != theirs]
    assert mine and not_mine
    async with await logged(admin, "reseller", "finance", partner_id=other) as c:
        status, body = await c.get("/admin/finance/payments")
        assert status == 200
        assert all(f"/admin/finance/payments/{p['id']}\"" not in body for p in not_mine)
        assert all(f"/admin/finance/payments/{p['id']}\"" in body for p in mine)
        other_page = f"/admin/finance/payments/{not_mine[0]['id']}"
        for url in (other_page, f"{other_page}/receipt", f"/admin/finance/payments/new?customer_id={b.customer}"):
            status, _ = await c.get(url)
            assert status == 404, url
        status, _, _ = await c.post(f"/admin/finance/payments/{not_mine[0]['id']}/reversal", {"reason": "x"})
        assert status == 404
        status, _, _ = await c.post("/admin/finance/payments/new", {"customer_id": str(b.customer), "amount": "1",
                                                                    "type": "cash"})
        assert status == 404
        status, body = await c.get("/admin/finance/payments/mass")
        status, body, _ = await c.post("/admin/finance/payments/mass", {
            "key": form_key(body), "rows": "1", "type": "cash", "customer.0": await number_of(conn, b.customer),
            "amount.0": "1.00"})
        assert status == 422 and "no customer with this number" in body
        status, body = await c.get(f"/admin/finance/payments/customers?q={await number_of(conn, b.customer)}")
        assert f"customer_id={b.customer}" not in body
        status, body, _ = await c.post("/admin/finance/payments/types", {"code": "mine", "name": "Mine"})
        assert status == 403
    key = await api_key(conn, "finance", partner_id=other)
    status, page = await call(admin, key, "GET", "/payments?limit=500")
    assert {p["id"] for p in page["items"]} == {p["id"] for p in mine}
    status, _ = await call(admin, key, "GET", f"/payments/{not_mine[0]['id']}")
    assert status == 404
    status, _ = await call(admin, key, "POST", f"/payments/{not_mine[0]['id']}/reversal", {"reason": "x"})
    assert status == 404
    status, problem, _ = await post_json(admin, key, "/payments", {"customer_id": b.customer, "amount": "1",
                                                                   "type": "cash"})
    assert status == 422 and "customer_id" in problem["errors"]
    status, problem, _ = await post_json(admin, key, "/payments/batch", {"payments": [
        {"customer_id": theirs, "amount": "1", "type": "cash"}, {"customer_id": b.customer, "amount": "1",
                                                                 "type": "cash"}]})
    assert status == 422 and list(problem["errors"]) == ["payments.1.customer_id"]
    status, hits = await call(admin, key, "GET", f"/payments/customers?q={reference.for_customer(b.customer)}")
    assert hits == []
    assert len(await payments(conn)) == len(mine) + len(not_mine)


DESK = frozenset({payments_module.payments_page, payments_module.payment_page, payments_module.receipt_pdf,
                  payments_module.new_page, payments_module.new_form, payments_module.mass_page,
                  payments_module.mass_form, payments_module.customers_fragment, payments_module.api_payments,
                  payments_module.api_payment, payments_module.api_record, payments_module.api_batch,
                  payments_module.api_customers, payment_types_module.api_types})
"""What the cashier reaches in Finance: the payments list (and a payment, its receipt), adding
one, mass entry, the customer search for them; in the API the same, and the payment types'
codes that a payment names."""


async def test_every_other_finance_route_is_403_to_a_cashier(admin: Admin, conn: asyncpg.Connection) -> None:
    """Every page, form and API operation the Finance area declares but the desk's (the other
    helpers' included, as they are when this runs), by its declaration."""
    cashier = next(b for b in BUILTIN if b.key == "cashier").permissions
    assert cashier == {"dashboard.view", "customers.view", "payments.view", "payments.add"}
    key = await api_key(conn, "cashier")
    reached: list[str] = []
    refused = 0
    async with await logged(admin, "till", "cashier") as c:
        await c.get("/admin/finance/payments")
        for method, path, handler in AREA.routes:
            if handler in DESK or PERMISSIONS[handler] not in ALL:  # a gateway's signed webhook: no one's login
                continue
            url = re.sub(r"{(\w+)[^}]*}", lambda m: {"kind": "invoice", "code": "cash"}.get(m.group(1), "1"), path)
            if url.startswith("/api/v1"):
                status, _ = await call(admin, key, method, url[len("/api/v1"):], {} if method != "GET" else None)
            elif method == "GET":
                status, _ = await c.get(url, allow_redirects=False)
            else:
                status, _, _ = await c.post(url, {}, allow_redirects=False)
            if status != 403:
                reached.append(f"{method} {path} ({PERMISSIONS[handler]}, {handler.__module__}): {status}")
            refused += 1
    assert not reached, "the cashier reaches:\n" + "\n".join(reached)
    assert refused > 40


async def test_the_payment_reference_is_on_the_customers_page_and_its_invoices(admin: Admin,
                                                                                conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    printed = reference.printed(reference.for_customer(b.customer))
    async with await logged(admin, "desk", "cashier") as c:
        status, body = await c.get(f"/admin/customers/{b.customer}")
        assert status == 200 and printed in body
    party = pdf.party(await finance_queries.party(conn, b.customer))
    assert party.payment_reference == printed
    doc = await finance_queries.document(conn, None, None, b.unpaid)
    assert doc is not None
    model = pdf.document(doc, await finance_queries.document_lines(conn, b.unpaid), [],
                         await finance_queries.party(conn, b.customer))
    html = templates.render(model, pdf.branding(await finance_queries.branding(conn, doc["partner_id"])))
    assert "Your payment reference" in html and printed in html

"""What finance hands out, through the pages and the API, over demo customers billed by a real run
(admin/billing/demo.py): a customer's statement as PDF (read back with poppler's pdftotext: its
balances, the opening balance carried into a range of days), a proforma invoice of the next
invoice issued once per key and paid (which issues its tax invoice), and the accounting CSV of
the invoices and transactions lists (every page of what the filters select, in the columns of
admin/billing/render/csv_export.py, formulas quoted); another partner's administrator gets
none of it."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import shutil
import subprocess
import time
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest
from multidict import CIMultiDictProxy

from admin.billing import demo as billing_demo
from admin.billing import money
from admin.billing.render import csv_export
from admin.finance import exports
from daemons import demo
from tests.integration.admin.conftest import Admin, Client, api_key, call
from tests.integration.admin.test_finance import balance, bill, logged, oplog

D = Decimal
TODAY = dt.datetime.now(dt.UTC).date()
INVOICE_HEADER = [c.header for c in csv_export.INVOICE_COLUMNS]
TRANSACTION_HEADER = [c.header for c in csv_export.TRANSACTION_COLUMNS]


def pdf_text(pdf: bytes) -> str:
    """The PDF's text as poppler's pdftotext reads it (its layout kept), spaces squeezed."""
    assert pdf.startswith(b"%PDF")
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils' pdftotext is missing (apt-get install poppler-utils)")
    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True, timeout=60)
    return " ".join(done.stdout.decode().split())


def eur(amount: Decimal) -> str:
    return money.format_money(amount, "EUR", "en")


async def get(c: Client, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a page."""
    async with c.session.get(c.url + path, allow_redirects=False) as r:
        return r.status, r.content_type, await r.read()


async def api_get(admin: Admin, key: str, path: str) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s, \
            s.get(admin.url + "/api/v1" + path) as r:
        return r.status, r.headers, await r.read()


async def api_post(admin: Admin, key: str, path: str, body: Any, **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}", **headers}) as s, \
            s.post(admin.url + "/api/v1" + path, json=body) as r:
        return r.status, await r.json(content_type=None)


def rows_of(data: bytes, delimiter: str = ",") -> list[dict[str, str]]:
    text = data.decode("utf-8")
    return list(csv.DictReader(io.StringIO(text.removeprefix(csv_export.BOM)), delimiter=delimiter))


# -- the statement as PDF ---------------------------------------------------------------------------

async def test_the_statement_pdf_has_the_balance_and_carries_the_opening_balance(admin: Admin,
                                                                                 conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    later = TODAY + dt.timedelta(days=5)
    key = await api_key(conn, "finance")
    status, _ = await call(admin, key, "POST", f"/customers/{b.customer}/payments",
                           {"amount": "7.00", "method": "cash", "on": later.isoformat()})
    assert status == 201
    today_balance = await conn.fetchval(
        "SELECT sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END) FROM transactions "
        "WHERE customer_id = $1 AND posted_on <= $2", b.customer, TODAY)
    closing = await balance(conn, b.customer)
    assert closing == today_balance + D("7.00")
    number = await conn.fetchval("SELECT number FROM customers WHERE id = $1", b.customer)
    invoice = await conn.fetchval("SELECT number FROM documents WHERE id = $1", b.unpaid)
    async with await logged(admin, "clerk", "finance") as c:
        status, body = await c.get(f"/admin/customers/{b.customer}/billing")
        assert status == 200 and f'action="/admin/customers/{b.customer}/statement/pdf"' in body
        status, kind, pdf = await get(c, f"/admin/customers/{b.customer}/statement/pdf")
        assert status == 200 and kind == "application/pdf"
        text = pdf_text(pdf)
        assert "Statement of account" in text and number in text
        assert f"Opening balance {eur(D(0))}" in text and f"Closing balance {eur(closing)}" in text, text
        assert invoice in text and eur(b.total) in text  # the unpaid invoice's debit

        # From tomorrow: what was before is carried; only the later payment is listed.
        status, _, pdf = await get(c, f"/admin/customers/{b.customer}/statement/pdf?since={TODAY + dt.timedelta(1)}")
        text = pdf_text(pdf)
        assert status == 200 and f"Opening balance {eur(today_balance)}" in text, text
        assert f"Closing balance {eur(closing)}" in text and invoice not in text and "€7.00" in text
        # Up to today: the later payment is not there.
        status, _, pdf = await get(c, f"/admin/customers/{b.customer}/statement/pdf?until={TODAY}")
        text = pdf_text(pdf)
        assert status == 200 and f"Closing balance {eur(today_balance)}" in text, text

        status, kind, page = await get(c, f"/admin/customers/{b.customer}/statement/pdf?since={later}&until={TODAY}")
        assert status == 422 and kind == "text/html" and b"is before the first day" in page
        status, _, _ = await get(c, f"/admin/customers/{b.customer}/statement/pdf?since=yesterday")
        assert status == 422

    status, headers, pdf = await api_get(admin, key, f"/customers/{b.customer}/statement/pdf?until={TODAY}")
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert "attachment" in headers["Content-Disposition"] and headers["Cache-Control"] == "no-store"
    assert f"Closing balance {eur(today_balance)}" in pdf_text(pdf)
    status, _, problem = await api_get(admin, key, f"/customers/{b.customer}/statement/pdf?since={later}&until={TODAY}")
    assert status == 422 and b"until" in problem
    # Not kept: a statement is no document.
    assert await conn.fetchval("SELECT count(*) FROM document_files") == 0

    # How long one takes, the renderer warm (WeasyPrint imported, fonts loaded).
    took = []
    for _ in range(5):
        start = time.perf_counter()
        status, _, _ = await api_get(admin, key, f"/customers/{b.customer}/statement/pdf")
        took.append(time.perf_counter() - start)
        assert status == 200
    print(f"statement PDF: best {min(took) * 1000:.0f} ms, median {sorted(took)[2] * 1000:.0f} ms over HTTP")
    assert sorted(took)[2] < 1.0  # (the budget is 300 ms; shared CI cores leave room)


async def test_the_statement_uses_the_partners_branding(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn, customers=5)
    partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", b.customer)
    await conn.execute("INSERT INTO partner_branding (partner_id, company_name, bank, tax_id) "
                       "VALUES ($1, 'Fibre Wien GmbH', 'IBAN AT61 1904 3002 3457 3201', 'ATU12345678')", partner)
    key = await api_key(conn, "finance")
    status, _, pdf = await api_get(admin, key, f"/customers/{b.customer}/statement/pdf")
    text = pdf_text(pdf)
    assert status == 200 and "Fibre Wien GmbH" in text and "ATU12345678" in text
    assert "AT61 1904 3002 3457 3201" in text  # it owes: how to pay
    # The partner's own statement template, when it has one (Finance -> Settings -> Document templates).
    await conn.execute("INSERT INTO document_templates (partner_id, kind, body) VALUES ($1, 'statement', "
                       "'{% extends \"statement.html\" %}{% block title %}Kontoauszug{% endblock %}')", partner)
    status, _, pdf = await api_get(admin, key, f"/customers/{b.customer}/statement/pdf")
    text = pdf_text(pdf)
    assert status == 200 and "Kontoauszug" in text and "Statement of account" not in text


# -- a proforma invoice from the admin ------------------------------------------------------------

async def proformas(conn: asyncpg.Connection, customer_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT d.*, s.status FROM documents d JOIN billing_documents_state s USING (id) "
                                 "WHERE d.kind = 'proforma' AND d.customer_id = $1 ORDER BY d.id", customer_id))


async def test_a_proforma_from_the_billing_tab_is_issued_once_and_paid(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    before = await balance(conn, b.customer)
    async with await logged(admin, "clerk", "finance") as c:
        status, body = await c.get(f"/admin/customers/{b.customer}/billing")
        assert status == 200 and 'id="proforma"' in body
        form_key = body.split('id="proforma"')[1].split('name="key" value="')[1].split('"')[0]
        form = {"form": "proforma", "on": TODAY.isoformat(), "key": form_key}
        status, body, url = await c.post(f"/admin/customers/{b.customer}/proformas", form)
        assert status == 200 and "/admin/finance/documents/" in url and url.endswith("?done=proforma"), body[:400]
        assert "Proforma invoice issued" in body
        [proforma] = await proformas(conn, b.customer)
        assert url.split("/")[-1].split("?")[0] == str(proforma["id"])
        assert proforma["status"] == "unpaid" and proforma["total"] > 0 and proforma["period_start"] > TODAY
        assert await balance(conn, b.customer) == before  # no balance change, no tax point
        # The same form again (a double click, a reload): the same proforma.
        status, _, url2 = await c.post(f"/admin/customers/{b.customer}/proformas", form)
        assert status == 200 and url2 == url and len(await proformas(conn, b.customer)) == 1
        # Another form for the same periods: refused while the first is open.
        status, body, _ = await c.post(f"/admin/customers/{b.customer}/proformas", {**form, "key": "another"})
        assert status == 409 and proforma["number"] in body and len(await proformas(conn, b.customer)) == 1
        status, body, _ = await c.post(f"/admin/customers/{b.customer}/proformas", {**form, "on": "soon"})
        assert status == 422 and 'id="e-proforma-on"' in body

        status, body = await c.get("/admin/finance/proformas")
        assert status == 200 and proforma["number"] in body
        # Paid from its page: its tax invoice is issued and paid, the balance unchanged by it.
        status, body, url = await c.post(f"/admin/finance/documents/{proforma['id']}/pay", {
            "amount": str(proforma["total"]), "on": TODAY.isoformat(), "method": "bank_transfer", "key": "p1"})
        assert status == 200 and url.endswith("?done=paid"), body[:400]
    [paid] = await proformas(conn, b.customer)
    assert paid["status"] == "paid"
    invoice = await conn.fetchrow("SELECT d.total, s.status FROM documents d JOIN billing_documents_state s USING (id) "
                                  "WHERE d.kind = 'invoice' AND d.related_id = $1", proforma["id"])
    assert invoice is not None and invoice["status"] == "paid" and invoice["total"] == proforma["total"]
    assert await balance(conn, b.customer) == before
    [logged_line] = [r for r in await oplog(conn, "create") if r["object_type"] == "document"]
    assert logged_line["object_id"] == proforma["id"] and proforma["number"] in logged_line["summary"]
    assert logged_line["actor"] == "clerk"


async def test_the_api_issues_a_proforma_once_per_idempotency_key(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    key = await api_key(conn, "finance")
    path = f"/customers/{b.customer}/proformas"
    status, first = await api_post(admin, key, path, {}, **{"Idempotency-Key": "crm-4711"})
    assert status == 201, first
    assert first["kind"] == "proforma" and first["status"] == "unpaid" and first["lines"]
    status, again = await api_post(admin, key, path, {}, **{"Idempotency-Key": "crm-4711"})
    assert status == 201 and again["id"] == first["id"] and again["number"] == first["number"]
    status, problem = await api_post(admin, key, path, {}, **{"Idempotency-Key": "crm-4712"})
    assert status == 409 and first["number"] in problem["detail"]
    status, problem = await api_post(admin, key, path, {}, **{"Idempotency-Key": "x" * 256})
    assert status == 422 and "Idempotency-Key" in problem["errors"]
    status, problem = await api_post(admin, key, path, {"on": "tomorrow"})
    assert status == 422 and "on" in problem["errors"]
    assert len(await proformas(conn, b.customer)) == 1
    # Voided, the periods can be asked for again; paid through the API, the tax invoice follows.
    status, _ = await call(admin, key, "POST", f"/finance/documents/{first['id']}/void", {"reason": "new prices"})
    assert status == 200
    status, second = await api_post(admin, key, path, {"on": TODAY.isoformat()}, **{"Idempotency-Key": "crm-4712"})
    assert status == 201 and second["id"] != first["id"]
    status, paid = await call(admin, key, "POST", f"/finance/documents/{second['id']}/payments",
                              {"amount": second["total"], "method": "card"})
    assert status == 201, paid
    status, doc = await call(admin, key, "GET", f"/finance/documents/{second['id']}")
    assert doc["status"] == "paid" and any(r["kind"] == "invoice" for r in doc["related"])
    # Nothing to ask for: billing off, or a prepaid customer.
    await conn.execute("UPDATE customer_billing SET enabled = false WHERE customer_id = $1", b.customer)
    status, problem = await api_post(admin, key, path, {})
    assert status == 409 and "billing is off" in problem["detail"]
    await conn.execute("UPDATE customer_billing SET enabled = true, billing_type = 'prepaid_daily' "
                       "WHERE customer_id = $1", b.customer)
    status, problem = await api_post(admin, key, path, {})
    assert status == 409 and "prepaid" in problem["detail"]
    assert len(await proformas(conn, b.customer)) == 2
    # The same key twice at once (a client's retry racing its first try): one proforma; the one
    # that lost is told to try again (admin/idempotency.py), and then gets the same one.
    other = await conn.fetchval("SELECT min(customer_id) FROM documents WHERE kind = 'invoice' AND customer_id <> $1",
                                b.customer)
    retry = {"Idempotency-Key": "retry-1"}
    both = await asyncio.gather(*(api_post(admin, key, f"/customers/{other}/proformas", {}, **retry)
                                  for _ in range(2)))
    assert sorted(s for s, _ in both) in ([201, 201], [201, 409]), both
    status, again = await api_post(admin, key, f"/customers/{other}/proformas", {}, **retry)
    assert status == 201 and again["id"] in {p["id"] for s, p in both if s == 201}
    # The proforma keeps the key itself: a retry after the header's replay window answers with it too.
    await conn.execute("DELETE FROM idempotency_keys")
    status, late = await api_post(admin, key, f"/customers/{other}/proformas", {}, **retry)
    assert status == 201 and late["id"] == again["id"]
    assert len(await proformas(conn, other)) == 1


# -- accounting CSV -------------------------------------------------------------------------------

async def test_the_invoices_csv_is_every_page_of_what_the_filters_select(admin: Admin, conn: asyncpg.Connection,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    b = await bill(admin, conn)
    monkeypatch.setattr(exports, "EXPORT_PAGE", 3)  # five pages and more: the keyset carries on
    await conn.execute("UPDATE customers SET name = '=HYPERLINK(\"http://evil.example\")' WHERE id = $1", b.customer)
    paid = await conn.fetch("SELECT d.number, d.total, d.currency FROM documents d JOIN billing_documents_state s "
                            "USING (id) WHERE d.kind = 'invoice' AND s.status = 'paid' ORDER BY d.issued_on DESC, "
                            "d.id DESC")
    everything = await conn.fetchval("SELECT count(*) FROM documents WHERE kind = 'invoice'")
    assert len(paid) > 6 and everything > len(paid)
    async with await logged(admin, "clerk", "finance") as c:
        status, body = await c.get("/admin/finance/invoices?status=paid")
        assert status == 200 and "/admin/finance/invoices?status=paid&amp;format=csv" in body
        status, kind, data = await get(c, "/admin/finance/invoices?status=paid&format=csv")
        assert status == 200 and kind == "text/csv"
        rows = rows_of(data)
        assert list(rows[0]) == INVOICE_HEADER
        assert [r["number"] for r in rows] == [p["number"] for p in paid]  # the list's order, each once
        assert [r["total"] for r in rows] == [str(money.quantize(p["total"], p["currency"])) for p in paid]
        assert all(r["status"] == "paid" and r["kind"] == "invoice" for r in rows)
        assert all(r["issued_on"] == TODAY.isoformat() for r in rows)

        status, _, data = await get(c, f"/admin/finance/invoices?customer_id={b.customer}&format=csv")
        [mine] = rows_of(data)
        assert mine["customer_name"].startswith("'=HYPERLINK") and mine["number"]
        status, _, data = await get(c, "/admin/finance/invoices?format=csv&delimiter=%3B&bom=1")
        assert data.startswith(csv_export.BOM.encode()) and len(rows_of(data, ";")) == everything
        invoice = await conn.fetchval("SELECT number FROM documents WHERE id = $1", b.unpaid)
        status, _, _ = await c.post(f"/admin/finance/documents/{b.unpaid}/credit-note",
                                    {"reason": "outage", "amount": "1.00"})
        assert status == 200
        status, _, data = await get(c, "/admin/finance/credit-notes?format=csv")
        [note] = rows_of(data)
        assert (note["kind"], note["related_number"], note["total"]) == ("credit_note", invoice, "1.00")
        status, _, _ = await get(c, "/admin/finance/invoices?since=someday&format=csv")
        assert status == 422  # the list with its error, not a CSV of everything

    key = await api_key(conn, "finance")
    status, headers, data = await api_get(admin, key, "/finance/documents.csv?kind=invoice&status=paid&sort=number"
                                                      "&dir=asc&delimiter=%3B&bom=true")
    assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="invoices.csv"' in headers["Content-Disposition"]
    assert data.startswith(csv_export.BOM.encode())
    assert [r["number"] for r in rows_of(data, ";")] == sorted(p["number"] for p in paid)
    status, _, problem = await api_get(admin, key, "/finance/documents.csv?kind=bill")
    assert status == 422 and b"kind" in problem


async def test_the_transactions_csv_has_a_debit_and_a_credit_column(admin: Admin, conn: asyncpg.Connection,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    b = await bill(admin, conn)
    monkeypatch.setattr(exports, "EXPORT_PAGE", 4)
    expected = await conn.fetch("SELECT id, direction, amount FROM transactions WHERE customer_id = $1 "
                                "ORDER BY posted_on DESC, id DESC", b.customer)
    async with await logged(admin, "clerk", "finance") as c:
        status, kind, data = await get(c, f"/admin/finance/transactions?customer_id={b.customer}&format=csv")
        assert status == 200 and kind == "text/csv"
        rows = rows_of(data)
        assert list(rows[0]) == TRANSACTION_HEADER
        assert [int(r["id"]) for r in rows] == [t["id"] for t in expected]
        for r, t in zip(rows, expected, strict=True):
            assert r[t["direction"]] == str(money.quantize(t["amount"], "EUR"))
            assert r["credit" if t["direction"] == "debit" else "debit"] == ""
        status, _, data = await get(c, "/admin/finance/transactions?kind=payment&sort=amount&dir=asc&format=csv")
        payments = rows_of(data)
        total = await conn.fetchval("SELECT sum(amount) FROM transactions WHERE kind = 'payment'")
        assert sum(D(r["credit"]) for r in payments) == total and len(payments) > 8
        assert [D(r["credit"]) for r in payments] == sorted(D(r["credit"]) for r in payments)
    key = await api_key(conn, "finance")
    status, headers, data = await api_get(admin, key, f"/finance/transactions.csv?customer_id={b.customer}")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert [int(r["id"]) for r in rows_of(data)] == [t["id"] for t in expected]


async def test_a_partners_administrator_exports_only_its_partners_rows(admin: Admin, conn: asyncpg.Connection) -> None:
    await demo.load(conn, 12, seed=1)
    other = await conn.fetchval("INSERT INTO partners (name) VALUES ('Other ISP') RETURNING id")
    theirs = [r["id"] for r in await conn.fetch("SELECT id FROM customers ORDER BY id LIMIT 4")]
    await conn.execute("UPDATE customers SET partner_id = $1 WHERE id = ANY($2::bigint[])", other, theirs)
    said = await billing_demo.setup(admin.pool, TODAY)
    assert "issued" in said, said
    demo_partner = await conn.fetchval("SELECT id FROM partners WHERE name = 'Demo ISP'")
    mine = {r["number"] for r in await conn.fetch("SELECT number FROM documents WHERE kind = 'invoice' "
                                                  "AND partner_id = $1", other)}
    not_mine = {r["number"] for r in await conn.fetch("SELECT number FROM documents WHERE kind = 'invoice' "
                                                      "AND partner_id <> $1", other)}
    assert mine and not_mine
    their_customer = theirs[0]
    demo_customer = await conn.fetchval("SELECT min(id) FROM customers WHERE partner_id = $1", demo_partner)
    async with await logged(admin, "outsider", "finance", partner_id=other) as c:
        status, _, data = await get(c, "/admin/finance/invoices?format=csv")
        assert status == 200 and {r["number"] for r in rows_of(data)} == mine
        status, _, data = await get(c, "/admin/finance/transactions?format=csv")
        customers = {r["customer_number"] for r in rows_of(data)}
        assert customers == {r["number"] for r in await conn.fetch(
            "SELECT number FROM customers WHERE id = ANY($1::bigint[]) AND id IN (SELECT customer_id FROM "
            "transactions)", theirs)}
        status, _, data = await get(c, f"/admin/finance/transactions?customer_id={demo_customer}&format=csv")
        assert status == 200 and rows_of(data) == []
        for path in (f"/admin/customers/{demo_customer}/statement/pdf", f"/admin/customers/{demo_customer}/billing"):
            status, _, _ = await get(c, path)
            assert status == 404, path
        status, _, _ = await get(c, f"/admin/customers/{their_customer}/statement/pdf")
        assert status == 200
        status, _, _ = await c.post(f"/admin/customers/{demo_customer}/proformas", {"on": TODAY.isoformat()})
        assert status == 404
    key = await api_key(conn, "finance", partner_id=other)
    status, _, data = await api_get(admin, key, "/finance/documents.csv?kind=invoice")
    assert status == 200 and {r["number"] for r in rows_of(data)} == mine
    status, _, data = await api_get(admin, key, "/finance/transactions.csv")
    assert status == 200 and {r["customer_number"] for r in rows_of(data)} == customers
    status, _, _ = await api_get(admin, key, f"/customers/{demo_customer}/statement/pdf")
    assert status == 404
    status, _ = await api_post(admin, key, f"/customers/{demo_customer}/proformas", {}, **{"Idempotency-Key": "k"})
    assert status == 404
    assert await conn.fetchval("SELECT count(*) FROM documents WHERE kind = 'proforma'") == 0
    # The control: unscoped, every partner's rows.
    root = await api_key(conn, "finance")
    status, _, data = await api_get(admin, root, "/finance/documents.csv?kind=invoice")
    assert {r["number"] for r in rows_of(data)} == mine | not_mine

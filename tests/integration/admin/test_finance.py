"""The finance area through its pages and its API, over demo customers billed by a real run
(admin/billing/demo.py: this month invoiced, four in five paid): every page and operation answers
for the finance roles and is refused without the permission; another partner's rows are not
found; a payment by hand pays the invoice and moves the balance, a void reverses it, a credit
note credits it; runs are previewed, downloaded, confirmed and cancelled; the settings are saved
and applied; every change is in the operations log."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest

from admin.billing import demo as billing_demo
from admin.billing import ledger, periods
from admin.billing import run as billing_run
from admin.worker import queue
from daemons import demo
from tests.integration.admin.conftest import Admin, Client, api_key, call, make_admin

D = Decimal
TODAY = dt.datetime.now(dt.UTC).date()


@dataclass
class Billed:
    unpaid: int          # an unpaid invoice's id
    customer: int        # its customer
    paid: int            # a paid invoice
    receipt: int         # a receipt
    run: int             # the demo's billing run
    total: Decimal       # the unpaid invoice's total


async def bill(admin: Admin, conn: asyncpg.Connection, customers: int = 15) -> Billed:
    await demo.load(conn, customers, seed=1)
    said = await billing_demo.setup(admin.pool, TODAY)
    assert "issued" in said, said
    unpaid = await conn.fetchrow("SELECT d.id, d.customer_id, d.total FROM documents d JOIN billing_documents_state s "
                                 "USING (id) WHERE d.kind = 'invoice' AND s.status IN ('unpaid', 'overdue') "
                                 "ORDER BY d.id LIMIT 1")
    paid = await conn.fetchval("SELECT d.id FROM documents d JOIN billing_documents_state s USING (id) "
                               "WHERE d.kind = 'invoice' AND s.status = 'paid' ORDER BY d.id LIMIT 1")
    receipt = await conn.fetchval("SELECT min(id) FROM documents WHERE kind = 'receipt'")
    run = await conn.fetchval("SELECT min(id) FROM billing_runs")
    assert unpaid is not None and paid and receipt and run
    return Billed(unpaid["id"], unpaid["customer_id"], paid, receipt, run, unpaid["total"])


async def balance(conn: asyncpg.Connection, customer_id: int) -> Decimal:
    return D(await conn.fetchval("SELECT coalesce(sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END), 0) "
                                 "FROM transactions WHERE customer_id = $1", customer_id))


async def doc_status(conn: asyncpg.Connection, document_id: int) -> str:
    return str(await conn.fetchval("SELECT status FROM billing_documents_state WHERE id = $1", document_id))


async def oplog(conn: asyncpg.Connection, action: str) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM operations_log WHERE action = $1 ORDER BY id", action))


def page_urls(b: Billed) -> list[str]:
    return [
        "/admin/finance/transactions", f"/admin/finance/transactions?customer_id={b.customer}&kind=charge",
        "/admin/finance/transactions?format=csv", "/admin/finance/invoices", "/admin/finance/invoices?status=paid",
        "/admin/finance/invoices?format=csv", "/admin/finance/proformas", "/admin/finance/credit-notes",
        "/admin/finance/receipts", f"/admin/finance/documents/{b.unpaid}", f"/admin/finance/documents/{b.receipt}",
        "/admin/finance/billing-runs", f"/admin/finance/billing-runs/{b.run}",
        f"/admin/finance/billing-runs/{b.run}?format=csv", f"/admin/customers/{b.customer}/billing",
        "/admin/finance/reports", "/admin/finance/reports/charts.json", "/admin/finance/settings"]


def api_urls(b: Billed) -> list[str]:
    return [
        "/finance/transactions", "/finance/transactions/totals", "/finance/documents?kind=invoice",
        f"/finance/documents/{b.unpaid}", "/finance/billing-runs", f"/finance/billing-runs/{b.run}",
        f"/finance/billing-runs/{b.run}/items", f"/customers/{b.customer}/billing",
        f"/customers/{b.customer}/statement", f"/customers/{b.customer}/next-invoice",
        f"/customers/{b.customer}/next-invoice-items", "/finance/reports/active-services", "/finance/reports/mrr",
        "/finance/reports/debt", "/finance/reports/payments", "/finance/settings"]


async def logged(admin: Admin, login: str, role: str, *, partner_id: int | None = None) -> Client:
    async with admin.pool.acquire() as conn:
        await make_admin(conn, login, role, partner_id=partner_id)
    c = admin.client()
    status, body, _ = await c.login(login)
    assert status == 200, body
    return c


# -- every page and operation, by role ------------------------------------------------------------

@pytest.mark.parametrize("role", ["finance", "admin", "manager"])
async def test_every_page_and_operation_answers_for_a_finance_role(admin: Admin, conn: asyncpg.Connection,
                                                                   role: str) -> None:
    b = await bill(admin, conn)
    async with await logged(admin, "money", role) as c:
        for url in page_urls(b):
            status, body = await c.get(url)
            assert status == 200, (url, status, body[:300])
    key = await api_key(conn, role)
    for url in api_urls(b):
        status, body = await call(admin, key, "GET", url)
        assert status == 200, (url, status, body)


@pytest.mark.parametrize("role", ["engineer", "technician", "creator"])
async def test_a_role_without_finance_gets_403(admin: Admin, conn: asyncpg.Connection, role: str) -> None:
    b = await bill(admin, conn)
    async with await logged(admin, "other", role) as c:
        for url in page_urls(b):
            status, _ = await c.get(url, allow_redirects=False)
            assert status == 403, (url, status)
        status, _, _ = await c.post(f"/admin/finance/documents/{b.unpaid}/pay", {"amount": "1", "method": "cash",
                                                                                  "on": TODAY.isoformat()})
        assert status == 403
    key = await api_key(conn, role)
    for url in api_urls(b):
        status, _ = await call(admin, key, "GET", url)
        assert status == 403, (url, status)
    status, _ = await call(admin, key, "POST", f"/finance/documents/{b.unpaid}/payments",
                           {"amount": "1", "method": "cash"})
    assert status == 403
    assert await doc_status(conn, b.unpaid) in ("unpaid", "overdue")


async def test_a_manager_sees_finance_but_changes_nothing(admin: Admin, conn: asyncpg.Connection) -> None:
    """finance.view only: the pages show no forms, and the changes are refused."""
    b = await bill(admin, conn)
    async with await logged(admin, "boss", "manager") as c:
        status, body = await c.get(f"/admin/finance/documents/{b.unpaid}")
        assert status == 200 and "Record a payment" not in body and "Void" not in body
        status, body = await c.get(f"/admin/customers/{b.customer}/billing")
        assert status == 200 and "Record a payment" not in body and "Save settings" not in body
        for path, form in ((f"/admin/finance/documents/{b.unpaid}/pay", {"amount": "1", "method": "cash"}),
                           (f"/admin/finance/documents/{b.unpaid}/void", {"reason": "no"}),
                           ("/admin/finance/billing-runs", {"billing_date": TODAY.isoformat()}),
                           (f"/admin/finance/billing-runs/{b.run}/confirm", {}),
                           ("/admin/finance/settings", {"currency": "USD"})):
            status, _, _ = await c.post(path, form)
            assert status == 403, path


# -- a payment by hand, a void, a credit note -----------------------------------------------------

async def test_a_payment_by_hand_pays_the_invoice_and_moves_the_balance(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    before = await balance(conn, b.customer)
    async with await logged(admin, "cashier", "finance") as c:
        status, body = await c.get(f"/admin/finance/documents/{b.unpaid}")
        assert status == 200 and "Record a payment" in body
        key = re.search(r'name="key" value="([^"]+)"', body)
        assert key is not None
        # A wrong amount is an answer next to its field, and nothing is recorded.
        status, body, _ = await c.post(f"/admin/finance/documents/{b.unpaid}/pay", {
            "amount": "12.345", "on": TODAY.isoformat(), "method": "cash", "key": key.group(1)})
        assert status == 422 and 'id="e-amount"' in body and "decimals" in body
        form = {"amount": str(b.total), "on": TODAY.isoformat(), "method": "bank_transfer", "reference": "AT-778",
                "key": key.group(1)}
        status, body, url = await c.post(f"/admin/finance/documents/{b.unpaid}/pay", form)
        assert status == 200 and url.endswith("?done=paid"), body[:500]
        assert "Payment recorded" in body and ">paid<" in body
        # The same form again (a double click): nothing more.
        status, _, _ = await c.post(f"/admin/finance/documents/{b.unpaid}/pay", form)
        assert status == 200
    assert await doc_status(conn, b.unpaid) == "paid"
    assert await balance(conn, b.customer) == before + b.total
    receipts = await conn.fetch("SELECT id, number, total, note FROM documents WHERE kind = 'receipt' "
                                "AND related_id = $1", b.unpaid)
    assert len(receipts) == 1 and receipts[0]["total"] == b.total and receipts[0]["note"] == "AT-778"
    lines = await oplog(conn, "payment")
    assert len(lines) == 1 and lines[0]["customer_id"] == b.customer and lines[0]["actor"] == "cashier"
    assert lines[0]["object_id"] == receipts[0]["id"] and receipts[0]["number"] in lines[0]["summary"]


async def test_void_reverses_the_invoice_and_releases_its_payment(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    customer = await conn.fetchval("SELECT customer_id FROM documents WHERE id = $1", b.paid)
    total = await conn.fetchval("SELECT total FROM documents WHERE id = $1", b.paid)
    before = await balance(conn, customer)
    async with await logged(admin, "controller", "finance") as c:
        await c.get(f"/admin/finance/documents/{b.paid}")
        status, body, _ = await c.post(f"/admin/finance/documents/{b.paid}/void", {"reason": "  "})
        assert status == 422 and 'id="e-reason"' in body
        status, body, url = await c.post(f"/admin/finance/documents/{b.paid}/void", {"reason": "billed twice"})
        assert status == 200 and url.endswith("?done=void"), body[:500]
        assert ">void<" in body and "billed twice" in body
        status, body, _ = await c.post(f"/admin/finance/documents/{b.paid}/void", {"reason": "again"})
        assert status == 409 and "void already" in body
    assert await doc_status(conn, b.paid) == "void"
    assert await balance(conn, customer) == before + total  # its charges reversed; the payment is a credit now
    assert await conn.fetchval("SELECT count(*) FROM transactions WHERE kind = 'reversal' AND reverses_id IN "
                               "(SELECT id FROM transactions WHERE document_id = $1)", b.paid) >= 1
    line = (await oplog(conn, "void"))[0]
    assert line["object_id"] == b.paid and line["before"] == {"status": "paid"} and line["after"]["status"] == "void"


async def test_a_credit_note_of_part_of_an_invoice(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    key = await api_key(conn, "finance")
    status, body = await call(admin, key, "POST", f"/finance/documents/{b.unpaid}/credit-notes",
                              {"reason": "outage", "amount": str(b.total + 1)})
    assert status == 422 and "amount" in body["errors"], body
    status, note = await call(admin, key, "POST", f"/finance/documents/{b.unpaid}/credit-notes",
                              {"reason": "outage of two days", "amount": "5.00"})
    assert status == 201, note
    assert note["kind"] == "credit_note" and D(note["total"]) == D("5.00") and note["related"][0]["id"] == b.unpaid
    status, invoice = await call(admin, key, "GET", f"/finance/documents/{b.unpaid}")
    assert invoice["status"] in ("partially_paid", "overdue") and D(invoice["open"]) == b.total - D("5.00")
    status, body = await call(admin, key, "POST", f"/finance/documents/{b.receipt}/credit-notes", {"reason": "x"})
    assert status == 409
    assert len(await oplog(conn, "credit_note")) == 1
    async with await logged(admin, "reader", "finance") as c:
        status, page = await c.get(f"/admin/finance/documents/{note['id']}")
        assert status == 200 and "Credit note" in page and f'href="/admin/finance/documents/{b.unpaid}"' in page
        status, page = await c.get("/admin/finance/credit-notes")
        assert status == 200 and note["number"] in page


async def test_the_api_records_a_payment_once_per_key_and_voids(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    key = await api_key(conn, "finance")
    before = await balance(conn, b.customer)
    body = {"amount": "10.00", "method": "cash", "reference": "till 3", "idempotency_key": "till-3-0001"}
    status, paid = await call(admin, key, "POST", f"/customers/{b.customer}/payments", body)
    assert status == 201, paid
    assert D(paid["balance"]) == before + D("10.00") and paid["receipt_number"]
    status, again = await call(admin, key, "POST", f"/customers/{b.customer}/payments", body)
    assert status == 201 and again["transaction_id"] == paid["transaction_id"]
    assert await balance(conn, b.customer) == before + D("10.00")
    assert len(await oplog(conn, "payment")) == 1
    # The receipt is void only while nothing of it is applied: here it paid the invoice.
    status, problem = await call(admin, key, "POST", f"/finance/documents/{paid['receipt_id']}/void",
                                 {"reason": "typo"})
    assert status == 409 and "void that invoice first" in problem["detail"]
    status, voided = await call(admin, key, "POST", f"/finance/documents/{b.unpaid}/void", {"reason": "wrong"})
    assert status == 200 and voided["status"] == "void" and voided["void"]["reason"] == "wrong"
    for bad in ({"amount": "0", "method": "cash"}, {"amount": "1.5", "method": "barter"}, {"method": "cash"}):
        status, problem = await call(admin, key, "POST", f"/customers/{b.customer}/payments", bad)
        assert status == 422, (bad, problem)


async def test_a_documents_pdf_is_rendered_once_and_kept(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    async with await logged(admin, "printer", "finance") as c, \
            c.session.get(f"{admin.url}/admin/finance/documents/{b.unpaid}/pdf") as r:
        first = await r.read()
        assert r.status == 200 and r.content_type == "application/pdf" and first.startswith(b"%PDF")
        assert "attachment" in r.headers["Content-Disposition"]
    key = await api_key(conn, "finance")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s, \
            s.get(f"{admin.url}/api/v1/finance/documents/{b.unpaid}/pdf") as r:
        assert r.status == 200 and await r.read() == first
    kept = await conn.fetchrow("SELECT sha256, pdf FROM document_files WHERE document_id = $1", b.unpaid)
    assert kept is not None and bytes(kept["pdf"]) == first and bytes(kept["sha256"]) == hashlib.sha256(first).digest()


# -- billing runs -----------------------------------------------------------------------------------

async def test_a_run_is_previewed_downloaded_and_confirmed_through_the_pages(admin: Admin,
                                                                            conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    next_month = periods.add_months(TODAY, 1)  # the demo's customers are billed on the day they were made
    async with await logged(admin, "biller", "finance") as c:
        await c.get("/admin/finance/billing-runs")
        status, body, url = await c.post("/admin/finance/billing-runs", {"billing_date": "not a date"})
        assert status == 422 and 'id="e-billing_date"' in body
        status, body, url = await c.post("/admin/finance/billing-runs", {"billing_date": next_month.isoformat()})
        assert status == 200 and re.search(r"/billing-runs/\d+$", url), body[:500]
        run_id = int(url.rsplit("/", 1)[1])
        assert "Confirm and issue" in body and "preview" in body
        customers = await conn.fetchval("SELECT count(*) FROM billing_run_items WHERE run_id = $1", run_id)
        assert customers > 0
        status, text = await c.get(f"/admin/finance/billing-runs/{run_id}?format=csv")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert status == 200 and len({r["customer_id"] for r in rows}) == customers
        assert sum(D(r["gross"]) for r in rows) == D(await conn.fetchval(
            "SELECT sum(total) FROM billing_run_items WHERE run_id = $1", run_id))
        # A second preview of the same date waits for the first.
        status, body, _ = await c.post("/admin/finance/billing-runs", {"billing_date": next_month.isoformat()})
        assert status == 409 and "already" in body
        status, body, url = await c.post(f"/admin/finance/billing-runs/{run_id}/confirm", {})
        assert status == 200 and url.endswith("?done=queued"), body[:500]
        assert "the worker is issuing" in body and "Confirm and issue" not in body
        await work(admin, run_id)
        status, body = await c.get(f"/admin/finance/billing-runs/{run_id}?done=queued")
        assert status == 200 and "the invoices are issued" in body
        status, body = await c.get(f"/admin/finance/invoices?run_id={run_id}")
        assert status == 200 and body.count('href="/admin/finance/documents/') == customers
        # An issued run cannot be cancelled.
        status, body, _ = await c.post(f"/admin/finance/billing-runs/{run_id}/cancel", {})
        assert status == 409
    assert await conn.fetchval("SELECT status FROM billing_runs WHERE id = $1", run_id) == "issued"
    assert await conn.fetchval("SELECT count(*) FROM documents WHERE run_id = $1", run_id) == customers
    assert [r["object_id"] for r in await oplog(conn, "preview")] == [run_id]
    assert [r["object_id"] for r in await oplog(conn, "confirm")] == [run_id]
    assert b.run != run_id


async def work(admin: Admin, run_id: int) -> None:
    """What the worker does with the run's job (admin/billing/jobs.py ``billing.confirm``)."""
    job = await admin.pool.fetchrow("SELECT id, payload FROM pgqueuer WHERE entrypoint = 'billing.confirm' "
                                    "AND dedupe_key = $1 AND status = 'queued'", f"billing.confirm:{run_id}")
    assert job is not None, "no job queued"
    payload = queue.decode(job["payload"])
    assert payload["run_id"] == run_id
    await billing_run.confirm(admin.pool, payload["run_id"], payload["by"])


async def test_a_run_through_the_api_confirmed_by_the_worker_or_cancelled(admin: Admin,
                                                                          conn: asyncpg.Connection) -> None:
    await bill(admin, conn)
    key = await api_key(conn, "finance")
    later = TODAY + dt.timedelta(days=70)
    status, run = await call(admin, key, "POST", "/finance/billing-runs", {"billing_date": later.isoformat()})
    assert status == 201 and run["status"] == "preview" and run["customers"] > 0, run
    status, items = await call(admin, key, "GET", f"/finance/billing-runs/{run['id']}/items?limit=2")
    assert status == 200 and len(items["items"]) == 2 and items["next"]
    status, more = await call(admin, key, "GET", f"/finance/billing-runs/{run['id']}/items?after={items['next']}")
    assert status == 200 and more["items"][0]["customer_id"] > items["items"][1]["customer_id"]
    status, cancelled = await call(admin, key, "POST", f"/finance/billing-runs/{run['id']}/cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    status, _ = await call(admin, key, "POST", f"/finance/billing-runs/{run['id']}/confirm")
    assert status == 409
    assert [r["object_id"] for r in await oplog(conn, "cancel")] == [run["id"]]
    # Made again and confirmed: one job for the worker, however often it is asked; no cancelling it then.
    status, run = await call(admin, key, "POST", "/finance/billing-runs", {"billing_date": later.isoformat()})
    assert status == 201, run
    for _ in range(2):
        status, queued = await call(admin, key, "POST", f"/finance/billing-runs/{run['id']}/confirm")
        assert status == 202 and queued["status"] == "preview", queued
    assert await conn.fetchval("SELECT count(*) FROM pgqueuer WHERE entrypoint = 'billing.confirm'") == 1
    status, problem = await call(admin, key, "POST", f"/finance/billing-runs/{run['id']}/cancel")
    assert status == 409 and "worker" in problem["detail"]
    await work(admin, run["id"])
    status, issued = await call(admin, key, "GET", f"/finance/billing-runs/{run['id']}")
    assert issued["status"] == "issued" and issued["documents"] == run["customers"]


# -- a customer's billing tab -----------------------------------------------------------------------

async def test_the_billing_tab_saves_settings_and_adds_to_the_next_invoice(admin: Admin,
                                                                          conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    async with await logged(admin, "clerk", "finance") as c:
        status, body = await c.get(f"/admin/customers/{b.customer}")
        assert status == 200 and f'href="/admin/customers/{b.customer}/billing"' in body  # the customer page's tab
        status, body = await c.get(f"/admin/customers/{b.customer}/billing")
        assert status == 200 and "Statement" in body and "Next invoice" in body
        form = {"form": "settings", "enabled": "1", "billing_type": "recurring", "timing": "advance",
                "billing_day": "40", "months_in_advance": "1", "due_days": "10", "block_after_due_days": "",
                "deactivate_after_block_days": "30", "min_balance": "-20"}
        status, body, _ = await c.post(f"/admin/customers/{b.customer}/billing", form)
        assert status == 422 and 'id="e-billing_day"' in body
        status, body, url = await c.post(f"/admin/customers/{b.customer}/billing", {**form, "billing_day": "5"})
        assert status == 200 and url.endswith("?done=saved"), body[:500]
        row = await conn.fetchrow("SELECT * FROM customer_billing WHERE customer_id = $1", b.customer)
        assert row is not None
        assert (row["billing_day"], row["due_days"], row["block_after_due_days"], row["min_balance"]) == (
            5, 10, None, D("-20"))
        status, body, url = await c.post(f"/admin/customers/{b.customer}/next-invoice-items", {
            "form": "item", "description": "Router WLAN", "quantity": "1", "unit_price": "49.90"})
        assert status == 200 and url.endswith("?done=item") and "Router WLAN" in body, body[:500]
        status, body, _ = await c.post(f"/admin/customers/{b.customer}/payments", {
            "form": "pay", "amount": "3.00", "on": TODAY.isoformat(), "method": "cash"})
        assert status == 200 and "Payment recorded" in body
    key = await api_key(conn, "finance")
    status, upcoming = await call(admin, key, "GET", f"/customers/{b.customer}/next-invoice")
    assert status == 200 and any(line["description"] == "Router WLAN" for line in upcoming["lines"]), upcoming
    status, statement = await call(admin, key, "GET", f"/customers/{b.customer}/statement")
    assert D(statement["balance"]) == await balance(conn, b.customer)
    assert statement["entries"][-1]["credit"] == "3.0000"
    status, patched = await call(admin, key, "PATCH", f"/customers/{b.customer}/billing", {"due_days": 21})
    assert status == 200 and patched["due_days"] == 21
    assert [r["object_type"] for r in await oplog(conn, "update")] == ["customer_billing", "customer_billing"]
    assert [r["object_type"] for r in await oplog(conn, "create")] == ["next_invoice_item"]


# -- settings ---------------------------------------------------------------------------------------

async def test_the_settings_are_saved_checked_and_applied(admin: Admin, conn: asyncpg.Connection) -> None:
    await bill(admin, conn)
    async with await logged(admin, "root", "super") as c:
        status, body = await c.get("/admin/finance/settings")
        assert status == 200 and 'name="invoice_pattern"' in body
        form = {"enabled": "1", "currency": "EUR", "billing_type": "recurring", "timing": "advance", "billing_day": "",
                "due_days": "20", "block_after_due_days": "5", "deactivate_after_block_days": "", "min_balance": "0",
                "upgrade_fee": "0", "downgrade_fee": "0", "invoice_pattern": "INV{year}-{next",
                "proforma_pattern": "P{next|6}", "credit_note_pattern": "CN{next|6}", "receipt_pattern": "R{next|6}",
                "confirmation_days": "3"}
        status, body, _ = await c.post("/admin/finance/settings", form)
        assert status == 422 and 'id="e-invoice_pattern"' in body
        status, body, url = await c.post("/admin/finance/settings", {**form, "invoice_pattern": "INV{year}-{next|5}"})
        assert status == 200 and url.endswith("done=saved"), body[:500]
        assert await conn.fetchval("SELECT due_days FROM billing_settings") == 20
        status, body, url = await c.post("/admin/finance/settings/apply", {"groups": "due_days"})
        assert status == 200 and "done=applied" in url
    assert await conn.fetchval("SELECT count(*) FROM customer_billing WHERE due_days <> 20") == 0
    lines = await oplog(conn, "apply")
    assert len(lines) == 1 and lines[0]["after"]["groups"] == ["due_days"]
    key = await api_key(conn, "finance")
    status, s = await call(admin, key, "PATCH", "/finance/settings", {"enabled": False})
    assert status == 200 and s["enabled"] is False
    status, problem = await call(admin, key, "POST", "/finance/billing-runs", {"billing_date": TODAY.isoformat()})
    assert status == 409 and "switched off" in problem["detail"]


# -- reports ----------------------------------------------------------------------------------------

async def test_the_reports_add_up(admin: Admin, conn: asyncpg.Connection) -> None:
    await bill(admin, conn)
    key = await api_key(conn, "finance")
    status, chart = await call(admin, key, "GET", f"/finance/reports/payments?since={TODAY}&until={TODAY}")
    received = await conn.fetchval("SELECT sum(amount) FROM transactions WHERE kind = 'payment'")
    assert status == 200 and chart["x"] == [TODAY.isoformat()]
    assert sum(D(v) for s in chart["series"] if s["unit"] for v in s["values"]) == received
    status, chart = await call(admin, key, "GET", "/finance/reports/debt")
    still_open = await conn.fetchval("SELECT sum(open) FROM billing_documents_state WHERE kind = 'invoice' "
                                     "AND status IN ('unpaid', 'partially_paid', 'overdue')")
    assert sum(D(v) for s in chart["series"] if s["unit"] for v in s["values"]) == still_open
    status, chart = await call(admin, key, "GET", f"/finance/reports/active-services?since={TODAY}&until={TODAY}")
    running = await conn.fetchval("SELECT count(*) FROM services WHERE status IN ('active', 'blocked')")
    assert chart["series"][0]["label"] == "Active services" and D(chart["series"][0]["values"][0]) == running
    status, chart = await call(admin, key, "GET", "/finance/reports/mrr")
    assert status == 200 and chart["series"] and D(chart["series"][0]["values"][-1]) > 0
    status, problem = await call(admin, key, "GET", "/finance/reports/mrr?since=2026-01-01&until=2020-01-01")
    assert status == 422 and "since" in problem["errors"]


# -- partners -------------------------------------------------------------------------------------

async def test_another_partners_finance_is_not_found(admin: Admin, conn: asyncpg.Connection) -> None:
    b = await bill(admin, conn)
    demo_partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", b.customer)
    other = await conn.fetchval("INSERT INTO partners (name) VALUES ('Other ISP') RETURNING id")
    # An administrator and a key of the other partner: the demo's rows are another partner's.
    before = await balance(conn, b.customer)
    async with await logged(admin, "outsider", "finance", partner_id=other) as c:
        for url in (f"/admin/finance/documents/{b.unpaid}", f"/admin/finance/documents/{b.unpaid}/pdf",
                    f"/admin/finance/billing-runs/{b.run}", f"/admin/customers/{b.customer}/billing"):
            status, _ = await c.get(url)
            assert status == 404, url
        for url, form in ((f"/admin/finance/documents/{b.unpaid}/pay", {"amount": "1", "method": "cash",
                                                                         "on": TODAY.isoformat()}),
                          (f"/admin/finance/documents/{b.unpaid}/void", {"reason": "mine now"}),
                          (f"/admin/customers/{b.customer}/payments", {"amount": "1", "method": "cash",
                                                                       "on": TODAY.isoformat()}),
                          (f"/admin/finance/billing-runs/{b.run}/confirm", {})):
            status, _, _ = await c.post(url, form)
            assert status == 404, url
        for url in ("/admin/finance/transactions", "/admin/finance/invoices", "/admin/finance/receipts",
                    "/admin/finance/billing-runs", "/admin/finance/transactions?format=csv"):
            status, body = await c.get(url)
            assert status == 200 and "Demo" not in body and "/admin/finance/documents/" not in body, url
        status, body = await c.get("/admin/finance/reports/charts.json")
        charts = json.loads(body)
        assert status == 200 and all(D(v) == 0 for c in charts.values() for s in c["series"] for v in s["values"])
    key = await api_key(conn, "finance", partner_id=other)
    attempts: list[tuple[str, str, Any]] = [
        ("GET", f"/finance/documents/{b.unpaid}", None), ("GET", f"/customers/{b.customer}/statement", None),
        ("GET", f"/finance/billing-runs/{b.run}/items", None),
        ("POST", f"/finance/documents/{b.unpaid}/payments", {"amount": "1", "method": "cash"}),
        ("POST", f"/finance/billing-runs/{b.run}/cancel", None),
        ("PATCH", f"/customers/{b.customer}/billing", {"due_days": 1})]
    for method, url, json_body in attempts:
        status, _ = await call(admin, key, method, url, json_body)
        assert status == 404, (method, url, status)
    status, page = await call(admin, key, "GET", "/finance/transactions")
    assert status == 200 and page["items"] == []
    status, totals = await call(admin, key, "GET", "/finance/transactions/totals")
    assert totals == []
    # Its own partner's administrator sees them, and its previews are its own partner's.
    own = await api_key(conn, "finance", partner_id=demo_partner)
    status, doc = await call(admin, own, "GET", f"/finance/documents/{b.unpaid}")
    assert status == 200 and doc["customer_id"] == b.customer
    status, run = await call(admin, own, "POST", "/finance/billing-runs",
                             {"billing_date": (TODAY + dt.timedelta(days=40)).isoformat(), "partner_id": other})
    assert status == 422, run
    status, run = await call(admin, own, "POST", "/finance/billing-runs",
                             {"billing_date": (TODAY + dt.timedelta(days=40)).isoformat()})
    assert status == 201 and run["partner_id"] == demo_partner
    # A run of every partner is the unscoped administrators' only.
    status, _ = await call(admin, own, "GET", f"/finance/billing-runs/{b.run}")
    assert status == 404
    assert await balance(conn, b.customer) == before
    assert await conn.fetchval("SELECT count(*) FROM operations_log WHERE action IN ('payment', 'void')") == 0


async def test_a_payment_cannot_be_aimed_at_another_customers_document(admin: Admin, conn: asyncpg.Connection) -> None:
    """Idempotency keys and documents are the customer's own: the API's key is per customer."""
    b = await bill(admin, conn)
    other = await conn.fetchval("SELECT customer_id FROM documents WHERE kind = 'invoice' AND customer_id <> $1 "
                                "ORDER BY id LIMIT 1", b.customer)
    key = await api_key(conn, "finance")
    body: dict[str, Any] = {"amount": "2.00", "method": "cash", "idempotency_key": "same"}
    status, first = await call(admin, key, "POST", f"/customers/{b.customer}/payments", body)
    status2, second = await call(admin, key, "POST", f"/customers/{other}/payments", body)
    assert status == status2 == 201 and first["transaction_id"] != second["transaction_id"]
    assert second["customer_id"] == other
    with pytest.raises(ledger.LedgerError):
        async with admin.pool.acquire() as c, c.transaction():
            await ledger.record_payment(c, other, D("1"), TODAY, method="cash", document_id=b.unpaid)

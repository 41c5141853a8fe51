"""The portal's finance pages (/portal/finance) over the real app and database: the balance
explained, the payments per month, the lists of the customer's documents by pages (newest
first), each document's PDF and the statement's as attachments; and isolation: every finance
route tried with another customer's document ids answers 404 and shows nothing of theirs."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from admin.billing import ledger
from tests.integration.admin.conftest import Admin
from tests.integration.portal.conftest import admin, partner, portal_customer, portal_login  # noqa: F401
from tests.integration.portal.test_dashboard import invoice, pay, text

D = Decimal
TODAY = dt.datetime.now(dt.UTC).date()
LISTS = ("invoices", "proformas", "credit-notes", "payments")


async def documents_of(app: Admin, customer_id: int) -> dict[str, int]:
    """An invoice, a proforma, a credit note and a receipt of the customer, issued by the ledger: ids by kind."""
    async with app.pool.acquire() as conn:
        bill = await invoice(conn, customer_id, "29.00", on=TODAY - dt.timedelta(days=40))
        await pay(conn, customer_id, "10.00", TODAY - dt.timedelta(days=35))
        proforma = await invoice(conn, customer_id, "15.00", kind="proforma")
        async with conn.transaction():
            note = await ledger.credit_note(conn, bill.id, "outage", "test", D("4.00"))
        receipt = await conn.fetchval("SELECT id FROM documents WHERE customer_id = $1 AND kind = 'receipt'",
                                      customer_id)
    return {"invoice": bill.id, "proforma": proforma.id, "credit_note": note, "receipt": int(receipt)}


async def test_the_finance_pages_list_the_customers_documents_and_serve_their_pdfs(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    docs = await documents_of(admin, anna)
    async with await portal_login(admin, "anna") as c:
        status, page = await c.get("/portal/finance")
        assert status == 200, page[:500]
        words = text(page)
        assert "You owe 15.00 EUR" in words  # 29.00 less 10.00 paid less a credit note of 4.00
        assert "What it is made of" in words
        paid_month = TODAY - dt.timedelta(days=35)
        assert f"{paid_month:%b %Y}: 10.00 EUR, 1 payment" in words  # the chart's month, also for screen readers
        for kind, doc_id in docs.items():
            assert f'href="/portal/finance/documents/{doc_id}/pdf"' in page, kind
        for path, kind in zip(LISTS, ("invoice", "proforma", "credit_note", "receipt"), strict=True):
            status, page = await c.get(f"/portal/finance/{path}")
            assert status == 200, (path, page[:300])
            assert f'/portal/finance/documents/{docs[kind]}/pdf' in page, path
            assert page.count('class="pdf"') == 1, path
        async with c.session.get(c.url + f"/portal/finance/documents/{docs['invoice']}/pdf") as r:
            body = await r.read()
            assert r.status == 200 and r.content_type == "application/pdf" and body.startswith(b"%PDF")
            assert r.headers["Content-Disposition"].startswith('attachment; filename="invoice-')
        since = (TODAY - dt.timedelta(days=60)).isoformat()
        async with c.session.get(c.url + f"/portal/finance/statement/pdf?since={since}&until={TODAY}") as r:
            body = await r.read()
            assert r.status == 200 and body.startswith(b"%PDF"), body[:300]
            assert r.headers["Content-Disposition"].startswith('attachment; filename="statement-P-anna-')
        status, page = await c.get(f"/portal/finance/statement/pdf?since={TODAY}&until={since}")
        assert status == 422 and "is before the first day" in page
        status, page = await c.get("/portal/finance/statement/pdf?since=yesterday")
        assert status == 422 and 'role="alert"' in page


async def test_the_lists_go_by_pages_newest_first(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with admin.pool.acquire() as conn:
        numbers = [(await invoice(conn, anna, "1.00", on=TODAY - dt.timedelta(days=n))).number for n in range(5)]
    async with await portal_login(admin, "anna") as c:
        seen: list[str] = []
        path = "/portal/finance/invoices?limit=2"
        for _ in range(3):
            status, page = await c.get(path)
            assert status == 200
            seen += re.findall(r"Invoice (\S+)</strong>", page)
            more = re.search(r'href="([^"]+)">Older', page)
            if more is None:
                break
            path = more.group(1).replace("&amp;", "&")
        assert seen == numbers  # newest first, each once
        status, _ = await c.get("/portal/finance/invoices?after=bad")
        assert status == 400


async def test_another_customers_documents_are_not_found(admin: Admin) -> None:  # noqa: F811
    """Every finance route, with the ids of a neighbour's documents (same partner) and of
    another partner's customer's: 404 for each, and nothing of theirs in a list."""
    anna = await portal_customer(admin, login="anna")
    bob = await portal_customer(admin, login="bob")
    other = await partner(admin, "Othernet")
    carl = await portal_customer(admin, login="carl", partner_id=other)
    mine = await documents_of(admin, anna)
    theirs = {**{f"bob {k}": v for k, v in (await documents_of(admin, bob)).items()},
              **{f"carl {k}": v for k, v in (await documents_of(admin, carl)).items()}}
    async with admin.pool.acquire() as conn:
        numbers = [r["number"] for r in await conn.fetch("SELECT number FROM documents WHERE id = ANY($1::bigint[])",
                                                         list(theirs.values()))]
    async with await portal_login(admin, "anna") as c:
        for what, doc_id in theirs.items():
            for path in (f"/portal/finance/documents/{doc_id}/pdf", f"/portal/messages/{doc_id}"):
                status, _ = await c.get(path)
                assert status == 404, (what, path)
        async with c.session.get(c.url + f"/portal/finance/documents/{mine['invoice']}/pdf") as r:
            assert r.status == 200  # its own, by the same route
        for path in ("/portal/finance", *(f"/portal/finance/{p}" for p in LISTS), "/portal/"):
            status, page = await c.get(path)
            assert status == 200, path
            for doc_id in theirs.values():
                assert f"/documents/{doc_id}/" not in page, (path, doc_id)
    async with admin.pool.acquire() as conn:  # anna's and bob's numbers differ: no number of theirs shows
        assert not set(numbers) & {r["number"] for r in await conn.fetch(
            "SELECT number FROM documents WHERE customer_id = $1", anna)}
    async with await portal_login(admin, "anna") as c:
        for path in ("/portal/finance", *(f"/portal/finance/{p}" for p in LISTS)):
            _, page = await c.get(path)
            for number in numbers:
                assert f"{number}</strong>" not in page, (path, number)

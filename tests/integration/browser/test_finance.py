"""Finance through the pages in a real browser: a demo customer with an invoice (billed by a real
run, admin/billing/demo.py) is opened, its invoice is paid by hand from the invoice's page, the
status and the balance change, the PDF downloads; a run is previewed and confirmed; the reports
draw their charts. Screenshots in var/screenshots/<test>-<page>.png, the invoice's PDF as
var/screenshots/finance-invoice.pdf (and its first page as finance-invoice-pdf.png, when poppler's
pdftoppm is there)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import asyncpg

from admin.billing import demo as billing_demo
from admin.billing import periods
from daemons import demo
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.admin.test_finance import work
from tests.integration.browser.conftest import PHONE, SHOTS, Browse, Tab

TODAY = dt.datetime.now(dt.UTC).date()


async def billed(conn: asyncpg.Connection, admin: Admin) -> asyncpg.Record:
    """Demo customers billed for this month, four in five paid; an unpaid invoice of one."""
    await make_admin(conn, "root")
    await demo.load(conn, 12, seed=1)
    await billing_demo.setup(admin.pool, TODAY)
    row = await conn.fetchrow(
        "SELECT d.id, d.number, d.customer_id, d.total, s.open, c.name FROM documents d "
        "JOIN billing_documents_state s USING (id) JOIN customers c ON c.id = d.customer_id "
        "WHERE d.kind = 'invoice' AND s.status IN ('unpaid', 'overdue') ORDER BY d.id LIMIT 1")
    assert row is not None
    return row


def amount(text: str) -> Decimal:
    """"-12.30 EUR" -> Decimal("-12.30")."""
    return Decimal(text.split(maxsplit=1)[0].replace(",", ""))


async def test_an_invoice_is_paid_by_hand_and_its_pdf_downloaded(conn: asyncpg.Connection, admin: Admin,
                                                                 browse: Browse) -> None:
    invoice = await billed(conn, admin)
    tab = await browse()
    page = tab.page
    await tab.login("root")
    await tab.goto(f"/admin/customers/{invoice['customer_id']}")
    async with page.expect_navigation(url=f"**/admin/customers/{invoice['customer_id']}/billing"):
        await page.click("nav.tabs a:text-is('Billing')")
    assert invoice["name"] in await tab.h1()
    before = amount(await page.inner_text("#balance"))
    await tab.shot("customer-billing")

    async with page.expect_navigation(url=f"**/admin/finance/documents/{invoice['id']}"):
        await page.click(f"a:text-is('{invoice['number']}')")
    assert invoice["number"] in await tab.h1()
    assert await page.input_value("#pay #f-amount") == str(invoice["open"].quantize(Decimal("0.01"))) or \
        Decimal(await page.input_value("#pay #f-amount")) == invoice["open"]
    await tab.shot("invoice-unpaid")

    await page.select_option("#pay #f-method", "bank_transfer")
    await page.fill("#pay #f-reference", "SEPA 2026-0042")
    await tab.submit("#pay button[type=submit]")
    assert "Payment recorded" in await page.inner_text("p.notice")
    assert (await page.inner_text("h1 .status")).strip() == "paid"
    assert "Record a payment" not in await page.inner_text("main")
    assert "SEPA 2026-0042" in await page.inner_text("main")  # the receipt's line, in what paid it
    await tab.shot("invoice-paid")

    async with page.expect_download() as download_info:
        await page.click("a:text-is('Download PDF')")
    download = await download_info.value
    pdf = SHOTS / "finance-invoice.pdf"
    SHOTS.mkdir(parents=True, exist_ok=True)
    await download.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF") and download.suggested_filename.endswith(".pdf")
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "70", "-singlefile", str(pdf), str(SHOTS / "finance-invoice-pdf")],
                       check=True, timeout=60)
        assert Path(SHOTS / "finance-invoice-pdf.png").exists()

    await tab.goto(f"/admin/customers/{invoice['customer_id']}/billing")
    after = amount(await page.inner_text("#balance"))
    assert after == before + invoice["open"]
    assert await conn.fetchval("SELECT status FROM billing_documents_state WHERE id = $1", invoice["id"]) == "paid"
    await tab.shot("customer-billing-paid")

    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    await phone.goto(f"/admin/finance/documents/{invoice['id']}")
    await phone.shot("invoice-phone")


async def test_a_run_is_previewed_and_confirmed_and_the_reports_drawn(conn: asyncpg.Connection, admin: Admin,
                                                                      tab: Tab) -> None:
    await billed(conn, admin)
    page = tab.page
    page.on("dialog", lambda dialog: dialog.accept())  # the buttons' "are you sure?"
    await tab.login("root")
    await tab.goto("/admin/finance/billing-runs")
    await page.fill("#f-billing_date", periods.add_months(TODAY, 1).isoformat())
    await tab.submit("#new-preview button[type=submit]")
    assert "preview" in await page.inner_text("h1")
    assert await page.locator("table.run-items tbody").count() > 1
    await tab.shot("run-preview")
    await tab.submit("button:text-is('Confirm and issue')")
    assert "the worker is issuing" in await page.inner_text("#issuing")
    await tab.shot("run-confirmed")
    run_id = int(page.url.split("/")[-1].split("?")[0])
    await work(admin, run_id)  # the worker's job
    await page.reload()
    assert (await page.inner_text("h1 .status")).strip() == "issued"
    await tab.shot("run-issued")

    await tab.goto("/admin/finance/invoices")
    await tab.shot("invoices")
    await tab.goto("/admin/finance/transactions")
    assert "All" in await page.inner_text("tfoot")
    await tab.shot("transactions")

    await tab.goto("/admin/finance/reports")
    await page.wait_for_selector("[data-chart=active_services] canvas")
    for name in ("active_services", "mrr", "debt", "payments"):
        await page.wait_for_selector(f"[data-chart={name}] canvas")
        assert "Loading" not in await page.inner_text(f"[data-status={name}]")
    await tab.shot("reports")
    await tab.goto("/admin/finance/settings")
    await tab.shot("settings")

"""What finance hands out, in a real browser: a billed demo customer's billing tab downloads its
statement as PDF (read back with pdftotext: the balance the tab shows), issues a proforma
invoice of its next invoice, and the invoices list exports its CSV; on a phone (390 px) the
finance lists, the billing tab and a document keep to the screen's width, their wide tables
scrolling sideways in their own box. Screenshots in var/screenshots/finance_documents-*.png (the
statement's PDF as finance-statement.pdf, its first page as finance-statement-pdf.png)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from decimal import Decimal

import asyncpg

from admin.billing import money
from tests.integration.admin.conftest import Admin
from tests.integration.browser.conftest import PHONE, SHOTS, Browse, Tab
from tests.integration.browser.test_finance import amount, billed

WIDE = "main .table-wrap"


async def page_width(tab: Tab) -> tuple[int, int]:
    """(the page's scroll width, the viewport's width): equal when nothing widens the page."""
    width: list[int] = await tab.page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    return width[0], width[1]


async def scrolls_inside(tab: Tab) -> int:
    """How many of the page's table boxes are wider inside than on the screen (and so scroll)."""
    n: int = await tab.page.evaluate(
        f"() => [...document.querySelectorAll('{WIDE}')].filter(w => w.scrollWidth > w.clientWidth + 1"
        " && getComputedStyle(w).overflowX === 'auto').length")
    return n


async def test_statement_proforma_and_export_from_the_billing_tab(conn: asyncpg.Connection, admin: Admin,
                                                                    browse: Browse) -> None:
    invoice = await billed(conn, admin)
    customer = invoice["customer_id"]
    tab = await browse()
    page = tab.page
    await tab.login("root")
    await tab.goto(f"/admin/customers/{customer}/billing")
    shown = amount(await page.inner_text("#balance"))
    assert shown == Decimal(await conn.fetchval(
        "SELECT sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END) FROM transactions "
        "WHERE customer_id = $1", customer))
    await tab.shot("billing-tab")

    async with page.expect_download() as download_info:
        await page.click("#statement-pdf button[type=submit]")
    download = await download_info.value
    SHOTS.mkdir(parents=True, exist_ok=True)
    pdf = SHOTS / "finance-statement.pdf"
    await download.save_as(pdf)
    assert download.suggested_filename.startswith("statement-") and pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = " ".join(subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True,
                                       timeout=60).stdout.decode().split())
        assert f"Closing balance {money.format_money(shown, 'EUR')}" in text, text
        assert invoice["number"] in text
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "70", "-singlefile", str(pdf), str(SHOTS / "finance-statement-pdf")],
                       check=True, timeout=60)

    async with page.expect_navigation(url="**/admin/finance/documents/*?done=proforma"):
        await page.click("#proforma button[type=submit]")
    assert "Proforma invoice" in await tab.h1()
    assert "Proforma invoice issued" in await page.inner_text("p.notice")
    number = (await page.inner_text("h1 .mono")).strip()
    assert await page.locator("#pay").count() == 1  # it can be paid from here
    await tab.shot("proforma")
    await tab.goto(f"/admin/customers/{customer}/billing")
    assert amount(await page.inner_text("#balance")) == shown  # a proforma moves no balance
    assert number in await page.inner_text("main")

    await tab.goto("/admin/finance/invoices")
    async with page.expect_download() as download_info:
        await page.click("a.export")
    download = await download_info.value
    assert download.suggested_filename == "invoices.csv"
    path = await download.path()
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    invoices = await conn.fetchval("SELECT count(*) FROM documents WHERE kind = 'invoice'")
    assert len(rows) == invoices and {r["kind"] for r in rows} == {"invoice"}
    assert invoice["number"] in {r["number"] for r in rows}
    await tab.goto("/admin/finance/proformas")
    assert number in await page.inner_text("main table")
    await tab.shot("proformas")


async def test_wide_finance_tables_scroll_inside_their_box_on_a_phone(conn: asyncpg.Connection, admin: Admin,
                                                                      browse: Browse) -> None:
    invoice = await billed(conn, admin)
    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    run = await conn.fetchval("SELECT min(id) FROM billing_runs")
    pages = {"transactions": "/admin/finance/transactions", "invoices": "/admin/finance/invoices",
             "billing-tab": f"/admin/customers/{invoice['customer_id']}/billing",
             "invoice": f"/admin/finance/documents/{invoice['id']}", "runs": "/admin/finance/billing-runs",
             "run": f"/admin/finance/billing-runs/{run}", "receipts": "/admin/finance/receipts"}
    for name, path in pages.items():
        await phone.goto(path)
        scroll_width, width = await page_width(phone)
        assert width == PHONE["width"] and scroll_width <= width, (name, scroll_width, width)
        if name not in ("runs", "receipts"):  # (those fit a phone)
            assert await scrolls_inside(phone) >= 1, name  # wider than the phone: it scrolls in its box
        await phone.shot(f"phone-{name}")
    # A row keeps to one line (its cells are not squeezed into the phone's width).
    await phone.goto(pages["transactions"])
    heights: list[float] = await phone.page.evaluate(
        f"() => [...document.querySelectorAll('{WIDE} tbody tr')].map(r => r.getBoundingClientRect().height)")
    line: float = await phone.page.evaluate(
        f"() => parseFloat(getComputedStyle(document.querySelector('{WIDE} tbody td')).lineHeight)")
    assert len(heights) > 20 and max(heights) < 2 * line, (line, sorted(set(heights)))
    # Scrolled sideways, the table moves inside its box and the page stays where it is.
    await phone.goto(pages["transactions"])
    moved = await phone.page.evaluate(
        f"() => {{ const w = document.querySelector('{WIDE}'); w.scrollLeft = 400;"
        " return [w.scrollLeft, window.scrollX]; }")
    assert moved[0] > 0 and moved[1] == 0
    await phone.shot("phone-transactions-scrolled", full_page=False)

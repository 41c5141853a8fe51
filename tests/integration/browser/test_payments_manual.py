"""Finance -> Payments in a real browser: a cashier finds a customer as it types, records its
payment of an invoice and lands on the payment with its receipt; mass entry marks the wrong row
and records nothing until it is right, then all; a financial manager takes a payment back and
adds a payment type; the list on a phone. Screenshots in var/screenshots/<test>-<page>.png."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import asyncpg

from admin.payments import reference
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import PHONE, Browse
from tests.integration.browser.test_finance import billed

TODAY = dt.datetime.now(dt.UTC).date()


async def test_a_cashier_records_a_payment_of_an_invoice(conn: asyncpg.Connection, admin: Admin,
                                                         browse: Browse) -> None:
    invoice = await billed(conn, admin)
    await make_admin(conn, "till", "cashier")
    login = await conn.fetchval("SELECT login FROM services WHERE customer_id = $1 LIMIT 1", invoice["customer_id"])
    tab = await browse()
    page = tab.page
    await tab.login("till")
    menu = await page.inner_text("nav.side")
    assert "Payments" in menu and "Invoices" not in menu and "Transactions" not in menu
    async with page.expect_navigation(url="**/admin/finance/payments"):
        await page.click("nav.side a:text-is('Payments')")
    await tab.shot("list-empty")
    async with page.expect_navigation(url="**/admin/finance/payments/new"):
        await page.click("a:text-is('Add payment')")
    await page.fill("#f-q", login[:-1])  # as it is typed: the matches come
    await page.wait_for_selector(f"#customer-hits a[href$='customer_id={invoice['customer_id']}']")
    await tab.shot("search")
    async with page.expect_navigation(url=f"**/admin/finance/payments/new?customer_id={invoice['customer_id']}"):
        await page.click(f"#customer-hits a[href$='customer_id={invoice['customer_id']}']")
    shown = await page.inner_text(".picked")
    assert invoice["name"] in shown and reference.printed(reference.for_customer(invoice["customer_id"])) in shown
    await page.fill("#f-amount", str(invoice["open"].quantize(Decimal("0.01"))))
    await page.select_option("#f-target", f"doc:{invoice['id']}")
    await page.fill("#f-receipt_number", "R-7701")
    await tab.shot("form")
    await tab.submit("#payment button[type=submit]")
    assert "Payment recorded" in await page.inner_text("p.notice")
    main = await page.inner_text("main")
    assert "R-7701" in main and invoice["number"] in main and "Take back" not in main
    await tab.shot("recorded")
    async with page.expect_download() as download:
        await page.click("a:text-is('Receipt (PDF)')")
    assert (await download.value).suggested_filename.startswith("receipt-")
    assert await conn.fetchval("SELECT status FROM billing_documents_state WHERE id = $1", invoice["id"]) == "paid"
    # Another finance page is not the cashier's.
    tab.expect_error(r"status of 403 .*/admin/finance/invoices")
    await tab.goto("/admin/finance/invoices", status=403)


async def test_mass_entry_marks_the_wrong_row_then_records_all(conn: asyncpg.Connection, admin: Admin,
                                                               browse: Browse) -> None:
    await billed(conn, admin)
    await make_admin(conn, "till", "cashier")
    before = await conn.fetchval("SELECT count(*) FROM payments")  # the demo's own (bank transfers)
    numbers = [r["number"] for r in await conn.fetch("SELECT number FROM customers ORDER BY id LIMIT 3")]
    tab = await browse()
    page = tab.page
    await tab.login("till")
    await tab.goto("/admin/finance/payments/mass?rows=5")
    for i, (number, amount) in enumerate(zip(numbers, ("12.00", "7,5", "30.00"), strict=True)):
        await page.fill(f"input[name='customer.{i}']", number)
        await page.fill(f"input[name='amount.{i}']", amount)
    await page.select_option("select[name='type.2']", "cheque")
    await page.fill("input[name='receipt_number.0']", "B-1")
    tab.expect_error(r"status of 422 .*/admin/finance/payments/mass")  # the grid with its errors
    await tab.submit("#mass button[type=submit]")
    assert "Nothing was recorded: 1 row to correct" in await page.inner_text(".banner")
    assert "must be an amount" in await page.inner_text("#row-1")
    assert await page.input_value("input[name='amount.2']") == "30.00"  # what was typed stays
    assert await conn.fetchval("SELECT count(*) FROM payments WHERE created_by = 'till'") == 0
    await tab.shot("mass-error")
    await page.fill("input[name='amount.1']", "7.50")
    await tab.submit("#mass button[type=submit]")
    assert "3 payments recorded" in await page.inner_text("p.notice")
    assert await page.locator("table.payments tbody tr").count() == before + 3
    await tab.shot("mass-recorded")
    assert await conn.fetchval("SELECT sum(amount) FROM payments WHERE created_by = 'till'") == Decimal("49.50")


async def test_a_payment_is_taken_back_and_a_type_added(conn: asyncpg.Connection, admin: Admin,
                                                        browse: Browse) -> None:
    invoice = await billed(conn, admin)
    await make_admin(conn, "boss", "finance")
    tab = await browse()
    page = tab.page
    page.on("dialog", lambda dialog: dialog.accept())  # "are you sure?"
    await tab.login("boss")
    await tab.goto(f"/admin/finance/payments/new?customer_id={invoice['customer_id']}")
    await page.fill("#f-amount", "5.00")
    await page.select_option("#f-type", "card")
    await tab.submit("#payment button[type=submit]")
    await page.fill("#reverse #f-reason", "charged back by the bank")
    await tab.submit("#reverse button[type=submit]")
    assert "taken back" in await tab.h1()
    assert "charged back by the bank" in await page.inner_text("main")
    await tab.shot("taken-back")
    await tab.goto("/admin/finance/payments")
    assert await page.locator("table.payments tr.taken-back").count() == 1
    await tab.goto("/admin/finance/payments/types")
    await page.fill("#add-type #f-code", "voucher")
    await page.fill("#add-type #f-name", "Gift voucher")
    await tab.submit("#add-type button[type=submit]")
    assert "Payment type added" in await page.inner_text("p.notice")
    assert await page.input_value("#f-name-voucher") == "Gift voucher"
    await tab.shot("types")


async def test_the_list_on_a_phone(conn: asyncpg.Connection, admin: Admin, browse: Browse) -> None:
    invoice = await billed(conn, admin)
    await make_admin(conn, "till", "cashier")
    tab = await browse(viewport=PHONE, is_mobile=True)
    await tab.login("till")
    await tab.goto(f"/admin/finance/payments/new?customer_id={invoice['customer_id']}")
    await tab.shot("phone-form")
    await tab.page.fill("#f-amount", "1.00")
    await tab.submit("#payment button[type=submit]")
    await tab.goto("/admin/finance/payments")
    width = await tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, width
    await tab.shot("phone-list")

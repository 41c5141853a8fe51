"""Direct debit in a real browser, as an operator does it: the creditor's settings saved, a mandate
refused for a mistyped IBAN and then added, a batch previewed and made for the first collection
date, its pain.008 file downloaded (valid against the official XSD), its collections settled on
their date, and the bank's pain.002 uploaded, which fails one collection and takes its payment
back; on a phone (390 px) the pages keep to the screen's width. Screenshots in
var/screenshots/direct_debit_*.png (the files sent and read as payments_direct_debit-*.xml)."""

from __future__ import annotations

import datetime as dt

import asyncpg
from playwright.async_api import Dialog

from admin.payments import direct_debit as dd
from tests.integration.admin.conftest import Admin
from tests.integration.browser.conftest import PHONE, SHOTS, Browse
from tests.integration.browser.test_finance import billed
from tests.integration.browser.test_finance_documents import page_width
from tests.unit.payments.test_direct_debit import assert_valid_pain008, pain002, tx_status

TODAY = dt.datetime.now(dt.UTC).date()
BASE = "/admin/finance/direct-debit"
IBAN = "DE89370400440532013000"


async def unpaid_customers(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT DISTINCT c.id, c.number, c.name FROM documents d JOIN billing_documents_state s USING (id) "
        "JOIN customers c ON c.id = d.customer_id WHERE d.kind = 'invoice' AND s.status IN ('unpaid', 'overdue') "
        "ORDER BY c.id"))


async def test_direct_debit_settings_mandate_batch_settlement_and_a_reject(conn: asyncpg.Connection, admin: Admin,
                                                              browse: Browse) -> None:
    await billed(conn, admin)
    unpaid = await unpaid_customers(conn)
    assert len(unpaid) >= 2
    tab = await browse()
    page = tab.page
    page.on("dialog", lambda dialog: dialog.accept())  # the buttons' "are you sure?"
    tab.expect_error(r"status of 422 .*/direct-debit/(settings|mandates)\)")  # the refused forms, on purpose
    await tab.login("root")
    await tab.goto(BASE)
    assert "settings are not complete" in await page.inner_text("main")
    await page.click("#dd-tabs a:text-is('Settings')")
    await page.fill("#f-creditor_id", "DE98 ZZZ 09999999998")
    await page.fill("#f-creditor_name", "Lastmile Netz GmbH")
    await page.fill("#f-iban", "DE02 1203 0000 0000 2020 51")
    await tab.submit("#settings button[type=submit]")
    assert "the check digits (98) do not match" in await page.inner_text("#e-creditor_id")
    await tab.shot("settings-refused")
    await page.fill("#f-creditor_id", "DE98ZZZ09999999999")
    await tab.submit("#settings button[type=submit]")
    assert "Saved." in await page.inner_text("p.notice")
    assert await page.input_value("#f-bic") == "BYLADEM1001"  # derived from the IBAN
    await tab.shot("settings")

    first = unpaid[0]
    await page.click("#dd-tabs a:text-is('Mandates')")
    await page.fill("#f-customer", first["number"])
    await page.fill("#f-holder", first["name"])
    await page.fill("#f-iban", "DE89 3704 0044 0532 0130 01")
    await tab.submit("#new-mandate button[type=submit]")
    assert "the check digits (89) do not match the rest" in await page.inner_text("#e-iban")
    await tab.shot("mandate-refused")
    await page.fill("#f-iban", "DE89 3704 0044 0532 0130 00")
    await tab.submit("#new-mandate button[type=submit]")
    assert "Mandate added" in await page.inner_text("p.notice")
    assert "COBADEFFXXX" in await page.inner_text("main") and f"LM-{first['number']}-1" in await tab.h1()
    await tab.shot("mandate")
    for c in unpaid[1:]:
        await conn.execute("INSERT INTO sepa_mandates (customer_id, reference, iban, holder, signed_on) "
                           "VALUES ($1, $2, $3, $4, '2026-01-15')", c["id"], f"M-{c['id']}", IBAN, c["name"])
    await tab.goto(f"{BASE}/mandates")
    assert await page.locator("#mandates tbody tr").count() == len(unpaid)
    await tab.shot("mandates")

    await page.click("#dd-tabs a:text-is('Batches')")
    date = dd.earliest_collection(TODAY, 2).isoformat()
    assert await page.input_value("#f-collection_date") == date
    due = await conn.fetchval("SELECT max(due_on) FROM documents WHERE kind = 'invoice'")  # this month's invoices
    await page.fill("#f-due_by", due.isoformat())
    await tab.submit("#new-batch button[type=submit]")
    preview = await page.inner_text("#preview")
    assert f"{len(unpaid)} invoice" in preview and f"collected on {date}" in preview
    await tab.shot("preview")
    await tab.submit("#preview button[type=submit]")
    assert "Batch made" in await page.inner_text("p.notice")
    assert await page.locator("#collections .status.s-pending").count() == len(unpaid)
    await tab.shot("batch")
    async with page.expect_download() as download_info:
        await page.click("#download")
    download = await download_info.value
    SHOTS.mkdir(parents=True, exist_ok=True)
    saved = SHOTS / "payments_direct_debit-pain008.xml"
    await download.save_as(saved)
    assert download.suggested_filename.startswith("pain.008-LMDD")
    assert_valid_pain008(saved.read_bytes())

    await conn.execute("UPDATE dd_batches SET collection_date = $1", TODAY)  # as if its date had come
    await page.reload()
    await tab.submit("#settle-batch button[type=submit]")
    assert f"{len(unpaid)} collections settled" in await page.inner_text("p.notice")
    assert await page.locator("#collections .status.s-active").count() == len(unpaid)
    await tab.shot("batch-settled")

    e2e = await conn.fetchval("SELECT end_to_end_id FROM dd_collections WHERE customer_id = $1", first["id"])
    report = SHOTS / "payments_direct_debit-pain002.xml"
    report.write_bytes(pain002("<OrgnlPmtInfAndSts><OrgnlPmtInfId>x</OrgnlPmtInfId>" + tx_status(e2e, "RJCT", "AC04")
                               + "</OrgnlPmtInfAndSts>"))
    await page.click("a:text-is('Import a return file')")
    await page.set_input_files("#f-file", str(report))
    await tab.submit("#upload button[type=submit]")
    applied = await page.inner_text("#applied")
    assert "0 rejected, 1 returned (payments taken back)" in applied and "AC04 — account closed" in applied
    await tab.shot("return-imported")
    await tab.goto(f"{BASE}/batches/{await conn.fetchval('SELECT id FROM dd_batches')}?status=failed")
    row = await page.inner_text(f"#collections tbody tr:has-text('{e2e}')")
    assert "failed" in row and "payment taken back" in row
    await tab.shot("batch-failed")
    status = await conn.fetchval("SELECT s.status FROM dd_collections x JOIN billing_documents_state s "
                                 "ON s.id = x.document_id WHERE x.end_to_end_id = $1", e2e)
    assert status in ("unpaid", "overdue")


async def test_direct_debit_pages_fit_a_phone(conn: asyncpg.Connection, admin: Admin, browse: Browse) -> None:
    await billed(conn, admin)
    unpaid = await unpaid_customers(conn)
    for c in unpaid:
        await conn.execute("INSERT INTO sepa_mandates (customer_id, reference, iban, holder, signed_on) "
                           "VALUES ($1, $2, $3, $4, '2026-01-15')", c["id"], f"M-{c['id']}", IBAN, c["name"])
    await conn.execute("UPDATE sepa_settings SET creditor_id = 'DE98ZZZ09999999999', creditor_name = 'Lastmile', "
                       "iban = $1", IBAN)
    tab = await browse(viewport=PHONE, is_mobile=True)
    asked: list[str] = []

    async def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    tab.page.on("dialog", confirm)
    await tab.login("root")
    due = await conn.fetchval("SELECT max(due_on) FROM documents WHERE kind = 'invoice'")
    await tab.goto(f"{BASE}?collection_date={dd.earliest_collection(TODAY, 2).isoformat()}&due_by={due.isoformat()}")
    await tab.submit("#preview button[type=submit]")
    assert asked and asked[0].startswith("Make a batch of")
    batch = await conn.fetchval("SELECT id FROM dd_batches")
    mandate = await conn.fetchval("SELECT min(id) FROM sepa_mandates")
    for name, path in (("phone-batches", BASE), ("phone-batch", f"{BASE}/batches/{batch}"),
                       ("phone-mandates", f"{BASE}/mandates"), ("phone-mandate", f"{BASE}/mandates/{mandate}"),
                       ("phone-returns", f"{BASE}/returns"), ("phone-settings", f"{BASE}/settings")):
        await tab.goto(path)
        scroll, width = await page_width(tab)
        assert scroll <= width, (path, scroll, width)
        await tab.shot(name)

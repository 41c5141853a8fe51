"""Bank statements in a real browser (issue 13's test): a bank's CSV statement is uploaded, its
columns are mapped on the mapping screen (the guess checked, one select changed, the mapping
named), the lines are matched (by the payment reference and by the invoice number), the one
that did not match is paired from the review queue with the customer found by name, and that
customer's balance changes. Screenshots in var/screenshots/payments_statements-*.png."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import asyncpg
from playwright.async_api import FilePayload

from admin.billing import ledger
from admin.payments import reference
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import PHONE, Browse

TODAY = dt.datetime.now(dt.UTC).date()


def amount(text: str) -> Decimal:
    """"-31.00 EUR" -> Decimal("-31.00")."""
    return Decimal(text.split(maxsplit=1)[0].replace(",", ""))


async def customers(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Three customers, each with an open invoice of 31.00."""
    partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('Main') RETURNING id")
    out = []
    for n, name in enumerate(("Anna Berger", "Karl Huber", "Jürgen Müller"), start=1):
        cid = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, $3) RETURNING id",
                                  partner, f"C{n:05d}", name)
        async with conn.transaction():
            [invoice] = await ledger.issue(conn, [ledger.NewDocument(
                "invoice", cid, partner, "EUR", TODAY, "manual", (ledger.NewLine("Internet", Decimal("31.00")),),
                due_on=TODAY + dt.timedelta(days=14))])
        out.append({"id": cid, "name": name, "invoice": invoice.number})
    await make_admin(conn, "root")
    return out


def statement(people: list[dict[str, Any]]) -> bytes:
    """A German bank's export: two lines before the header, a semicolon, a decimal comma, dates
    as DD.MM.YYYY, and the amount in the last column but one."""
    anna, karl, _ = people
    day = TODAY.strftime("%d.%m.%Y")
    rows = [
        "Umsätze Girokonto;DE89 3704 0044 0532 0130 00", "",
        "Buchungstag;Valuta;Gegenüber;Verwendungszweck;Betrag;Währung",
        f"{day};{day};Anna Berger;Internet {reference.printed(reference.for_customer(anna['id']))};31,00;EUR",
        f"{day};{day};K. Huber;Rechnung {karl['invoice']};31,00;EUR",
        f"{day};{day};MUELLER JUERGEN;Internet Mai;31,00;EUR",
        f"{day};{day};Telco Supplies GmbH;Kabel;-120,00;EUR",
    ]
    return ("\n".join(rows) + "\n").encode("utf-8")


async def test_a_csv_statement_is_mapped_matched_and_its_last_line_paired(conn: asyncpg.Connection, admin: Admin,
                                                                         browse: Browse) -> None:
    people = await customers(conn)
    # Jürgen Müller's name is also another customer's: "MUELLER JUERGEN" tells them apart only with a person
    await conn.execute("INSERT INTO customers (partner_id, number, name) SELECT partner_id, 'C00009', name "
                       "FROM customers WHERE number = 'C00003'")
    juergen = people[2]
    tab = await browse()
    page = tab.page
    await tab.login("root")
    await tab.goto(f"/admin/customers/{juergen['id']}/billing")
    before = amount(await page.inner_text("#balance"))
    assert before == Decimal("-31.00")

    await tab.goto("/admin/finance/bank-statements")
    assert await tab.h1() == "Bank statements"
    await tab.shot("statements-empty")
    await page.set_input_files("#f-file", files=FilePayload(name="umsaetze.csv", mimeType="text/csv",
                                                            buffer=statement(people)))
    await page.select_option("#f-mapping", "new")
    await tab.submit("#upload button[type=submit]")
    assert await tab.h1() == "A new CSV mapping from umsaetze.csv"
    # the guess: semicolon, two lines skipped, a header, a decimal comma, DD.MM.YYYY
    assert await page.input_value("#f-delimiter") == ";"
    assert await page.input_value("#f-skip_lines") == "2"
    assert await page.is_checked("input[name=decimal_comma]")
    assert await page.input_value("select[name=col_0]") == "date"
    assert await page.input_value("select[name=col_4]") == "amount"
    assert "Anna Berger" in await page.inner_text("#columns")
    await tab.shot("mapping-guessed")
    # "Gegenüber" (the other party) is no header word the guess knows: the person says which column it is
    assert await page.input_value("select[name=col_1]") == ""  # the value date is no field
    assert await page.input_value("select[name=col_2]") == ""
    await page.select_option("select[name=col_2]", "payer_name")
    await page.fill("#f-name", "Musterbank CSV")
    await tab.shot("mapping-chosen")
    await tab.submit("#save")

    assert await tab.h1() == f"Bank statement #{await conn.fetchval('SELECT max(id) FROM bank_statements')}"
    notice = await page.inner_text("#imported")
    assert "4 lines" in notice and "2 matched" in notice and "1 waiting" in notice
    statuses = [s.strip() for s in await page.locator("#lines tbody tr td:nth-child(6)").all_inner_texts()]
    assert statuses == ["matched", "matched", "new", "ignored"]
    await page.click("#line-1 details.why summary")  # the explanation opens under the score
    assert "payment reference" in await page.inner_text("#line-1 details.why ul")
    await tab.shot("statement")

    await tab.goto("/admin/finance/bank-statement-lines")
    assert "MUELLER JUERGEN" in await page.inner_text("#review")
    await tab.shot("review-queue")
    async with page.expect_navigation():
        await page.click("#review a.button:text-is('Pair…')")
    assert "has the name of 2 customers" in await page.inner_text("#why")
    await page.fill("#f-q", "Müller")
    await tab.submit("#find button[type=submit]")
    assert await page.locator("#candidates tbody tr").count() == 2
    await tab.shot("line-search")
    row = page.locator("#candidates tbody tr", has_text=juergen["name"]).filter(has_text="C00003")
    async with page.expect_navigation():
        await row.locator("button:text-is('Pair')").click()
    assert "Paired" in await page.inner_text("#done")
    assert "Nothing waits" in await page.inner_text("#review")
    await tab.shot("review-done")

    await tab.goto(f"/admin/customers/{juergen['id']}/billing")
    after = amount(await page.inner_text("#balance"))
    assert after == before + Decimal("31.00") == Decimal("0.00")
    await tab.shot("customer-paid")

    await tab.goto("/admin/finance/bank-statements")
    assert "umsaetze.csv" in await page.inner_text("#statements")
    await tab.shot("statements")
    await tab.goto("/admin/finance/bank-mappings")
    assert "booking date 1, amount (signed) 5" in await page.inner_text("#mappings")
    await tab.shot("mappings")
    async with page.expect_navigation():
        await page.click("#mappings a:text-is('Musterbank CSV')")
    assert await page.input_value("select[name=col_2]") == "payer_name"
    await tab.shot("mapping-edit")

    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    await phone.goto(f"/admin/finance/bank-statements/{await conn.fetchval('SELECT max(id) FROM bank_statements')}")
    await phone.shot("statement-phone")

"""Percentage mode's commissions (issue 18) over a real database and the admin on 127.0.0.1: the
worked examples to the cent (an invoice paid in two parts, a tariff's and a fee's rates, a
payment taken back, a partner in direct mode, a mode switched from next month), the worker's
job, statements (idempotent), payouts (idempotent, never above what is owed), the owed report,
the pages and CSV, the API, the operations log, and a partner's administrator who sees only its
own partner's."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from admin.auth.store import Connection
from admin.billing import ledger, taxes
from admin.partners import commissions as rule
from admin.partners import commissions_store as store
from admin.partners import jobs
from admin.payments import record
from tests.conftest import one
from tests.integration.admin.conftest import Admin, api_key, call, logged_in, make_admin

D = Decimal
TODAY = dt.datetime.now(dt.UTC).date()
MONTH = TODAY.replace(day=1)
NEXT = rule.next_month(MONTH)
VAT = taxes.TaxGroup("VAT 20 %", (taxes.TaxRate("VAT", D(20)),))


async def partner(conn: Connection, name: str, percent: str = "10", mode: str | None = "percentage",
                  starts_on: dt.date = MONTH) -> int:
    pid = int(await conn.fetchval("INSERT INTO partners (name, commission_percent) VALUES ($1, $2) RETURNING id",
                                  name, D(percent)))
    if mode is not None:
        await conn.execute("INSERT INTO partner_modes (partner_id, starts_on, mode) VALUES ($1, $2, $3)",
                           pid, starts_on, mode)
    return pid


async def customer(conn: Connection, partner_id: int, number: str) -> tuple[int, int, int]:
    """A customer of the partner with a service on a tariff of its own: (customer, service, tariff)."""
    cid = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, $3) RETURNING id",
                              partner_id, number, f"Customer {number}")
    tariff = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ($1, 1, 1) "
                                 "RETURNING id", f"T-{number}")
    service = await conn.fetchval("INSERT INTO services (customer_id, tariff_id, login, password) "
                                  "VALUES ($1, $2, $3, 'pw') RETURNING id", cid, tariff, f"login-{number}")
    return int(cid), int(service), int(tariff)


async def invoice(conn: Connection, customer_id: int, partner_id: int, *lines: ledger.NewLine) -> int:
    async with conn.transaction():
        [doc] = await ledger.issue(conn, [ledger.NewDocument("invoice", customer_id, partner_id, "EUR", TODAY,
                                                             "manual", lines, due_on=TODAY)])
    return doc.id


async def pay(conn: Connection, customer_id: int, amount: str, document_id: int | None = None,
              on: dt.date = TODAY) -> record.Recorded:
    return await record.record(conn, record.NewPayment(customer_id, D(amount), on, "cash", document_id=document_id),
                               dunning=False)


async def compute(conn: Connection) -> int:
    now = dt.datetime.now(dt.UTC)
    async with conn.transaction():
        return await store.compute(conn, now - dt.timedelta(days=1), now + dt.timedelta(minutes=1))


async def amounts(conn: Connection, partner_id: int) -> list[Decimal]:
    return [r["amount"] for r in await conn.fetch(
        "SELECT amount FROM partner_commissions WHERE partner_id = $1 ORDER BY allocation_id", partner_id)]


async def test_an_invoice_paid_in_two_parts_then_the_second_taken_back(conn: asyncpg.Connection) -> None:
    reseller = await partner(conn, "Reseller")
    cid, service, _ = await customer(conn, reseller, "C1")
    doc = await invoice(conn, cid, reseller, ledger.NewLine("Internet", D("100.00"), VAT, service_id=service))
    assert await conn.fetchval("SELECT total FROM documents WHERE id = $1", doc) == D("120.00")
    await pay(conn, cid, "50.00", doc)
    second = await pay(conn, cid, "70.00", doc)
    assert await compute(conn) == 2
    assert await amounts(conn, reseller) == [D("4.17"), D("5.83")]
    assert sum(await amounts(conn, reseller)) == D("10.00")
    row = await one(conn, "SELECT base, earned_on, currency, document_id, detail FROM partner_commissions "
                         "ORDER BY id LIMIT 1")
    assert (row["base"], row["earned_on"], row["currency"], row["document_id"]) == (D("41.6667"), TODAY, "EUR", doc)
    assert row["detail"][0]["category"] == "service" and row["detail"][0]["percent"] == "10.0000"
    assert await compute(conn) == 0  # idempotent
    await record.reverse(conn, second.id, "the card payment was refunded", dunning=False)
    assert await compute(conn) == 1
    assert await amounts(conn, reseller) == [D("4.17"), D("5.83"), D("-5.83")]
    assert sum(await amounts(conn, reseller)) == D("4.17")


async def test_a_tariffs_rate_on_one_line_and_the_fee_rate_on_another(conn: asyncpg.Connection) -> None:
    reseller = await partner(conn, "Reseller")
    cid, service, tariff = await customer(conn, reseller, "C1")
    await conn.execute("INSERT INTO partner_commission_rates (partner_id, tariff_id, category, percent) "
                       "VALUES ($1, $2, NULL, 15), ($1, NULL, 'fee', 5)", reseller, tariff)
    doc = await invoice(conn, cid, reseller, ledger.NewLine("Internet", D("100.00"), VAT, service_id=service),
                        ledger.NewLine("Late fee", D("10.00"), VAT, kind="fee"))
    await pay(conn, cid, "132.00", doc)
    await compute(conn)
    assert await amounts(conn, reseller) == [D("15.50")]  # 100 x 15 % + 10 x 5 %
    detail = await conn.fetchval("SELECT detail FROM partner_commissions")
    assert [(d["category"], d["tariff_id"], d["base"], d["percent"]) for d in detail] == [
        ("service", tariff, "100.0000", "15.0000"), ("fee", None, "10.0000", "5.0000")]


async def test_direct_mode_earns_nothing_and_a_mode_from_next_month_only_from_then(conn: asyncpg.Connection) -> None:
    direct = await partner(conn, "Direct", mode=None)
    later = await partner(conn, "Later", starts_on=NEXT)
    d_cid, d_service, _ = await customer(conn, direct, "D1")
    l_cid, l_service, _ = await customer(conn, later, "L1")
    d_doc = await invoice(conn, d_cid, direct, ledger.NewLine("Internet", D("100.00"), VAT, service_id=d_service))
    l_doc = await invoice(conn, l_cid, later, ledger.NewLine("Internet", D("100.00"), VAT, service_id=l_service))
    await pay(conn, d_cid, "120.00", d_doc)
    await pay(conn, l_cid, "60.00", l_doc)  # today: 'direct' still
    assert await compute(conn) == 0
    await pay(conn, l_cid, "60.00", l_doc, on=NEXT)
    assert await compute(conn) == 1
    row = await one(conn, "SELECT partner_id, amount, earned_on FROM partner_commissions")
    assert (row["partner_id"], row["amount"], row["earned_on"]) == (later, D("5.00"), NEXT)


async def test_a_prepaid_charge_on_no_document_is_its_tariffs_service(conn: asyncpg.Connection) -> None:
    reseller = await partner(conn, "Reseller")
    cid, service, tariff = await customer(conn, reseller, "C1")
    await conn.execute("INSERT INTO partner_commission_rates (partner_id, tariff_id, percent) VALUES ($1, $2, 20)",
                       reseller, tariff)
    await conn.execute("INSERT INTO transactions (customer_id, direction, kind, amount, currency, posted_on, "
                       "description, service_id) VALUES ($1, 'debit', 'charge', 30, 'EUR', $2, 'Prepaid day', $3)",
                       cid, TODAY, service)
    await pay(conn, cid, "30.00")
    await compute(conn)
    assert await amounts(conn, reseller) == [D("6.00")]


async def test_the_job_reads_after_its_cursor(conn: asyncpg.Connection, admin: Admin,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    reseller = await partner(conn, "Reseller")
    cid, service, _ = await customer(conn, reseller, "C1")
    doc = await invoice(conn, cid, reseller, ledger.NewLine("Internet", D("100.00"), VAT, service_id=service))
    await pay(conn, cid, "120.00", doc)
    monkeypatch.setattr(jobs, "LAG", dt.timedelta(0))  # the allocation is old enough to be read now

    class Log:
        def info(self, *_: Any, **__: Any) -> None:
            pass

    class Ctx:
        pool = admin.pool
        log = Log()

    await jobs.commissions(Ctx())  # type: ignore[arg-type]
    assert await amounts(conn, reseller) == [D("10.00")]
    await jobs.commissions(Ctx())  # type: ignore[arg-type]
    assert await amounts(conn, reseller) == [D("10.00")]
    assert await conn.fetchval("SELECT position FROM event_cursors WHERE name = $1", store.CURSOR) is not None


async def test_statements_and_payouts(conn: asyncpg.Connection) -> None:
    reseller = await partner(conn, "Reseller")
    cid, service, _ = await customer(conn, reseller, "C1")
    doc = await invoice(conn, cid, reseller, ledger.NewLine("Internet", D("100.00"), VAT, service_id=service))
    await pay(conn, cid, "50.00", doc)
    await pay(conn, cid, "70.00", doc)
    await compute(conn)
    async with conn.transaction():
        found, made = await store.issue(conn, reseller, MONTH, today=TODAY, by="test")
    assert len(made) == 1 and found[0]["number"] == f"CS-{reseller}-{MONTH:%Y-%m}"
    assert found[0]["total"] == D("10.00") and found[0]["commissions"] == 2
    async with conn.transaction():
        again, made_again = await store.issue(conn, reseller, MONTH, today=TODAY)
    assert made_again == [] and [r["id"] for r in again] == [found[0]["id"]]
    with pytest.raises(store.CommissionRefused):
        await store.issue(conn, reseller, NEXT, today=TODAY)
    # a late commission of an issued month goes on the next month's statement
    await pay(conn, cid, "1.00")  # unallocated: earns nothing
    async with conn.transaction():
        row, created = await store.record_payout(conn, reseller, D("4.00"), "EUR", TODAY, reference="TR-1", key="k1")
    assert created and row["amount"] == D("4.00")
    async with conn.transaction():
        same, created = await store.record_payout(conn, reseller, D("4.00"), "EUR", TODAY, key="k1")
    assert not created and same["id"] == row["id"]
    with pytest.raises(store.CommissionRefused, match="more than"):
        await store.record_payout(conn, reseller, D("6.01"), "EUR", TODAY)
    with pytest.raises(store.CommissionRefused):
        await store.record_payout(conn, reseller, D("1.001"), "EUR", TODAY)
    [owed] = await store.owed(conn, None)
    assert (owed["earned"], owed["stated"], owed["paid"], owed["owed"]) == (D("10"), D("10"), D("4"), D("6"))


async def test_a_late_commission_joins_the_next_statement(conn: asyncpg.Connection) -> None:
    reseller = await partner(conn, "Reseller", starts_on=(MONTH - dt.timedelta(days=1)).replace(day=1))
    cid, service, _ = await customer(conn, reseller, "C1")
    doc = await invoice(conn, cid, reseller, ledger.NewLine("Internet", D("100.00"), VAT, service_id=service))
    await pay(conn, cid, "120.00", doc)
    await compute(conn)
    last = (MONTH - dt.timedelta(days=1)).replace(day=1)
    await conn.execute("UPDATE partner_commissions SET earned_on = $1", last)
    async with conn.transaction():
        await store.issue(conn, reseller, last, today=TODAY)
    # a commission of last month written after its statement: this month's takes it
    await conn.execute("UPDATE partner_commissions SET statement_id = NULL")
    async with conn.transaction():
        found, made = await store.issue(conn, reseller, MONTH, today=TODAY)
    assert made and found[0]["total"] == D("10.00")


async def world(admin: Admin) -> dict[str, Any]:
    async with admin.pool.acquire() as conn:
        reseller = await partner(conn, "Reseller")
        other = await partner(conn, "Other")
        cid, service, _ = await customer(conn, reseller, "C1")
        ocid, oservice, _ = await customer(conn, other, "O1")
        doc = await invoice(conn, cid, reseller, ledger.NewLine("Internet", D("100.00"), VAT, service_id=service))
        odoc = await invoice(conn, ocid, other, ledger.NewLine("Internet", D("100.00"), VAT, service_id=oservice))
        await pay(conn, cid, "50.00", doc)
        await pay(conn, ocid, "120.00", odoc)
        await compute(conn)
        await make_admin(conn, "alpha", "super", partner_id=reseller)
        keys = {"root": await api_key(conn, "super"), "alpha": await api_key(conn, "super", partner_id=reseller),
                "engineer": await api_key(conn, "engineer"), "manager": await api_key(conn, "manager")}
    return {"reseller": reseller, "other": other, "keys": keys}


async def test_the_api(admin: Admin) -> None:
    w = await world(admin)
    root, alpha = w["keys"]["root"], w["keys"]["alpha"]
    status, body = await call(admin, root, "GET", f"/partners/{w['reseller']}/commissions")
    assert status == 200 and body["month"] == f"{MONTH:%Y-%m}"
    assert [c["amount"] for c in body["items"]] == ["4.17"] and body["totals"] == {"EUR": "4.17"}
    status, body = await call(admin, root, "GET", "/partners/commissions/owed")
    assert status == 200 and {(o["partner_name"], o["owed"]) for o in body} == {("Reseller", "4.17"),
                                                                              ("Other", "10.00")}
    status, body = await call(admin, root, "POST", "/partners/commissions/statements",
                              {"partner_id": w["reseller"], "month": f"{MONTH:%Y-%m}"})
    assert status == 200 and body["statements"][0]["total"] == "4.17" and body["issued"]
    status, again = await call(admin, root, "POST", "/partners/commissions/statements",
                               {"partner_id": w["reseller"], "month": f"{MONTH:%Y-%m}"})
    assert status == 200 and again["issued"] == [] and again["statements"] == body["statements"]
    status, _ = await call(admin, root, "POST", "/partners/commissions/statements",
                           {"partner_id": w["reseller"], "month": "2026-13"})
    assert status == 422
    payout = {"partner_id": w["reseller"], "amount": "4.17", "currency": "EUR", "paid_on": TODAY.isoformat(),
              "reference": "TR 1", "idempotency_key": "p-1", "statement_id": body["statements"][0]["id"]}
    status, made = await call(admin, root, "POST", "/partners/commissions/payouts", payout)
    assert status == 201 and made["amount"] == "4.17"
    status, same = await call(admin, root, "POST", "/partners/commissions/payouts", payout)
    assert status == 201 and same["id"] == made["id"]
    status, over = await call(admin, root, "POST", "/partners/commissions/payouts",
                              {**payout, "idempotency_key": "p-2", "amount": "0.01"})
    assert status == 422 and "more than" in over["errors"]["amount"]
    status, body = await call(admin, root, "GET", "/partners/commissions/owed")
    assert {(o["partner_name"], o["owed"]) for o in body} == {("Reseller", "0.00"), ("Other", "10.00")}
    status, listed = await call(admin, root, "GET", f"/partners/commissions/payouts?partner_id={w['reseller']}")
    assert status == 200 and [p["id"] for p in listed] == [made["id"]]
    status, listed = await call(admin, root, "GET", "/partners/commissions/statements")
    assert status == 200 and listed[0]["paid"] == "4.17"
    # a partner's administrator: its own only, and no writes
    status, body = await call(admin, alpha, "GET", "/partners/commissions/owed")
    assert [o["partner_name"] for o in body] == ["Reseller"]
    status, _ = await call(admin, alpha, "GET", f"/partners/{w['other']}/commissions")
    assert status == 404
    status, body = await call(admin, alpha, "GET", "/partners/commissions/statements")
    assert status == 200 and all(s["partner_id"] == w["reseller"] for s in body)
    status, _ = await call(admin, alpha, "POST", "/partners/commissions/statements",
                           {"partner_id": w["reseller"], "month": f"{MONTH:%Y-%m}"})
    assert status == 403
    status, _ = await call(admin, w["keys"]["engineer"], "GET", "/partners/commissions/owed")
    assert status == 403  # no finance.view
    status, _ = await call(admin, w["keys"]["manager"], "GET", "/partners/commissions/owed")
    assert status == 200
    status, _ = await call(admin, w["keys"]["manager"], "POST", "/partners/commissions/payouts",
                           {**payout, "idempotency_key": "p-3"})
    assert status == 403  # finance.view without finance.add
    status, body = await call(admin, root, "POST", "/partners/commissions/payouts",
                              {**payout, "idempotency_key": "p-4", "partner_id": 99999})
    assert status == 422 and body["errors"] == {"partner_id": "no such partner"}
    status, _ = await call(admin, root, "GET", f"/partners/{w['reseller']}/commissions?month=2026-1")
    assert status == 422
    async with admin.pool.acquire() as conn:
        logged = await conn.fetch("SELECT action, object_type FROM operations_log WHERE object_type LIKE 'partner_%' "
                                  "ORDER BY id")
    assert [(r["action"], r["object_type"]) for r in logged] == [("create", "partner_statement"),
                                                                 ("create", "partner_payout")]


async def test_the_pages(admin: Admin) -> None:
    w = await world(admin)
    async with await logged_in(admin) as c:
        status, text = await c.get("/admin/partners/commissions")
        assert status == 200 and "Reseller" in text and "4.17" in text
        status, text = await c.get(f"/admin/partners/commissions/{w['reseller']}")
        assert status == 200 and "4.17" in text and "Issue the statement" in text
        status, text = await c.get(f"/admin/partners/commissions/{w['reseller']}?month=2026-99")
        assert status == 400
        status, text, url = await c.post(f"/admin/partners/commissions/{w['reseller']}/statements",
                                         {"month": f"{MONTH:%Y-%m}"})
        assert status == 200 and "/statements/" in url and f"CS-{w['reseller']}-{MONTH:%Y-%m}" in text
        status, csv_text = await c.get(url.removeprefix(admin.url) + "/csv")
        assert status == 200 and "C1" in csv_text and "4.17" in csv_text
        await c.get(f"/admin/partners/commissions/{w['reseller']}")
        status, text, url = await c.post(f"/admin/partners/commissions/{w['reseller']}/payouts",
                                         {"amount": "5.00", "currency": "EUR", "paid_on": TODAY.isoformat(),
                                          "idempotency_key": "form-1"})
        assert status == 400 and "more than" in text
        status, text, url = await c.post(f"/admin/partners/commissions/{w['reseller']}/payouts",
                                         {"amount": "4.17", "currency": "EUR", "paid_on": TODAY.isoformat(),
                                          "reference": "TR 9", "idempotency_key": "form-1"})
        assert status == 200 and "Payout recorded" in text and "TR 9" in text
        await c.post(f"/admin/partners/commissions/{w['reseller']}/payouts",  # the form sent twice
                     {"amount": "4.17", "currency": "EUR", "paid_on": TODAY.isoformat(), "idempotency_key": "form-1"})
        for path in ("/admin/partners/commissions/statements", "/admin/partners/commissions/payouts"):
            status, text = await c.get(path)
            assert status == 200 and "Reseller" in text
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM partner_payouts") == 1
    alpha = admin.client()
    async with alpha:
        await alpha.login("alpha")
        status, _ = await alpha.get(f"/admin/partners/commissions/{w['other']}")
        assert status == 404
        status, text = await alpha.get(f"/admin/partners/commissions/{w['reseller']}")
        assert status == 200 and "Issue the statement" not in text
        other_statement = 0
        status, _ = await alpha.get(f"/admin/partners/commissions/statements/{other_statement + 999}")
        assert status == 404

"""SEPA direct debit against a real PostgreSQL: mandates (one active per customer), a batch of the
due invoices as a pain.008 file valid against the official XSD (FRST first, RCUR after, the
open amounts, never an invoice twice, never two batches at once), settlement on the collection
date as payments (once, however often it runs), and the bank's answers: a rejected collection
failed with its reason, a paid one's payment taken back and its invoice open again; a hostile
or foreign file refused with nothing written."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import asyncpg
import pytest

from admin import schemas
from admin.auth.store import Connection
from admin.billing import collect, ledger, run
from admin.payments import direct_debit as dd
from admin.payments import direct_debit_service as service
from admin.payments.direct_debit_service import WORKER
from tests.db import test_payments
from tests.db.test_billing import balance, customer
from tests.unit.payments.test_direct_debit import assert_valid_pain008, camt054, pain002, returned_entry, tx_status

D = Decimal
APRIL = dt.date(2026, 4, 1)
TODAY = dt.date(2026, 4, 2)            # a Thursday: with 2 lead days, the first collection date is 8 April (Easter)
ON = dt.date(2026, 4, 16)              # the April invoices' due date (issued 1 April, 15 days to pay)
IBAN = "DE89 3704 0044 0532 0130 00"
pool = test_payments.pool  # a pool over the test's database (a fixture)


async def creditor(conn: Connection) -> None:
    await service.save_settings(conn, {"creditor_id": "DE98ZZZ09999999999", "creditor_name": "Lastmile Netz GmbH",
                                       "iban": "DE02 1203 0000 0000 2020 51"}, WORKER, None)


async def customer_row(conn: Connection, cid: int) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT c.id, c.number, c.name, c.partner_id, b.currency FROM customers c "
                              "JOIN customer_billing b ON b.customer_id = c.id WHERE c.id = $1", cid)
    assert row is not None
    return row


async def mandate(conn: Connection, cid: int, *, signed: dt.date = dt.date(2026, 3, 1),
                  reference: str = "") -> int:
    return await service.add_mandate(conn, await customer_row(conn, cid),
                                     service.MandateIn(IBAN, f"Holder {cid}", signed, reference=reference), WORKER,
                                     None, today=TODAY)


async def billed(pool: asyncpg.Pool, n: int) -> list[int]:
    """``n`` customers (31.00 a month), April invoiced, each with a mandate; the creditor set."""
    async with pool.acquire() as conn:
        cids = [await customer(conn, i, start=APRIL) for i in range(1, n + 1)]
    await run.run(pool, APRIL)
    async with pool.acquire() as conn:
        await creditor(conn)
        for cid in cids:
            await mandate(conn, cid)
    return cids


async def status(conn: Connection, document_id: int) -> str:
    return str(await conn.fetchval("SELECT status FROM billing_documents_state WHERE id = $1", document_id))


async def invoice_of(conn: Connection, cid: int) -> int:
    return int(await conn.fetchval("SELECT id FROM documents WHERE kind = 'invoice' AND customer_id = $1", cid))


async def counts(conn: Connection) -> tuple[int, ...]:
    """What a refused change must leave as it was."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM dd_batches), (SELECT count(*) FROM dd_collections), "
        "(SELECT count(*) FILTER (WHERE status = 'failed') FROM dd_collections), (SELECT count(*) FROM payments), "
        "(SELECT count(*) FROM payment_reversals), (SELECT count(*) FROM operations_log), "
        "(SELECT count(*) FROM transactions)")
    assert row is not None
    return tuple(row)


async def one(conn: Connection, query: str, *args: object) -> asyncpg.Record:
    row = await conn.fetchrow(query, *args)
    assert row is not None, query
    return row


# -- mandates ---------------------------------------------------------------------------------------

async def test_a_customer_has_one_active_mandate_with_a_checked_iban(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=APRIL)
        row = await customer_row(conn, cid)
        with pytest.raises(schemas.Invalid) as refused:
            await service.add_mandate(conn, row, service.MandateIn("DE89370400440532013001", "", dt.date(2026, 5, 1),
                                                                   bic="XYZ", reference="has space"), WORKER, None,
                                      today=TODAY)
        assert set(refused.value.errors) == {"iban", "bic", "holder", "signed_on", "reference"}
        assert "check digits (89) do not match" in refused.value.errors["iban"]
        first = await mandate(conn, cid)
        got = await one(conn, "SELECT * FROM sepa_mandates WHERE id = $1", first)
        assert (got["reference"], got["iban"], got["bic"], got["holder"]) == (
            "LM-C00001-1", "DE89370400440532013000", "COBADEFFXXX", f"Holder {cid}")
        with pytest.raises(schemas.Invalid, match="has the active mandate LM-C00001-1"):
            await mandate(conn, cid)
        with pytest.raises(asyncpg.UniqueViolationError, match="sepa_mandates_one_active"):
            await conn.execute("INSERT INTO sepa_mandates (customer_id, reference, iban, holder, signed_on) "
                               "VALUES ($1, 'X-2', 'DE89370400440532013000', 'x', '2026-03-01')", cid)
        m = await one(conn, "SELECT m.*, c.partner_id FROM sepa_mandates m JOIN customers c "
                            "ON c.id = m.customer_id WHERE m.id = $1", first)
        await service.revoke_mandate(conn, m, WORKER, None)
        with pytest.raises(service.Refused, match="revoked already"):
            await service.revoke_mandate(conn, m, WORKER, None)
        second = await mandate(conn, cid)
        assert await conn.fetchval("SELECT reference FROM sepa_mandates WHERE id = $1", second) == "LM-C00001-2"
        with pytest.raises(schemas.Invalid, match="another mandate has the reference LM-C00001-2"):
            other = await customer(conn, 2, start=APRIL)
            await mandate(conn, other, reference="LM-C00001-2")
        logged = await conn.fetch("SELECT action, object_type FROM operations_log ORDER BY id")
        assert [tuple(r) for r in logged] == [("create", "sepa_mandate"), ("revoke", "sepa_mandate"),
                                              ("create", "sepa_mandate")]


async def test_the_creditor_settings_are_checked(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(schemas.Invalid) as refused:
            await service.save_settings(conn, {"creditor_id": "DE97ZZZ09999999999", "creditor_name": " ",
                                               "iban": "DE89370400440532013001"}, WORKER, None)
        assert set(refused.value.errors) == {"creditor_id", "creditor_name", "iban"}
        await creditor(conn)
        row = await one(conn, "SELECT * FROM sepa_settings")
        assert (row["creditor_id"], row["iban"], row["bic"], row["scheme"], row["lead_days"]) == (
            "DE98ZZZ09999999999", "DE02120300000000202051", "BYLADEM1001", "CORE", 2)
        assert service.complete(row)


# -- batches ----------------------------------------------------------------------------------------

async def test_a_batch_collects_the_open_amounts_of_due_invoices_once(pool: asyncpg.Pool) -> None:
    a, b, c = await billed(pool, 3)
    async with pool.acquire() as conn:
        partly = await invoice_of(conn, b)
        await ledger.record_payment(conn, b, D("10.00"), APRIL, method="cash", document_id=partly)
        revoked = await one(conn, "SELECT m.*, c.partner_id FROM sepa_mandates m JOIN customers c "
                                      "ON c.id = m.customer_id WHERE m.customer_id = $1", c)
        await service.revoke_mandate(conn, revoked, WORKER, None)
        with pytest.raises(dd.DirectDebitError, match="too soon"):
            await service.make_batch(conn, dt.date(2026, 4, 7), WORKER, None, today=TODAY)
        with pytest.raises(dd.DirectDebitError, match="TARGET2 holiday"):
            await service.make_batch(conn, dt.date(2026, 5, 1), WORKER, None, today=TODAY)
        with pytest.raises(service.Refused, match="nothing to collect on 2026-04-08"):
            await service.make_batch(conn, dt.date(2026, 4, 8), WORKER, None, today=TODAY)  # not due by then
        preview = await service.preview(conn, dt.date(2026, 4, 8), TODAY, due_by=ON)
        assert (preview.count, preview.total, preview.problem, preview.earliest) == (2, D("52.00"), "",
                                                                                    dt.date(2026, 4, 8))
        made = await service.make_batch(conn, dt.date(2026, 4, 8), WORKER, None, today=TODAY, due_by=ON,
                                        now=dt.datetime(2026, 4, 2, 8, 0, tzinfo=dt.UTC))
        assert (made.count, made.total, made.first, made.recurring) == (2, D("52.00"), 2, 0)
        assert made.message_id == f"LMDD20260402080000-{made.batch_id}"
        rows = await conn.fetch("SELECT customer_id, amount, sequence, end_to_end_id, status FROM dd_collections "
                                "ORDER BY id")
        assert [tuple(r) for r in rows] == [
            (a, D("31.00"), "FRST", f"LMDD{made.batch_id}-{await invoice_of(conn, a)}", "pending"),
            (b, D("21.00"), "FRST", f"LMDD{made.batch_id}-{partly}", "pending")]
        batch = await one(conn, "SELECT * FROM dd_batches")
        assert (batch["count"], batch["total"], batch["collection_date"]) == (2, D("52.00"), dt.date(2026, 4, 8))
        assert_valid_pain008(batch["xml"])
        assert "<InstdAmt Ccy=\"EUR\">21.00</InstdAmt>" in batch["xml"] and "<SeqTp>FRST</SeqTp>" in batch["xml"]
        with pytest.raises(service.Refused, match="nothing to collect"):
            await service.make_batch(conn, dt.date(2026, 4, 9), WORKER, None, today=TODAY, due_by=ON)
        with pytest.raises(asyncpg.UniqueViolationError, match="dd_collections_document_open"):
            await conn.execute("INSERT INTO dd_collections (batch_id, mandate_id, customer_id, document_id, amount, "
                               "sequence, end_to_end_id) SELECT batch_id, mandate_id, customer_id, document_id, 1, "
                               "'RCUR', 'other' FROM dd_collections LIMIT 1")
        assert await conn.fetchval("SELECT summary FROM operations_log WHERE object_type = 'dd_batch'") == (
            f"direct-debit batch #{made.batch_id} for 2026-04-08: 2 collections, 52.00 EUR (2 FRST, 0 RCUR)")


async def test_two_batches_made_at_once_collect_each_invoice_once(pool: asyncpg.Pool) -> None:
    await billed(pool, 4)

    async def make() -> service.Made | str:
        async with pool.acquire() as conn:
            try:
                return await service.make_batch(conn, ON, WORKER, None, today=TODAY)
            except service.Refused as e:
                return str(e)

    results = await asyncio.gather(make(), make(), make())
    made = [r for r in results if isinstance(r, service.Made)]
    assert len(made) == 1 and made[0].count == 4
    assert all("nothing to collect" in r for r in results if isinstance(r, str))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(DISTINCT document_id) FROM dd_collections") == 4


async def test_incomplete_settings_make_no_batch(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        before = await counts(conn)
        with pytest.raises(service.Refused, match="settings are not complete"):
            await service.make_batch(conn, ON, WORKER, None, today=TODAY)
        assert "not complete" in (await service.preview(conn, ON, TODAY)).problem
        assert await counts(conn) == before


# -- settlement and returns -------------------------------------------------------------------------

async def test_settlement_pays_the_invoice_once_and_the_next_collection_is_rcur(pool: asyncpg.Pool) -> None:
    a, _ = await billed(pool, 2)
    async with pool.acquire() as conn:
        made = await service.make_batch(conn, ON, WORKER, None, today=TODAY)
        assert (await service.settle(conn, dt.date(2026, 4, 15), WORKER, None)).count == 0  # not yet
    invoice = 0

    async def settle() -> service.Settled:
        async with pool.acquire() as conn:
            return await service.settle(conn, ON, WORKER, None)

    results = await asyncio.gather(settle(), settle(), settle())
    assert sum(r.count for r in results) == 2 and sum((r.total for r in results), D(0)) == D("62.00")
    async with pool.acquire() as conn:
        invoice = await invoice_of(conn, a)
        assert await status(conn, invoice) == "paid" and await balance(conn, a) == D("0.00")
        pay = await one(conn, "SELECT p.*, t.code FROM payments p JOIN payment_types t ON t.id = p.type_id "
                                  "WHERE p.customer_id = $1", a)
        assert (pay["source"], pay["code"], pay["paid_on"], pay["amount"], pay["document_id"], pay["payer"]) == (
            "direct_debit", "direct_debit", ON, D("31.00"), invoice, f"Holder {a}")
        assert pay["collection_id"] == await conn.fetchval(
            "SELECT id FROM dd_collections WHERE customer_id = $1", a)
        assert await conn.fetchval("SELECT count(*) FROM payments") == 2
        assert await conn.fetchval("SELECT count(*) FROM dd_collections WHERE status = 'paid' "
                                   "AND settled_at IS NOT NULL") == 2
        assert (await service.settle(conn, ON, WORKER, None)).count == 0
        assert await conn.fetchval("SELECT count(*) FROM operations_log WHERE object_type = 'dd_collection' "
                                   "AND action = 'payment'") == 2
        # May: the next invoices, collected RCUR on the same mandates
    await run.run(pool, dt.date(2026, 5, 1))
    async with pool.acquire() as conn:
        may = await service.make_batch(conn, dt.date(2026, 5, 18), WORKER, None, today=dt.date(2026, 5, 4))
        assert (may.count, may.first, may.recurring) == (2, 0, 2) and may.batch_id != made.batch_id
        xml = await conn.fetchval("SELECT xml FROM dd_batches WHERE id = $1", may.batch_id)
        assert_valid_pain008(xml)
        assert "<SeqTp>RCUR</SeqTp>" in xml and "<SeqTp>FRST</SeqTp>" not in xml


async def test_a_rejected_collection_fails_and_its_invoice_is_collected_again_frst(pool: asyncpg.Pool) -> None:
    a, b = await billed(pool, 2)
    async with pool.acquire() as conn:
        made = await service.make_batch(conn, ON, WORKER, None, today=TODAY)
        e2e = {r["customer_id"]: r["end_to_end_id"] for r in await conn.fetch("SELECT * FROM dd_collections")}
        report = pain002("<OrgnlPmtInfAndSts><OrgnlPmtInfId>x/FRST</OrgnlPmtInfId>" + tx_status(e2e[a], "RJCT", "AC04")
                         + tx_status(e2e[b], "ACCP", "") + "</OrgnlPmtInfAndSts>")
        applied = await service.apply_report(conn, report, "sts.xml", WORKER, None, today=TODAY)
        assert [(x.end_to_end_id, x.result, x.reason) for x in applied.lines] == [
            (e2e[a], "failed", "AC04 — account closed")]
        assert applied.ignored == 1 and applied.unknown == ()
        assert applied.describe() == ("1 rejected, 0 returned (payments taken back), 1 accepted or other entries left "
                                      "alone")
        assert await conn.fetchval("SELECT status || ':' || reason FROM dd_collections WHERE customer_id = $1", a) == (
            "failed:AC04 — account closed")
        again = await service.apply_report(conn, report, "sts.xml", WORKER, None, today=TODAY)
        assert [x.result for x in again.lines] == ["already"]
        settled = await service.settle(conn, ON, WORKER, None)
        assert settled.count == 1  # b's; a's failed
        assert await conn.fetchval("SELECT count(*) FROM payments WHERE customer_id = $1", a) == 0
        # the failed invoice goes into the next batch again, FRST: the mandate was never collected
        retry = await service.make_batch(conn, dt.date(2026, 4, 20), WORKER, None, today=dt.date(2026, 4, 16))
        assert (retry.count, retry.first) == (1, 1) and retry.batch_id != made.batch_id
        assert await conn.fetchval("SELECT document_id FROM dd_collections WHERE batch_id = $1",
                                   retry.batch_id) == await invoice_of(conn, a)
        logged = await conn.fetch("SELECT action, object_type FROM operations_log WHERE object_type IN "
                                  "('dd_collection', 'dd_return_file') ORDER BY id")
        assert [tuple(r) for r in logged][:3] == [("reject", "dd_collection"), ("import", "dd_return_file"),
                                                  ("import", "dd_return_file")]


async def test_a_returned_collection_takes_its_payment_back_and_reopens_the_invoice(pool: asyncpg.Pool) -> None:
    a, b = await billed(pool, 2)
    async with pool.acquire() as conn:
        await service.make_batch(conn, ON, WORKER, None, today=TODAY)
        await service.settle(conn, ON, WORKER, None)
        e2e = {r["customer_id"]: r["end_to_end_id"] for r in await conn.fetch("SELECT * FROM dd_collections")}
        invoice = await invoice_of(conn, a)
        assert await status(conn, invoice) == "paid"
        notice = camt054(returned_entry(e2e[a], "AM04"))
        applied = await service.apply_report(conn, notice, "camt054.xml", WORKER, None, today=dt.date(2026, 4, 20))
        assert [(x.end_to_end_id, x.result) for x in applied.lines] == [(e2e[a], "reversed")]
        assert await status(conn, invoice) == "overdue" and await balance(conn, a) == D("-31.00")
        # the debt is back past its due date: dunning, once for the file, blocks the customer at commit
        assert applied.dunning == (("block", 1),) and "then dunning: 1 block" in applied.describe()
        assert await conn.fetchval("SELECT status FROM customers WHERE id = $1", a) == "blocked"
        payment = await one(conn, "SELECT p.id, r.reason FROM payments p JOIN payment_reversals r "
                                      "ON r.payment_id = p.id WHERE p.customer_id = $1", a)
        assert payment["reason"] == "direct debit returned by the bank: AM04 — insufficient funds"
        assert await conn.fetchval("SELECT status FROM dd_collections WHERE customer_id = $1", a) == "failed"
        assert await balance(conn, b) == D("0.00")  # b's stays paid
        before = await counts(conn)
        again = await service.apply_report(conn, notice, "camt054.xml", WORKER, None, today=dt.date(2026, 4, 20))
        assert [x.result for x in again.lines] == ["already"]
        assert (await counts(conn))[:5] == before[:5]  # only the import's own line of the log is new
        # the next batch collects it again, RCUR: the bank had settled the first before it came back
        retry = await service.make_batch(conn, dt.date(2026, 4, 24), WORKER, None, today=dt.date(2026, 4, 20))
        assert (retry.count, retry.first, retry.recurring) == (1, 0, 1)


async def test_a_whole_batch_rejected_fails_every_collection(pool: asyncpg.Pool) -> None:
    await billed(pool, 3)
    async with pool.acquire() as conn:
        made = await service.make_batch(conn, ON, WORKER, None, today=TODAY)
        report = pain002("", "RJCT", "<StsRsnInf><Rsn><Cd>FF01</Cd></Rsn></StsRsnInf>").replace(
            b"<OrgnlMsgId>LMDD-1</OrgnlMsgId>", f"<OrgnlMsgId>{made.message_id}</OrgnlMsgId>".encode())
        applied = await service.apply_report(conn, report, "", WORKER, None, today=TODAY)
        assert applied.count("failed") == 3
        assert await conn.fetchval("SELECT count(*) FROM dd_collections WHERE status = 'failed' "
                                   "AND reason LIKE 'FF01%'") == 3


@pytest.mark.parametrize("name", ["billion laughs", "external entity", "broken", "another message"])
async def test_a_hostile_or_broken_return_file_writes_nothing(pool: asyncpg.Pool, name: str) -> None:
    from tests.unit.payments.test_direct_debit import _HOSTILE
    await billed(pool, 1)
    async with pool.acquire() as conn:
        await service.make_batch(conn, ON, WORKER, None, today=TODAY)
        before = await counts(conn)
        with pytest.raises(dd.DirectDebitError, match=_HOSTILE[name][1]):
            await service.apply_report(conn, _HOSTILE[name][0], "x.xml", WORKER, None, today=TODAY)
        assert await counts(conn) == before


async def test_a_file_naming_none_of_our_collections_writes_nothing(pool: asyncpg.Pool) -> None:
    await billed(pool, 1)
    async with pool.acquire() as conn:
        await service.make_batch(conn, ON, WORKER, None, today=TODAY)
        before = await counts(conn)
        with pytest.raises(dd.DirectDebitError, match=r"none of what the camt\.054 rejects or returns is one of "
                                                      "our collections"):
            await service.apply_report(conn, camt054(returned_entry("OTHER-1", "AM04")), "x", WORKER, None,
                                       today=TODAY)
        assert await counts(conn) == before


async def test_an_invoice_voided_after_its_batch_is_credited_when_collected(pool: asyncpg.Pool) -> None:
    (a,) = await billed(pool, 1)
    async with pool.acquire() as conn:
        await service.make_batch(conn, ON, WORKER, None, today=TODAY)
        invoice = await invoice_of(conn, a)
        await ledger.void_document(conn, invoice, "billed in error", "test")
        done = await service.settle(conn, ON, WORKER, None)
        assert done.count == 1 and len(done.unpinned) == 1
        assert await balance(conn, a) == D("31.00")  # the bank collected it: the customer's credit
        assert await conn.fetchval("SELECT document_id FROM payments") is None


async def test_the_worker_settles_what_is_due_every_morning(pool: asyncpg.Pool) -> None:
    import structlog

    from admin.worker import jobs
    from daemons.config import Settings

    await billed(pool, 2)
    async with pool.acquire() as conn:
        await service.make_batch(conn, ON, WORKER, None, today=TODAY)  # 16 April: before the real today
    found = jobs.discover()["payments.direct_debit_settle"]
    assert found.schedule == "10 6 * * *"
    ctx = jobs.Context(1, found.entrypoint, {}, 1, pool, Settings(), structlog.get_logger())
    await found.run(ctx)
    await found.run(ctx)  # a rerun (a worker killed mid-job) records nothing twice
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM payments WHERE source = 'direct_debit'") == 2
        assert await conn.fetchval("SELECT count(*) FROM dd_collections WHERE status = 'paid'") == 2
        assert await conn.fetchval("SELECT DISTINCT actor FROM operations_log WHERE object_type = 'dd_collection'") \
            == "worker"


async def test_a_blocked_customer_whose_debt_is_collected_is_active_again(pool: asyncpg.Pool,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "SETTLE_CHUNK", 2)  # three collections: two transactions
    a, b, c = await billed(pool, 3)
    late = dt.date(2026, 4, 20)
    async with pool.acquire() as conn:
        await service.make_batch(conn, ON, WORKER, None, today=TODAY)
        assert (await collect.run(conn, late)).actions == {"block": 3}
        done = await service.settle(conn, late, WORKER, None)
        assert (done.count, done.dunning) == (3, (("unblock", 3),))
        assert {r["status"] for r in await conn.fetch("SELECT status FROM customers WHERE id = ANY($1::bigint[])",
                                                       [a, b, c])} == {"active"}
        assert await conn.fetchval("SELECT count(*) FROM operations_log WHERE action = 'dunning' "
                                   "AND object_type = 'dd_batch'") == 2

"""Bank statements against a real PostgreSQL: a file is read, matched and its payments recorded
in one transaction (a fault leaves nothing), the same file or an overlapping one adds nothing
twice, every decision is explained, a person pairs or ignores what was not matched, and the
bulk recording writes what record.record writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from admin.auth.store import Connection
from admin.billing import collect, run
from admin.payments import bulk, bulk_store, record, reference
from admin.payments.record import NewPayment, PaymentError
from admin.payments.statements import service
from admin.payments.statements.model import StatementError
from daemons import db
from tests.db.test_billing import balance, customer

D = Decimal
APRIL = dt.date(2026, 4, 1)
PAID_ON = dt.date(2026, 4, 3)
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "statements"
HEADER = "Date;Name;IBAN;Purpose;Amount;Currency\n"


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=4, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


async def mapping(conn: Connection) -> asyncpg.Record:
    row = await conn.fetchrow(
        "INSERT INTO bank_mappings (name, delimiter, columns, date_format, decimal_comma) VALUES "
        "('Test bank', ';', $1::jsonb, '%d.%m.%Y', true) RETURNING *",
        {"date": 0, "payer_name": [1], "payer_account": 2, "description": [3], "amount": 4, "currency": 5})
    assert row is not None
    return row


def csv(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


@pytest.fixture
async def world(pool: asyncpg.Pool) -> dict[str, Any]:
    """Three customers with an invoice of 31.00 each (April), and a mapping for ``csv()``."""
    async with pool.acquire() as conn:
        ids = [await customer(conn, n, start=APRIL) for n in (1, 2, 3)]
        await conn.execute("UPDATE customers SET name = 'Anna Berger' WHERE id = $1", ids[0])
        await conn.execute("UPDATE customers SET name = 'Jürgen Müller' WHERE id = $1", ids[1])
        await conn.execute("UPDATE customers SET name = 'Olga Nováková' WHERE id = $1", ids[2])
    await run.run(pool, APRIL)
    async with pool.acquire() as conn:
        invoices = {r["customer_id"]: r for r in await conn.fetch("SELECT * FROM documents WHERE kind = 'invoice'")}
        return {"ids": ids, "invoices": invoices, "mapping": await mapping(conn)}


async def test_a_statement_is_matched_recorded_and_explained(pool: asyncpg.Pool, world: dict[str, Any]) -> None:
    a, b, c = world["ids"]
    inv_b = world["invoices"][b]["number"]
    data = csv(f"03.04.2026;Anna Berger;AT61 1904 3002 3457 3201;{reference.printed(reference.for_customer(a))};"
               "31,00;EUR",
               f"03.04.2026;J. Mueller;;Rechnung {inv_b};31,00;EUR",
               "03.04.2026;OLGA NOVAKOVA;;Internet;31,00;EUR",
               "03.04.2026;Somebody Else;;a gift;5,00;EUR",
               "03.04.2026;Telco Supplies GmbH;;Cable;-12,00;EUR",
               f"03.04.2026;Anna Berger;;{reference.for_customer(a)};31,00;USD")
    async with pool.acquire() as conn:
        done = await service.import_file(conn, data, "april.csv", mapping=world["mapping"], by="tester",
                                         today=PAID_ON)
        assert done.counts == {"matched": 3, "new": 1, "ignored": 1, "error": 1} and done.payments == 3
        lines = {r["position"]: r for r in await conn.fetch("SELECT * FROM bank_statement_lines")}
        assert [lines[p]["status"] for p in range(1, 7)] == ["matched", "matched", "matched", "new", "ignored",
                                                            "error"]
        assert lines[1]["customer_id"] == a and lines[1]["score"] == 100
        assert lines[2]["customer_id"] == b and lines[2]["document_id"] == world["invoices"][b]["id"]
        assert lines[3]["customer_id"] == c and lines[3]["score"] == 70  # the whole name and the amount
        assert "billed in EUR" in lines[6]["error"]
        explained = lines[2]["explanation"]
        assert [s["signal"] for s in explained][:1] == ["document"] and explained[0]["points"] == 60
        assert any(s["signal"] == "amount" and s["points"] == 25 for s in explained)
        assert lines[4]["explanation"][-1]["signal"] == "none"
        for cid in (a, b, c):
            assert await balance(conn, cid) == D("0.00")
        payments = await conn.fetch("SELECT * FROM payments ORDER BY id")
        assert {(p["customer_id"], p["source"], p["statement_line_id"]) for p in payments} == {
            (a, "bank_statement", lines[1]["id"]), (b, "bank_statement", lines[2]["id"]),
            (c, "bank_statement", lines[3]["id"])}
        assert all(p["payer"] and p["comment"].startswith("bank statement") for p in payments)
        states = await conn.fetch("SELECT status FROM billing_documents_state WHERE kind = 'invoice'")
        assert {s["status"] for s in states} == {"paid"}


async def test_the_same_file_is_refused_and_an_overlapping_one_adds_only_its_new_lines(
    pool: asyncpg.Pool, world: dict[str, Any],
) -> None:
    a = world["ids"][0]
    ref = reference.for_customer(a)
    first = csv(f"02.04.2026;Anna Berger;;{ref};10,00;EUR", f"02.04.2026;Anna Berger;;{ref};10,00;EUR")
    async with pool.acquire() as conn:
        done = await service.import_file(conn, first, "a.csv", mapping=world["mapping"], by="t", today=PAID_ON)
        assert done.counts == {"matched": 2}
        with pytest.raises(service.AlreadyImported, match=f"as statement {done.statement_id}"):
            await service.import_file(conn, first, "a-again.csv", mapping=world["mapping"], by="t", today=PAID_ON)
        # the same two lines and a third: only the third is new (two equal payments are two lines)
        overlap = csv(f"02.04.2026;Anna Berger;;{ref};10,00;EUR", f"02.04.2026;Anna Berger;;{ref};10,00;EUR",
                      f"02.04.2026;Anna Berger;;{ref};10,00;EUR", "")
        again = await service.import_file(conn, overlap, "b.csv", mapping=world["mapping"], by="t", today=PAID_ON)
        assert (again.lines, again.duplicates, again.counts) == (3, 2, {"matched": 1})
        assert await conn.fetchval("SELECT count(*) FROM payments") == 3
        assert await conn.fetchval("SELECT count(*) FROM bank_statements") == 2
        assert await balance(conn, a) == D("-1.00")
        row = await conn.fetchrow("SELECT line_count, duplicate_count FROM bank_statements WHERE id = $1",
                                  again.statement_id)
        assert row is not None and (row["line_count"], row["duplicate_count"]) == (3, 2)


async def test_a_broken_file_is_refused_with_where_and_nothing_is_written(
    pool: asyncpg.Pool, world: dict[str, Any],
) -> None:
    a = world["ids"][0]
    data = csv(f"02.04.2026;Anna Berger;;{reference.for_customer(a)};31,00;EUR", "31.02.2026;Bob;;x;5,00;EUR")
    async with pool.acquire() as conn:
        with pytest.raises(StatementError, match=r"line 3, column 1 \('Date'\): '31.02.2026' is not a date"):
            await service.import_file(conn, data, "bad.csv", mapping=world["mapping"], by="t", today=PAID_ON)
        for name in ("billion_laughs.xml", "external_entity.xml"):
            with pytest.raises(StatementError, match="DTD"):
                await service.import_file(conn, (VECTORS / name).read_bytes(), name, mapping=None, by="t")
        with pytest.raises(StatementError, match="column mapping"):
            await service.import_file(conn, data, "bad.csv", mapping=None, by="t")
        for table in ("bank_statements", "bank_statement_lines", "payments"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_a_fault_while_recording_leaves_nothing_written(
    pool: asyncpg.Pool, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, _ = world["ids"]
    data = csv(f"03.04.2026;Anna Berger;;{reference.for_customer(a)};31,00;EUR",
               f"03.04.2026;X;;{reference.for_customer(b)};31,00;EUR")
    before = {}
    async with pool.acquire() as conn:
        for table in ("documents", "transactions", "allocations", "number_counters"):
            before[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")

        async def broken(conn: object, rows: object) -> dict[int, int]:
            raise RuntimeError("the disk is full")

        monkeypatch.setattr(bulk_store, "insert_payments", broken)
        with pytest.raises(RuntimeError, match="disk is full"):
            await service.import_file(conn, data, "f.csv", mapping=world["mapping"], by="t", today=PAID_ON)
        for table in ("bank_statements", "bank_statement_lines", "payments"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
        for table, n in before.items():
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == n, table
        assert await conn.fetchval("SELECT max(last_value) FROM number_counters WHERE key LIKE 'receipt:%'") is None
        monkeypatch.undo()
        done = await service.import_file(conn, data, "f.csv", mapping=world["mapping"], by="t", today=PAID_ON)
        assert done.payments == 2


async def test_a_person_pairs_or_ignores_what_was_not_matched(pool: asyncpg.Pool, world: dict[str, Any]) -> None:
    a, b, _ = world["ids"]
    data = csv("03.04.2026;Somebody;DE44500105175407324931;for my son;31,00;EUR", "03.04.2026;Bank;;fee back;2,00;EUR",
               "03.04.2026;Z;;x;-1,00;EUR")
    async with pool.acquire() as conn:
        await service.import_file(conn, data, "p.csv", mapping=world["mapping"], by="t", today=PAID_ON)
        lines = {r["position"]: r["id"] for r in await conn.fetch("SELECT id, position FROM bank_statement_lines")}
        paired = await service.pair(conn, lines[1], b, world["invoices"][b]["id"], "anna", today=PAID_ON)
        assert paired.recorded.created and await balance(conn, b) == D("0.00")
        again = await service.pair(conn, lines[1], b, None, "anna", today=PAID_ON)
        assert not again.recorded.created and again.recorded.id == paired.recorded.id
        with pytest.raises(service.LineError, match="paired already"):
            await service.pair(conn, lines[1], a, None, "anna", today=PAID_ON)
        with pytest.raises(service.LineError, match="money out"):
            await service.pair(conn, lines[3], a, None, "anna", today=PAID_ON)
        await conn.execute("UPDATE customer_billing SET currency = 'USD' WHERE customer_id = $1", a)
        with pytest.raises(service.LineError, match="the line is in EUR, the customer is billed in USD"):
            await service.pair(conn, lines[2], a, None, "anna", today=PAID_ON)
        row = await conn.fetchrow("SELECT * FROM bank_statement_lines WHERE id = $1", lines[1])
        assert row is not None and (row["status"], row["customer_id"]) == ("paired", b)
        assert row["explanation"][-1] == {"signal": "paired", "points": 0, "detail": "paired by anna"}
        await service.ignore(conn, lines[2], "our own refund", "anna")
        with pytest.raises(service.LineError, match="only a line waiting"):
            await service.ignore(conn, lines[2], "again", "anna")
        assert await conn.fetchval("SELECT status FROM bank_statement_lines WHERE id = $1", lines[2]) == "ignored"
        # the account that paid for b is b's from now on: next month's transfer from it is placed
        data = csv("03.05.2026;Somebody;DE44 5001 0517 5407 3249 31;for my son May;31,00;EUR")
        await run.run(pool, dt.date(2026, 5, 1))
        done = await service.import_file(conn, data, "may.csv", mapping=world["mapping"], by="t",
                                         today=dt.date(2026, 5, 3))
        assert done.counts == {"matched": 1}
        row = await conn.fetchrow("SELECT * FROM bank_statement_lines ORDER BY id DESC LIMIT 1")
        assert row is not None and row["customer_id"] == b
        assert [s["signal"] for s in row["explanation"]] == ["account", "name", "amount"]


async def test_a_blocked_customer_who_pays_by_transfer_is_active_at_commit(
    pool: asyncpg.Pool, world: dict[str, Any],
) -> None:
    a = world["ids"][0]
    late = dt.date(2026, 4, 20)
    async with pool.acquire() as conn:
        await collect.run(conn, late)
        assert await conn.fetchval("SELECT status FROM customers WHERE id = $1", a) == "blocked"
        data = csv(f"20.04.2026;Anna Berger;;{reference.for_customer(a)};31,00;EUR")
        done = await service.import_file(conn, data, "late.csv", mapping=world["mapping"], by="t", today=late)
        assert done.dunning == {"unblock": 1}
        assert await conn.fetchval("SELECT status FROM customers WHERE id = $1", a) == "active"


async def test_camt_and_mt940_files_import_and_match(pool: asyncpg.Pool, world: dict[str, Any]) -> None:
    a = world["ids"][0]
    async with pool.acquire() as conn:
        assert reference.for_customer(a) == "RF7400000001"  # what the vectors carry
        done = await service.import_file(conn, (VECTORS / "camt053_v02.xml").read_bytes(), "s.xml", mapping=None,
                                         by="t", today=PAID_ON)
        assert done.counts["matched"] >= 1 and done.counts["ignored"] == 1
        mt = await service.import_file(conn, (VECTORS / "mt940_bank.sta").read_bytes(), "s.sta", mapping=None,
                                       by="t", today=PAID_ON)
        assert mt.lines == 4 and mt.statement_id != done.statement_id
        formats = {r["format"] for r in await conn.fetch("SELECT format FROM bank_statements")}
        assert formats == {"camt053", "mt940"}


async def _rows(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """What a payment writes, without ids and times."""
    return {
        "documents": [tuple(r) for r in await conn.fetch(
            "SELECT kind, customer_id, number, issued_on, total, origin, related_id, note, idempotency_key, created_by "
            "FROM documents WHERE kind = 'receipt' ORDER BY number")],
        "transactions": [tuple(r) for r in await conn.fetch(
            "SELECT customer_id, direction, kind, amount, posted_on, description, idempotency_key FROM transactions "
            "WHERE kind = 'payment' ORDER BY idempotency_key")],
        "allocations": [tuple(r) for r in await conn.fetch(
            "SELECT a.customer_id, t.idempotency_key, a.target_document_id, a.amount FROM allocations a "
            "JOIN transactions t ON t.id = a.credit_id ORDER BY t.idempotency_key, a.target_document_id")],
        "payments": [tuple(r) for r in await conn.fetch(
            "SELECT customer_id, source, paid_on, amount, currency, receipt_number, payer, comment, document_id, "
            "statement_line_id, created_by FROM payments ORDER BY statement_line_id")],
        "customers": [tuple(r) for r in await conn.fetch("SELECT id, status FROM customers ORDER BY id")],
    }


async def test_bulk_recording_writes_what_record_writes(db_url: str, pg_server: str, world: dict[str, Any]) -> None:
    """The same payments recorded one by one (record.record) and all at once (bulk.record_many),
    in two copies of one database, leave the same rows."""
    a, b, c = world["ids"]
    name = db_url.rsplit("/", 1)[1]
    twin = f"{name}_twin"
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                            "AND pid <> pg_backend_pid()")
        await admin.execute(f"CREATE DATABASE {twin} TEMPLATE {name}")
    finally:
        await admin.close()
    late = dt.date(2026, 4, 20)
    results = []
    try:
        for url, how in ((db_url, "one"), (db_url.rsplit("/", 1)[0] + "/" + twin, "bulk")):
            conn = await db.connect(url)
            try:
                await collect.run(conn, late)  # a and c blocked: the payments let them back
                sid = await conn.fetchval("INSERT INTO bank_statements (file_name, format, file_sha256) "
                                          "VALUES ('x', 'csv', 'x') RETURNING id")
                line_ids = [await conn.fetchval(
                    "INSERT INTO bank_statement_lines (statement_id, line_hash, position, booked_on, amount, currency) "
                    "VALUES ($1, $2, $3, $4, 1, 'EUR') RETURNING id", sid, str(i), i, late) for i in range(1, 6)]
                inv_b = world["invoices"][b]["id"]
                payments = [
                    NewPayment(a, D("31.00"), late, "bank_transfer", source="bank_statement", receipt_number="B1",
                               payer="Anna", comment="c1", statement_line_id=line_ids[0], by="t"),
                    NewPayment(b, D("10.00"), late, "bank_transfer", source="bank_statement", document_id=inv_b,
                               statement_line_id=line_ids[1], by="t"),
                    NewPayment(b, D("25.00"), late, "bank_transfer", source="bank_statement",
                               statement_line_id=line_ids[2], by="t"),
                    NewPayment(c, D("0.001"), late, "bank_transfer", source="bank_statement",
                               statement_line_id=line_ids[3], by="t"),
                    NewPayment(c, D("40.00"), late, "bank_transfer", source="bank_statement",
                               document_id=world["invoices"][a]["id"], statement_line_id=line_ids[4], by="t"),
                ]
                outcome: list[str] = []
                async with conn.transaction():
                    if how == "one":
                        for p in payments:
                            try:
                                done = await record.record(conn, p, today=late)
                                outcome.append(f"created={done.created}")
                            except PaymentError as e:
                                outcome.append(str(e))
                    else:
                        batch = await bulk.record_many(conn, payments, today=late)
                        outcome = [str(r) if isinstance(r, PaymentError) else f"created={r.created}"
                                   for r in batch.results]
                        again = await bulk.record_many(conn, payments[:3], today=late)
                        assert [r.created for r in again.results if isinstance(r, record.Recorded)] == [False] * 3
                results.append((outcome, await _rows(conn)))
            finally:
                await conn.close()
    finally:
        admin = await asyncpg.connect(pg_server)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {twin} WITH (FORCE)")
        finally:
            await admin.close()
    (one_outcome, one_rows), (bulk_outcome, bulk_rows) = results
    assert one_outcome == bulk_outcome
    assert one_outcome[3].startswith("a payment 0.001 has more decimals") or "decimals" in one_outcome[3]
    assert "not one of this customer's" in one_outcome[4]
    for table in one_rows:
        assert bulk_rows[table] == one_rows[table], table
    status = dict(one_rows["customers"])
    assert (status[a], status[b], status[c]) == ("active", "active", "blocked")  # c's payments were refused

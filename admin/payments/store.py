"""The SQL of payments' core (record.py): payment types, the payments table, what a payment is
already known by."""

from __future__ import annotations

from typing import Any

import asyncpg

from admin.auth.store import Connection

PAYMENT_COLUMNS = ("customer_id", "transaction_id", "receipt_id", "type_id", "source", "paid_on", "amount",
                   "currency", "receipt_number", "payer", "comment", "document_id", "service_id", "period_start",
                   "period_end", "gateway", "gateway_ref", "intent_id", "statement_line_id", "collection_id",
                   "idempotency_key", "created_by")


async def payment_type(conn: Connection, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM payment_types WHERE code = $1", code)


async def payment_types(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM payment_types ORDER BY builtin DESC, name")


async def known(conn: Connection, *, key: str | None, gateway: str | None, gateway_ref: str | None,
                statement_line_id: int | None, collection_id: int | None) -> asyncpg.Record | None:
    """The payment recorded before under any of the names this one has (its idempotency key, the
    gateway's id of it, its bank statement line, its direct-debit collection)."""
    return await conn.fetchrow(
        "SELECT p.*, d.number AS receipt_no FROM payments p JOIN documents d ON d.id = p.receipt_id "
        "WHERE p.idempotency_key = $1 OR (p.gateway = $2 AND p.gateway_ref = $3) "
        "OR p.statement_line_id = $4 OR p.collection_id = $5 LIMIT 1",
        key, gateway, gateway_ref, statement_line_id, collection_id)


async def service_of(conn: Connection, customer_id: int, service_id: int) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM services WHERE id = $1 AND customer_id = $2)",
                                    service_id, customer_id))


async def receipt_of(conn: Connection, transaction_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT d.id, d.number FROM transactions t JOIN documents d ON d.id = t.document_id WHERE t.id = $1",
        transaction_id)
    assert row is not None  # a payment's credit is its receipt's
    return row


async def insert_payment(conn: Connection, values: dict[str, Any]) -> int:
    columns = ", ".join(PAYMENT_COLUMNS)
    params = ", ".join(f"${i}" for i in range(1, len(PAYMENT_COLUMNS) + 1))
    payment_id: int = await conn.fetchval(f"INSERT INTO payments ({columns}) VALUES ({params}) RETURNING id",
                                          *(values[c] for c in PAYMENT_COLUMNS))
    return payment_id


async def payment(conn: Connection, payment_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT p.*, d.number AS receipt_no, t.code AS type_code, t.name AS type_name, "
        "r.reason AS reversed_reason, r.created_at AS reversed_at, r.refund_ref "
        "FROM payments p JOIN documents d ON d.id = p.receipt_id JOIN payment_types t ON t.id = p.type_id "
        "LEFT JOIN payment_reversals r ON r.payment_id = p.id WHERE p.id = $1", payment_id)


async def insert_reversal(conn: Connection, payment_id: int, reason: str, refund_ref: str | None, by: str) -> None:
    await conn.execute("INSERT INTO payment_reversals (payment_id, reason, refund_ref, created_by) "
                       "VALUES ($1, $2, $3, $4)", payment_id, reason, refund_ref, by)

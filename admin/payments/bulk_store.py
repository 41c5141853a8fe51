"""The SQL of recording payments many at a time (bulk.py): what the payments name, looked up
for all of them at once, and their rows written in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.payments.store import PAYMENT_COLUMNS

PAYMENT_TYPES = ("bigint", "bigint", "bigint", "bigint", "text", "date", "numeric", "text", "text", "text", "text",
                 "bigint", "bigint", "date", "date", "text", "text", "bigint", "bigint", "bigint", "text", "text")


async def customers(conn: Connection, customer_ids: Sequence[int]) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch("SELECT c.id, c.partner_id, b.currency FROM customers c "
                            "JOIN customer_billing b ON b.customer_id = c.id WHERE c.id = ANY($1::bigint[])",
                            list(customer_ids))
    return {r["id"]: r for r in rows}


async def documents(conn: Connection, document_ids: Sequence[int]) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch(
        "SELECT d.id, d.customer_id, d.kind, d.number, "
        "EXISTS (SELECT 1 FROM document_voids v WHERE v.document_id = d.id) AS void "
        "FROM documents d WHERE d.id = ANY($1::bigint[])", list(document_ids))
    return {r["id"]: r for r in rows}


async def known_lines(conn: Connection, line_ids: Sequence[int]) -> dict[int, asyncpg.Record]:
    """The payments recorded already for these statement lines, by line."""
    rows = await conn.fetch(
        "SELECT p.id, p.statement_line_id, p.customer_id, p.amount, p.receipt_id, p.transaction_id, "
        "d.number AS receipt_no FROM payments p JOIN documents d ON d.id = p.receipt_id "
        "WHERE p.statement_line_id = ANY($1::bigint[])", list(line_ids))
    return {r["statement_line_id"]: r for r in rows}


async def insert_payments(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[int, int]:
    """Payments rows (PAYMENT_COLUMNS) in one statement; their ids by their transaction's id."""
    if not rows:
        return {}
    arrays = [[r[c] for r in rows] for c in PAYMENT_COLUMNS]
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(PAYMENT_TYPES, start=1))
    names = ", ".join(PAYMENT_COLUMNS)
    found = await conn.fetch(
        f"INSERT INTO payments ({names}) SELECT {names} FROM unnest({params}) AS u({names}) "
        "RETURNING id, transaction_id", *arrays)
    return {r["transaction_id"]: r["id"] for r in found}

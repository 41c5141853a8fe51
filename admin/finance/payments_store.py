"""The SQL of Finance -> Payments (payments.py, payment_types.py): the payments list, a payment
with what it paid, what the desk's forms offer (a customer's open documents, its services and
the periods they were charged for), the customers a payment may name, and the payment types.

Every query of customers' rows is scoped (admin/queries.py CUSTOMER_SCOPE: ``$1`` the
principal's partner, ``$2`` the creator it is limited to). Money is written by
admin/payments/record.py only; this module writes payment types.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.queries import CUSTOMER_SCOPE, keyset

SORTS = {"paid_on": "p.paid_on", "amount": "p.amount", "id": "p.id"}

COLUMNS = (
    "p.id, p.transaction_id, p.customer_id, c.number AS customer_number, c.name AS customer, c.partner_id, "
    "t.code AS type, t.name AS type_name, p.source, p.paid_on, p.amount, p.currency, p.receipt_id, "
    "r.number AS receipt, p.receipt_number, p.payer, p.comment, p.document_id, d.number AS document_number, "
    "p.service_id, s.login AS service_login, p.period_start, p.period_end, p.gateway, p.gateway_ref, "
    "p.statement_line_id, p.collection_id, p.created_by, p.created_at, v.created_at AS reversed_at, "
    "v.created_by AS reversed_by, v.reason AS reversed_reason, v.refund_ref")
FROM = (
    "FROM payments p JOIN customers c ON c.id = p.customer_id JOIN payment_types t ON t.id = p.type_id "
    "JOIN documents r ON r.id = p.receipt_id LEFT JOIN documents d ON d.id = p.document_id "
    "LEFT JOIN services s ON s.id = p.service_id LEFT JOIN payment_reversals v ON v.payment_id = p.id")
_WHERE = (
    f"{CUSTOMER_SCOPE} AND ($3::date IS NULL OR p.paid_on >= $3) AND ($4::date IS NULL OR p.paid_on <= $4) "
    "AND ($5::text IS NULL OR t.code = $5) AND ($6::text IS NULL OR p.source = $6) "
    "AND ($7::bigint IS NULL OR p.customer_id = $7) AND ($8::numeric IS NULL OR p.amount >= $8) "
    "AND ($9::numeric IS NULL OR p.amount <= $9) "
    "AND ($10::boolean IS NULL OR (v.payment_id IS NOT NULL) = $10)")


def _args(f: Any) -> list[Any]:
    return [f.since, f.until, f.type, f.source, f.customer_id,
            Decimal(f.min_amount) if f.min_amount is not None else None,
            Decimal(f.max_amount) if f.max_amount is not None else None, {"true": True, "false": False}.get(f.reversed)]


async def payments(conn: Connection, partner: int | None, creator: int | None, f: Any, *, sort: str,
                   direction: str, after: Sequence[Any] | None, limit: int) -> list[asyncpg.Record]:
    """A page of payments (``f``: a PaymentFilter), one row more than ``limit``."""
    column = SORTS[sort]
    condition, order, params = keyset(column, direction, after, 11, "p.id")
    return await conn.fetch(
        f"SELECT {COLUMNS}, {column} AS sort_value {FROM} WHERE {_WHERE} AND {condition} {order} "
        f"LIMIT {int(limit) + 1}", partner, creator, *_args(f), *params)


async def totals(conn: Connection, partner: int | None, creator: int | None, f: Any) -> list[asyncpg.Record]:
    """What the whole filtered list adds up to, per currency (payments taken back apart)."""
    return await conn.fetch(
        "SELECT p.currency, count(*) AS count, coalesce(sum(p.amount) FILTER (WHERE v.payment_id IS NULL), 0) "
        f"AS amount, count(v.payment_id) AS reversed {FROM} WHERE {_WHERE} GROUP BY p.currency ORDER BY p.currency",
        partner, creator, *_args(f))


async def payment(conn: Connection, partner: int | None, creator: int | None,
                  payment_id: int) -> asyncpg.Record | None:
    """A payment the principal sees, or None."""
    return await conn.fetchrow(f"SELECT {COLUMNS} {FROM} WHERE p.id = $3 AND {CUSTOMER_SCOPE}",
                               partner, creator, payment_id)


async def payments_by_id(conn: Connection, payment_ids: Sequence[int]) -> list[asyncpg.Record]:
    """Payments by id, in that order (what a batch just recorded)."""
    rows = {r["id"]: r for r in await conn.fetch(f"SELECT {COLUMNS} {FROM} WHERE p.id = ANY($1::bigint[])",
                                                  list(payment_ids))}
    return [rows[i] for i in payment_ids]


async def allocations(conn: Connection, transaction_id: int) -> list[asyncpg.Record]:
    """What the payment's credit paid: each debt, and what a reversal released (negative)."""
    return await conn.fetch(
        "SELECT a.id, a.amount, a.target_document_id, td.number AS target_document_number, td.kind AS target_kind, "
        "a.target_transaction_id, coalesce(tt.description, replace(td.kind, '_', ' ') || ' of ' || td.issued_on, '') "
        "AS description, tt.period_start, tt.period_end, "
        "a.created_by, a.created_at FROM allocations a LEFT JOIN documents td ON td.id = a.target_document_id "
        "LEFT JOIN transactions tt ON tt.id = a.target_transaction_id WHERE a.credit_id = $1 ORDER BY a.id",
        transaction_id)


async def balance(conn: Connection, customer_id: int) -> Decimal:
    """The customer's balance now (credits less debits)."""
    value = await conn.fetchval(
        "SELECT coalesce(sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END), 0) FROM transactions "
        "WHERE customer_id = $1", customer_id)
    return Decimal(value)


# -- what the desk's forms offer ------------------------------------------------------------------

async def customers(conn: Connection, partner: int | None, creator: int | None,
                    customer_ids: Sequence[int]) -> dict[int, asyncpg.Record]:
    """Customers the principal sees among ``customer_ids`` (not deleted), with their currency and balance."""
    rows = await conn.fetch(
        "SELECT c.id, c.number, c.name, c.partner_id, c.status, b.currency, "
        "coalesce((SELECT sum(CASE t.direction WHEN 'credit' THEN t.amount ELSE -t.amount END) FROM transactions t "
        "WHERE t.customer_id = c.id), 0) AS balance "
        "FROM customers c JOIN customer_billing b ON b.customer_id = c.id "
        f"WHERE c.id = ANY($3::bigint[]) AND c.status <> 'deleted' AND {CUSTOMER_SCOPE}",
        partner, creator, list(customer_ids))
    return {r["id"]: r for r in rows}


async def customer_ids_named(conn: Connection, partner: int | None, creator: int | None,
                             names: Sequence[str]) -> dict[str, list[int]]:
    """For each text (a customer number or a service's login, matched exactly, case aside), the
    customers it names that the principal sees."""
    rows = await conn.fetch(
        "SELECT n.name, c.id FROM unnest($3::text[]) AS n(name) JOIN customers c ON c.number = upper(n.name) "
        f"WHERE c.status <> 'deleted' AND {CUSTOMER_SCOPE} "
        "UNION SELECT n.name, c.id FROM unnest($3::text[]) AS n(name) "
        "JOIN services s ON lower(s.login) = lower(n.name) "
        f"JOIN customers c ON c.id = s.customer_id WHERE c.status <> 'deleted' AND {CUSTOMER_SCOPE}",
        partner, creator, list(names))
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r["name"], []).append(r["id"])
    return out


async def open_documents(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    """The customer's invoices and proforma invoices still to pay, oldest first."""
    return await conn.fetch(
        "SELECT d.id, d.kind, d.number, d.issued_on, d.due_on, d.total, s.open, s.status FROM documents d "
        "JOIN billing_documents_state s ON s.id = d.id WHERE d.customer_id = $1 AND d.kind IN ('invoice', 'proforma') "
        "AND s.status IN ('unpaid', 'partially_paid', 'overdue') ORDER BY d.issued_on, d.id LIMIT 100", customer_id)


async def service_periods(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    """The customer's services and the periods each was charged for, newest first (12 per service)."""
    return await conn.fetch(
        "SELECT s.id AS service_id, s.login, x.period_start, x.period_end FROM services s "
        "LEFT JOIN LATERAL (SELECT DISTINCT t.period_start, t.period_end FROM transactions t "
        "WHERE t.customer_id = s.customer_id AND t.service_id = s.id AND t.kind = 'charge' "
        "AND t.period_start IS NOT NULL ORDER BY t.period_start DESC LIMIT 12) x ON true "
        "WHERE s.customer_id = $1 ORDER BY s.login, x.period_start DESC NULLS LAST", customer_id)


async def document_of(conn: Connection, customer_id: int, document_id: int) -> asyncpg.Record | None:
    """The customer's invoice or proforma ``document_id`` (with its status), or None."""
    return await conn.fetchrow(
        "SELECT d.id, d.kind, d.number, s.status FROM documents d JOIN billing_documents_state s ON s.id = d.id "
        "WHERE d.id = $2 AND d.customer_id = $1 AND d.kind IN ('invoice', 'proforma')", customer_id, document_id)


# -- payment types --------------------------------------------------------------------------------

async def types(conn: Connection) -> list[asyncpg.Record]:
    """Every payment type (built-in first), with how many payments it has."""
    return await conn.fetch(
        "SELECT t.id, t.code, t.name, t.builtin, t.enabled, t.created_at, "
        "(SELECT count(*) FROM payments p WHERE p.type_id = t.id) AS payments "
        "FROM payment_types t ORDER BY t.builtin DESC, t.name, t.id")


async def type_by_code(conn: Connection, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, code, name, builtin, enabled, created_at, 0::bigint AS payments "
                               "FROM payment_types WHERE code = $1", code)


async def add_type(conn: Connection, code: str, name: str) -> asyncpg.Record | None:
    """A new type, or None when its code is taken."""
    return await conn.fetchrow(
        "INSERT INTO payment_types (code, name) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING "
        "RETURNING id, code, name, builtin, enabled, created_at, 0::bigint AS payments", code, name)


async def update_type(conn: Connection, code: str, name: str, enabled: bool) -> None:
    """Rename, enable or disable one of the operator's own types (never a built-in one)."""
    await conn.execute("UPDATE payment_types SET name = $2, enabled = $3 WHERE code = $1 AND NOT builtin",
                       code, name, enabled)

"""The portal's finance SQL (/portal/finance): a customer's own document (for its PDF) and its
payments per month. Every query is scoped by the customer's id (``$1``): another customer's
document is not found. The lists of documents are admin/finance/queries.py ``documents`` with
the customer as the filter; the statement and the PDFs are the admin's own (finance.py).
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from admin.auth.store import Connection
from admin.finance.queries import DOCUMENT_COLUMNS


async def document(conn: Connection, customer_id: int, document_id: int) -> asyncpg.Record | None:
    """One of the customer's documents, as admin/finance/queries.py ``document`` reads it (what
    admin/finance/pdf.py renders); None: no such document of this customer."""
    return await conn.fetchrow(
        f"SELECT {DOCUMENT_COLUMNS} FROM documents d JOIN billing_documents_state s ON s.id = d.id "
        "JOIN customers c ON c.id = d.customer_id WHERE d.customer_id = $1 AND d.id = $2", customer_id, document_id)


async def payments_by_month(conn: Connection, customer_id: int, since: dt.date) -> list[asyncpg.Record]:
    """The customer's payments received (not taken back) per calendar month from ``since``'s
    month: (month, currency, count, amount), the months with none left out."""
    return await conn.fetch(
        "SELECT date_trunc('month', t.posted_on)::date AS month, t.currency, count(*) AS payments, "
        "sum(t.amount) AS amount FROM transactions t WHERE t.customer_id = $1 AND t.kind = 'payment' "
        "AND t.direction = 'credit' AND t.posted_on >= date_trunc('month', $2::date)::date "
        "AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id) "
        "GROUP BY 1, 2 ORDER BY 1, 2", customer_id, since)

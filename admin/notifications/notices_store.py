"""The SQL of the notice rules (notice_rules: per partner and kind, what is sent and when;
partner_id NULL: the default of partners without a row for that kind) and of the reminders'
calendar (the unpaid invoices, counted by due date)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from admin.auth.store import Connection

#: The columns the notices page writes (notice_rules', partner_id and kind apart).
EDITABLE = ("enabled", "channels", "subject", "delay_hours", "send_hour", "day", "attach", "bcc", "payment_methods")

_COLUMNS = "id, partner_id, kind, " + ", ".join(EDITABLE) + ", updated_by, updated_at"


async def rules(conn: Connection, partner_id: int | None) -> list[asyncpg.Record]:
    """The default rules and, for a partner, its own (every kind)."""
    return await conn.fetch(f"SELECT {_COLUMNS} FROM notice_rules WHERE partner_id IS NULL OR partner_id = $1 "
                            "ORDER BY kind, partner_id NULLS FIRST", partner_id)


async def rules_of_kinds(conn: Connection, kinds: Sequence[str], partner: int | None) -> list[asyncpg.Record]:
    """Every partner's (``partner``'s alone, when given) and the default rules of ``kinds``."""
    return await conn.fetch(f"SELECT {_COLUMNS} FROM notice_rules WHERE kind = ANY($1::text[]) "
                            "AND ($2::bigint IS NULL OR partner_id IS NULL OR partner_id = $2)", list(kinds), partner)


async def lock(conn: Connection, partner_id: int | None) -> None:
    """Hold the scope's rules for this transaction: two saves of one scope's rules do not interleave
    (a group is checked against the scope's other rules as they are)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('notice_rules:' || coalesce($1::bigint::text, "
                       "'default')))", partner_id)


async def save(conn: Connection, partner_id: int | None, kind: str, values: Mapping[str, Any],
               by: str) -> asyncpg.Record:
    """Insert or replace the (partner, kind) rule with every EDITABLE column."""
    columns = list(EDITABLE)
    target = ("(partner_id, kind) WHERE partner_id IS NOT NULL" if partner_id is not None
              else "(kind) WHERE partner_id IS NULL")
    found = await conn.fetchrow(
        f"INSERT INTO notice_rules (partner_id, kind, {', '.join(columns)}, updated_by) "
        f"VALUES ($1, $2, {', '.join(f'${i}' for i in range(3, len(columns) + 3))}, ${len(columns) + 3}) "
        f"ON CONFLICT {target} DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in (*columns, "updated_by"))
        + f" RETURNING {_COLUMNS}",
        partner_id, kind, *(values[c] for c in columns), by)
    assert found is not None
    return found


async def delete(conn: Connection, partner_id: int, kinds: Sequence[str]) -> list[asyncpg.Record]:
    """Delete the partner's own rules of ``kinds`` (it follows the default ones again); the rows deleted."""
    return await conn.fetch(f"DELETE FROM notice_rules WHERE partner_id = $1 AND kind = ANY($2::text[]) "
                            f"RETURNING {_COLUMNS}", partner_id, list(kinds))


async def reminder_settings(conn: Connection) -> list[asyncpg.Record]:
    """Every notification_settings row's partner, reminder day mode and time zone (a few rows)."""
    return await conn.fetch("SELECT partner_id, reminder_days, timezone FROM notification_settings")


# A customer's reminders follow its oldest unpaid invoice (the one the scheduler names as their
# cause: store.py's REMINDERS, whose choice of customers and invoices this follows), so each
# customer owing is counted once, by that invoice's due date; and by how it pays (an active
# SEPA mandate, an autopay card), for the rules restricted to payment methods.
_UNPAID_BY_DUE_DATE = """
WITH unpaid AS (
    SELECT c.partner_id, d.customer_id, d.id, d.issued_on, coalesce(d.due_on, d.issued_on + b.due_days) AS due_on
    FROM documents d
    JOIN customers c ON c.id = d.customer_id
    JOIN customer_billing b ON b.customer_id = d.customer_id
    WHERE d.kind = 'invoice' AND ($1::bigint IS NULL OR c.partner_id = $1) AND b.billing_type = 'recurring'
      AND c.status IN ('active', 'blocked', 'inactive')
      AND NOT EXISTS (SELECT 1 FROM document_voids v WHERE v.document_id = d.id)
      AND d.total > coalesce((SELECT sum(a.amount) FROM allocations a WHERE a.target_document_id = d.id), 0)
),
owing AS (
    SELECT DISTINCT ON (customer_id) partner_id, customer_id, due_on FROM unpaid ORDER BY customer_id, issued_on, id
)
SELECT o.partner_id, o.due_on,
       EXISTS (SELECT 1 FROM sepa_mandates m WHERE m.customer_id = o.customer_id AND m.revoked_at IS NULL) AS dd,
       EXISTS (SELECT 1 FROM payment_methods pm WHERE pm.customer_id = o.customer_id AND pm.autopay
               AND pm.removed_at IS NULL) AS card,
       count(*) AS invoices
FROM owing o
GROUP BY 1, 2, 3, 4
"""


async def unpaid_by_due_date(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    """(partner_id, due_on, dd, card, invoices): the customers of ``partner`` (every partner's, for
    None) on recurring billing with an unpaid invoice, counted by the due date of the oldest and
    by whether they pay by direct debit (dd) or an autopay card."""
    return await conn.fetch(_UNPAID_BY_DUE_DATE, partner)

"""The SQL of Notifications -> Messages (messages.py): the log of every email, SMS and portal
message, filtered and paged by keyset, its counts per status, one message with what it carried.

Scoped as customers are (admin/queries.py CUSTOMER_SCOPE's ``$1``/``$2``), but on the message's
own partner: ``$1`` the principal's partner (its messages only), ``$2`` the creator it is limited
to (messages of the customers it created: never a message without a customer). A message's state
changes (retry, cancel) are the engine's (store.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.queries import keyset

SORTS = {"id": "m.id", "send_at": "m.send_at"}

COLUMNS = (
    "m.id, m.partner_id, p.name AS partner, m.customer_id, c.number AS customer_number, c.name AS customer, "
    "m.kind, m.channel, m.cause, m.document_id, m.marketing, m.recipient, m.bcc, m.subject, m.status, m.send_at, "
    "m.attempts, m.last_error, m.provider_id, m.read_at, m.created_by, m.created_at, m.sent_at, m.updated_at, "
    "cardinality(m.attachments) AS attachment_count")
DETAIL = f"{COLUMNS}, m.body, m.provider_answer, m.attachments, m.lease_until"
FROM = "FROM messages m JOIN partners p ON p.id = m.partner_id LEFT JOIN customers c ON c.id = m.customer_id"
SCOPE = "($1::bigint IS NULL OR m.partner_id = $1) AND ($2::bigint IS NULL OR c.created_by = $2)"
_WHERE = (
    f"{SCOPE} AND ($3::text IS NULL OR m.channel = $3) AND ($4::text IS NULL OR m.status = $4) "
    "AND ($5::text IS NULL OR m.kind = $5) AND ($6::bigint IS NULL OR m.partner_id = $6) "
    "AND ($7::bigint IS NULL OR m.customer_id = $7) "
    "AND ($8::date IS NULL OR m.created_at >= $8::date::timestamp AT TIME ZONE 'UTC') "
    "AND ($9::date IS NULL OR m.created_at < ($9::date + 1)::timestamp AT TIME ZONE 'UTC') "
    "AND ($10::text IS NULL OR m.recipient ILIKE $10 OR m.subject ILIKE $10)")


def _like(text: str | None) -> str | None:
    """``q`` as an ILIKE pattern matching it anywhere, its own % and _ taken literally."""
    if not text or not text.strip():
        return None
    escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _args(f: Any, *, status: bool = True) -> list[Any]:
    """The filter's values for ``$3``.. (``f``: a MessageFilter); without the status for the counts."""
    return [f.channel, f.status if status else None, f.kind, f.partner_id, f.customer_id, f.since, f.until,
            _like(f.q)]


async def messages(conn: Connection, partner: int | None, creator: int | None, f: Any, *, sort: str,
                   direction: str, after: Sequence[Any] | None, limit: int) -> list[asyncpg.Record]:
    """A page of messages, one row more than ``limit`` (whether there is a next page)."""
    column = SORTS[sort]
    condition, order, params = keyset(column, direction, after, 11, "m.id")
    return await conn.fetch(
        f"SELECT {COLUMNS}, {column} AS sort_value {FROM} WHERE {_WHERE} AND {condition} {order} "
        f"LIMIT {int(limit) + 1}", partner, creator, *_args(f), *params)


async def status_counts(conn: Connection, partner: int | None, creator: int | None, f: Any) -> dict[str, int]:
    """How many messages the filters select in each status (the status filter aside)."""
    rows = await conn.fetch(f"SELECT m.status, count(*) AS n {FROM} WHERE {_WHERE} GROUP BY m.status",
                            partner, creator, *_args(f, status=False))
    return {r["status"]: int(r["n"]) for r in rows}


async def message(conn: Connection, partner: int | None, creator: int | None,
                  message_id: int) -> asyncpg.Record | None:
    """A message the principal sees (with its body and the provider's answer), or None."""
    return await conn.fetchrow(f"SELECT {DETAIL} {FROM} WHERE m.id = $3 AND {SCOPE}", partner, creator, message_id)


async def documents(conn: Connection, document_ids: Sequence[int]) -> dict[int, asyncpg.Record]:
    """The documents a message names (its document, its attachments): id -> (id, kind, number)."""
    if not document_ids:
        return {}
    rows = await conn.fetch("SELECT id, kind, number FROM documents WHERE id = ANY($1::bigint[])",
                            list(document_ids))
    return {r["id"]: r for r in rows}

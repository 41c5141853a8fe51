"""The SQL of email-to-ticket (intake.py): the inboxes to read and where their reading got to,
their deny-lists, the customer a sender is, and the ticket a reply belongs to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg

from admin.auth.store import Connection

PASSWORD_PURPOSE = "ticket_inboxes.password"  # noqa: S105  (a label, not a password)
"""What an inbox's password is sealed for (daemons/secrets.py)."""


async def inboxes(conn: Connection) -> list[asyncpg.Record]:
    """The enabled inboxes, with their settings and position."""
    return list(await conn.fetch(
        "SELECT id, partner_id, name, address, host, port, security, username, password, folder, read_mode, since, "
        "mark_read, accept_unknown, group_id, priority, type, uidvalidity, last_uid, updated_at "
        "FROM ticket_inboxes WHERE enabled ORDER BY id"))


async def deny_rules(conn: Connection, inbox_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT id, field, match, pattern FROM ticket_denylist "
                                 "WHERE inbox_id = $1 OR inbox_id IS NULL ORDER BY id", inbox_id))


async def own_addresses(conn: Connection) -> list[str]:
    return [r["a"] for r in await conn.fetch("SELECT lower(address) AS a FROM ticket_inboxes")]


async def save_position(conn: Connection, inbox_id: int, uidvalidity: int, last_uid: int, *, now: dt.datetime,
                        error: str = "") -> None:
    """Where the reading got to, and the last error ('' when it went well). Not a change of the
    inbox's settings: updated_at stays (a reader starts again when it moves)."""
    await conn.execute(
        "UPDATE ticket_inboxes SET uidvalidity = $2, last_uid = $3, last_checked_at = $4, last_error = $5 "
        "WHERE id = $1", inbox_id, uidvalidity, last_uid, now, error[:1000])


async def customer_of(conn: Connection, partner_id: int, address: str) -> asyncpg.Record | None:
    """The partner's customer whose e-mail (main, billing or another) is ``address``; the newest
    when several share it."""
    return await conn.fetchrow(
        "SELECT id, partner_id, name FROM customers WHERE partner_id = $1 AND status <> 'deleted' AND "
        "(lower(email) = $2 OR lower(billing_email) = $2 OR other_emails @> ARRAY[$2::text]) ORDER BY id DESC LIMIT 1",
        partner_id, address)


async def ticket_by_mail_ids(conn: Connection, ids: Sequence[str]) -> int | None:
    """The ticket holding the newest of these received Message-IDs."""
    if not ids:
        return None
    found: int | None = await conn.fetchval(
        "SELECT ticket_id FROM ticket_messages WHERE mail_id = ANY($1::text[]) ORDER BY id DESC LIMIT 1", list(ids))
    return found


async def thread_ticket(conn: Connection, ticket_id: int, partner_id: int, address: str) -> asyncpg.Record | None:
    """Ticket ``ticket_id`` (or the one it was merged into) if it is the partner's and ``address``
    is one of its parties: its customer's addresses, its requester, its CC. A ticket number
    anyone could write in a subject does not let a stranger write into someone's ticket."""
    row: Any = await conn.fetchrow(
        "WITH RECURSIVE chain AS (SELECT id, merged_into, 0 AS depth FROM tickets WHERE id = $1 "
        "  UNION ALL SELECT t.id, t.merged_into, c.depth + 1 FROM tickets t JOIN chain c ON t.id = c.merged_into "
        "  WHERE c.depth < 10) "
        "SELECT t.id, t.customer_id FROM tickets t LEFT JOIN customers c ON c.id = t.customer_id "
        "WHERE t.id = (SELECT id FROM chain WHERE merged_into IS NULL LIMIT 1) "
        "AND coalesce(t.partner_id, c.partner_id) = $2 "
        "AND (lower(t.requester_email) = $3 OR $3 = ANY(t.cc) OR lower(c.email) = $3 OR lower(c.billing_email) = $3 "
        "     OR $3 = ANY(c.other_emails))",
        ticket_id, partner_id, address)
    return row  # type: ignore[no-any-return]

"""The SQL the portal's support pages read (support.py): the customer's tickets, one ticket, its
thread, an attachment's bytes, and the group a new ticket goes to. Writes go through
admin/tickets/store.py (the status automation).

Every statement is scoped by the customer logged in (``$1``): a ticket of another customer, and
one of the customer's the customer is not to see, is not found, whatever its id. What the
customer sees (:data:`VISIBLE`): its tickets, except one the system opened itself (source
'rule': a CPE fault, a failed payment) until staff has written to the customer on it; of a
ticket's messages (:data:`SHOWN`) the customer's and staff's replies, never an internal note nor
a system line (what the automation did, for staff), and only their attachments.
"""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection

Record = asyncpg.Record

SHOWN = "('customer', 'staff')"
"""The authors of the messages the customer sees (``ticket_messages.author``)."""
VISIBLE = ("t.customer_id = $1 AND (t.source <> 'rule' OR EXISTS (SELECT 1 FROM ticket_messages v "
           f"WHERE v.ticket_id = t.id AND v.author IN {SHOWN}))")
"""The tickets of customer ``$1`` it sees (``t`` a ticket)."""
COLUMNS = ("t.id, t.subject, t.status, s.title AS status_title, s.closed, t.priority, t.type, t.source, "
           "t.merged_into, t.created_at, t.last_activity_at, t.partner_id, t.customer_id")
LIST_LIMIT = 200
"""The most tickets the list shows (the open ones first, then the latest closed)."""


async def tickets(conn: Connection, customer_id: int, *, limit: int = LIST_LIMIT) -> list[Record]:
    """The customer's tickets: the open ones first, each part by the latest activity."""
    return list(await conn.fetch(
        f"SELECT {COLUMNS} FROM tickets t JOIN ticket_statuses s ON s.code = t.status WHERE {VISIBLE} "
        "ORDER BY s.closed, t.last_activity_at DESC, t.id DESC LIMIT $2", customer_id, limit))


async def ticket(conn: Connection, customer_id: int, ticket_id: int, *, lock: bool = False) -> Record | None:
    """One ticket of the customer's (None: not one it sees); ``merged_into_own``: the ticket it was
    merged into is the customer's too (else the page names no number)."""
    return await conn.fetchrow(
        f"SELECT {COLUMNS}, EXISTS (SELECT 1 FROM tickets m WHERE m.id = t.merged_into AND m.customer_id = $1) "
        f"AS merged_into_own FROM tickets t JOIN ticket_statuses s ON s.code = t.status "
        f"WHERE t.id = $2 AND {VISIBLE}" + (" FOR UPDATE OF t" if lock else ""), customer_id, ticket_id)


async def messages(conn: Connection, customer_id: int, ticket_id: int) -> list[Record]:
    """The thread the customer sees of its ticket, in order: each message's author, who of staff
    wrote it (the name only), its text and its attachments (id, file_name, size) as JSON."""
    return list(await conn.fetch(
        "SELECT m.id, m.author, coalesce(nullif(a.name, ''), '') AS staff_name, m.from_name, m.body, m.created_at, "
        "coalesce((SELECT json_agg(json_build_object('id', f.id, 'file_name', f.file_name, 'size', f.size) "
        "ORDER BY f.id) FROM ticket_attachments f WHERE f.message_id = m.id), '[]')::text AS attachments "
        "FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id "
        "LEFT JOIN administrators a ON a.id = m.administrator_id "
        f"WHERE m.ticket_id = $2 AND m.author IN {SHOWN} AND {VISIBLE} ORDER BY m.id", customer_id, ticket_id))


async def attachment(conn: Connection, customer_id: int, ticket_id: int, attachment_id: int) -> Record | None:
    """An attachment of a message the customer sees on its ticket, with its bytes."""
    return await conn.fetchrow(
        "SELECT f.id, f.file_name, f.served_type, f.size, f.data FROM ticket_attachments f "
        "JOIN ticket_messages m ON m.id = f.message_id JOIN tickets t ON t.id = m.ticket_id "
        f"WHERE f.id = $3 AND t.id = $2 AND m.author IN {SHOWN} AND {VISIBLE}", customer_id, ticket_id, attachment_id)


async def requester(conn: Connection, customer_id: int) -> Record | None:
    """What a ticket the customer opens or a message it writes names it by: its number, name and
    address (the billing address when it has no other)."""
    return await conn.fetchrow(
        "SELECT number, name, coalesce(nullif(email, ''), nullif(billing_email, ''), '') AS email "
        "FROM customers WHERE id = $1", customer_id)


async def group_of(conn: Connection, partner_id: int) -> int | None:
    """The group a ticket opened in the portal goes to: the group of the partner's support inbox
    (its first enabled inbox with one), as the same message mailed there would; None: none."""
    value = await conn.fetchval(
        "SELECT group_id FROM ticket_inboxes WHERE partner_id = $1 AND enabled AND group_id IS NOT NULL "
        "ORDER BY id LIMIT 1", partner_id)
    return int(value) if value is not None else None

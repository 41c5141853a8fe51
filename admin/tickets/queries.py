"""The SQL the helpdesk pages and API read: the ticket list (filtered, keyset-paged by last
activity), one ticket with its customer, its messages with their attachments, an attachment's
bytes, the choices of the forms, and the domain a staff reply's Message-ID is made with.

Writes go through admin/tickets/store.py. A principal's scope is ``$1`` its partner and ``$2``
the creator it is limited to (each may be NULL, as admin/queries.py CUSTOMER_SCOPE): it sees
the tickets of its partner (``tickets.partner_id``), and of the customers it created.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.queries import keyset

Record = asyncpg.Record

TICKET_SCOPE = "($1::bigint IS NULL OR t.partner_id = $1) AND ($2::bigint IS NULL OR c.created_by = $2)"
"""The tickets a principal sees (``t`` a ticket, ``c`` its customer, LEFT JOINed)."""
TICKET_FROM = ("FROM tickets t JOIN ticket_statuses s ON s.code = t.status "
               "LEFT JOIN customers c ON c.id = t.customer_id "
               "LEFT JOIN administrators a ON a.id = t.assignee_id LEFT JOIN ticket_groups g ON g.id = t.group_id")
"""A ticket with its status, customer, assignee and group (the aliases TICKET_COLUMNS reads)."""
TICKET_COLUMNS = (
    "t.id, t.subject, t.status, s.title AS status_title, s.closed, t.priority, t.type, t.partner_id, "
    "t.customer_id, c.number AS customer_number, c.name AS customer_name, t.requester_email, "
    "t.requester_name, t.assignee_id, nullif(a.name, '') AS assignee_name, a.login AS assignee_login, "
    "t.group_id, g.name AS group_name, t.inbox_id, t.source, t.cc, t.first_response_at, t.resolved_at, "
    "t.reopened, t.merged_into, t.created_by, t.created_at, t.updated_at, t.last_activity_at")
"""A ticket's columns as the pages and the API read it (over TICKET_FROM)."""
TICKET_SORTS = {"last_activity": "t.last_activity_at", "created": "t.created_at"}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Args:
    """Parameters of a statement built from the filters given: ``add`` returns a value's ``$n``."""

    def __init__(self, *first: Any) -> None:
        self.values = list(first)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


async def list_tickets(conn: Connection, partner: int | None, creator: int | None, *, status: str | None = None,
                       priority: str | None = None, assignee_id: int | None = None, group_id: int | None = None,
                       customer_id: int | None = None, q: str | None = None, sort: str = "last_activity",
                       direction: str = "desc", after: Sequence[Any] | None = None, limit: int = 50) -> list[Record]:
    """A page of the tickets the principal sees that match every filter given (``q``: part of the subject)."""
    a = _Args(partner, creator)
    where = [TICKET_SCOPE]
    if status:
        where.append(f"t.status = {a.add(status)}")
    if priority:
        where.append(f"t.priority = {a.add(priority)}")
    if assignee_id is not None:
        where.append(f"t.assignee_id = {a.add(assignee_id)}")
    if group_id is not None:
        where.append(f"t.group_id = {a.add(group_id)}")
    if customer_id is not None:
        where.append(f"t.customer_id = {a.add(customer_id)}")
    if q:
        where.append(f"t.subject ILIKE {a.add('%' + _escape(q) + '%')}")
    limit_at = a.add(limit)
    column = TICKET_SORTS[sort]
    condition, order, params = keyset(column, direction, after, len(a.values) + 1, "t.id")
    return list(await conn.fetch(
        f"SELECT {TICKET_COLUMNS}, {column} AS sort_value {TICKET_FROM} WHERE {' AND '.join(where)} "
        f"AND {condition} {order} LIMIT {limit_at}", *a.values, *params))


async def ticket(conn: Connection, partner: int | None, creator: int | None, ticket_id: int,
                 *, lock: bool = False) -> Record | None:
    """One ticket the principal sees, with its customer's name and number."""
    return await conn.fetchrow(f"SELECT {TICKET_COLUMNS} {TICKET_FROM} WHERE t.id = $3 AND {TICKET_SCOPE}"
                               + (" FOR UPDATE OF t" if lock else ""), partner, creator, ticket_id)


_MESSAGE = (
    "SELECT m.id, m.author, m.administrator_id, nullif(a.name, '') AS administrator_name, "
    "a.login AS administrator_login, m.from_address, m.from_name, m.body, m.problems, m.outgoing_id, "
    "m.created_at, coalesce((SELECT json_agg(json_build_object('id', f.id, 'file_name', f.file_name, "
    "'served_type', f.served_type, 'size', f.size) ORDER BY f.id) FROM ticket_attachments f "
    "WHERE f.message_id = m.id), '[]')::text AS attachments "
    "FROM ticket_messages m LEFT JOIN administrators a ON a.id = m.administrator_id")


async def messages(conn: Connection, ticket_id: int) -> list[Record]:
    """The ticket's messages in order, each with its attachments (id, file_name, served_type, size) as JSON."""
    return list(await conn.fetch(f"{_MESSAGE} WHERE m.ticket_id = $1 ORDER BY m.id", ticket_id))


async def message(conn: Connection, message_id: int) -> Record | None:
    """One message, with its attachments as :func:`messages`."""
    return await conn.fetchrow(f"{_MESSAGE} WHERE m.id = $1", message_id)


async def attachment(conn: Connection, partner: int | None, creator: int | None, ticket_id: int,
                     attachment_id: int) -> Record | None:
    """One attachment of a ticket the principal sees, with its bytes."""
    return await conn.fetchrow(
        "SELECT f.id, f.file_name, f.served_type, f.size, f.data FROM ticket_attachments f "
        "JOIN ticket_messages m ON m.id = f.message_id JOIN tickets t ON t.id = m.ticket_id "
        f"LEFT JOIN customers c ON c.id = t.customer_id WHERE f.id = $4 AND t.id = $3 AND {TICKET_SCOPE}",
        partner, creator, ticket_id, attachment_id)


async def customer_in_scope(conn: Connection, partner: int | None, creator: int | None,
                            customer_id: int) -> Record | None:
    return await conn.fetchrow(
        "SELECT c.id, c.partner_id, c.number, c.name, c.email FROM customers c WHERE c.id = $3 "
        "AND ($1::bigint IS NULL OR c.partner_id = $1) AND ($2::bigint IS NULL OR c.created_by = $2)",
        partner, creator, customer_id)


async def choices(conn: Connection, partner: int | None) -> Record:
    """The forms' choices, in one statement: statuses (code, title), the groups and the enabled
    administrators the principal's partner may use (id, name), as JSON arrays."""
    row = await conn.fetchrow(
        "SELECT (SELECT coalesce(json_agg(json_build_array(code, title) ORDER BY position, code), '[]') "
        "FROM ticket_statuses)::text AS statuses, "
        "(SELECT coalesce(json_agg(json_build_array(id, name) ORDER BY lower(name), id), '[]') FROM ticket_groups "
        "WHERE $1::bigint IS NULL OR partner_id IS NULL OR partner_id = $1)::text AS groups, "
        "(SELECT coalesce(json_agg(json_build_array(id, coalesce(nullif(name, ''), login)) "
        "ORDER BY lower(coalesce(nullif(name, ''), login)), id), '[]') FROM administrators "
        "WHERE enabled AND ($1::bigint IS NULL OR partner_id = $1))::text AS assignees",
        partner)
    assert row is not None
    return row


async def group_ok(conn: Connection, partner: int | None, group_id: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM ticket_groups WHERE id = $2 AND ($1::bigint IS NULL OR partner_id IS NULL "
        "OR partner_id = $1))", partner, group_id))


async def assignee_ok(conn: Connection, partner: int | None, administrator_id: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM administrators WHERE id = $2 AND enabled AND ($1::bigint IS NULL "
        "OR partner_id = $1))", partner, administrator_id))


async def status_ok(conn: Connection, status: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM ticket_statuses WHERE code = $1)", status))
